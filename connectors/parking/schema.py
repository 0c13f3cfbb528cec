"""Parkr, a shared-parking operator: spots in every district, residents' vehicles and bookings."""

from __future__ import annotations

import os
import random
import string
from enum import Enum

import strawberry
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.sdk import privacy
from gateway.sdk_erasure import ErasureRequestVerifier

RESIDENTS = 2000


@strawberry.enum
class SpotKind(Enum):
    STANDARD = "STANDARD"
    ELECTRIC = "ELECTRIC"
    ACCESSIBLE = "ACCESSIBLE"


def _generate() -> dict:
    rng = random.Random(7)
    streets = [
        "rue de Rivoli",
        "rue Montorgueil",
        "rue de Bretagne",
        "rue Mouffetard",
        "rue de Vaugirard",
        "rue Oberkampf",
        "avenue d'Italie",
        "rue Daguerre",
        "rue de la Convention",
        "rue de Passy",
        "rue des Dames",
        "rue Lepic",
        "rue de Belleville",
        "rue des Pyrénées",
    ]
    spots = {}
    for index in range(1, 601):
        number = (index % 20) + 1
        spots[f"s{index:04d}"] = {
            "street": f"{rng.randint(1, 180)} {rng.choice(streets)}",
            "district": f"751{number:02d}",
            "kind": rng.choices(["STANDARD", "ELECTRIC", "ACCESSIBLE"], weights=[7, 2, 1])[0],
            "price": rng.choice([1.5, 2.0, 2.5, 3.0, 3.5]),
            "free": rng.random() < 0.4,
        }
    vehicles = {}
    for index in range(1, 501):
        plate = (
            "".join(rng.choices(string.ascii_uppercase, k=2))
            + "-"
            + "".join(rng.choices(string.digits, k=3))
            + "-"
            + "".join(rng.choices(string.ascii_uppercase, k=2))
        )
        vehicles[f"v{index:04d}"] = {
            "owner": f"r{rng.randint(1, RESIDENTS):04d}",
            "plate": plate,
            "model": rng.choice(["Zoé", "Clio", "208", "C3", "Twingo", "Model 3", "Kangoo"]),
            "electric": rng.random() < 0.3,
        }
    # resident 1 always has a car, for the demo's examples
    vehicles["v0001"]["owner"] = "r0001"
    bookings = {}
    vehicle_ids = list(vehicles)
    for index in range(1, 801):
        vehicle = rng.choice(vehicle_ids)
        bookings[f"b{index:04d}"] = {
            "resident": vehicles[vehicle]["owner"],
            "vehicle": vehicle,
            "spot": f"s{rng.randint(1, 600):04d}",
            "start": f"2026-11-{rng.randint(1, 24):02d}T{rng.randint(7, 21):02d}:{rng.choice(['00', '15', '30', '45'])}",
            "hours": rng.randint(1, 6),
        }
    return {"spots": spots, "vehicles": vehicles, "bookings": bookings}


DATA = _generate()


@strawberry.federation.type(keys=["code"])
class District:
    code: str

    @strawberry.field(description="Parkr's spots in the district.")
    def parking_spots(self, free_only: bool = False) -> list[Spot]:
        return [
            Spot.of(i) for i, s in DATA["spots"].items() if s["district"] == self.code and (s["free"] or not free_only)
        ]

    @strawberry.field(description="How many of Parkr's spots in the district are free right now.")
    def free_spots(self) -> int:
        return sum(1 for s in DATA["spots"].values() if s["district"] == self.code and s["free"])

    @strawberry.field(description="Share of Parkr's spots in use right now (0 to 1).")
    def parking_occupancy(self) -> float:
        spots = [s for s in DATA["spots"].values() if s["district"] == self.code]
        return round(1 - sum(1 for s in spots if s["free"]) / len(spots), 2) if spots else 0.0

    @classmethod
    def resolve_reference(cls, code: str) -> District:
        return cls(code=code)


@strawberry.federation.type(keys=["id"])
class Spot:
    id: strawberry.ID
    street: str = strawberry.federation.field(
        description="Where the spot is (a public street).", directives=[privacy.NonPersonal()]
    )
    kind: SpotKind
    price_per_hour: float
    free: bool
    district_code: strawberry.Private[str]

    @strawberry.field
    def district(self) -> District:
        return District(code=self.district_code)

    @classmethod
    def of(cls, spot_id: str) -> Spot:
        s = DATA["spots"][spot_id]
        return cls(
            id=strawberry.ID(spot_id),
            street=s["street"],
            kind=SpotKind(s["kind"]),
            price_per_hour=s["price"],
            free=s["free"],
            district_code=s["district"],
        )

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Spot | None:
        return cls.of(id) if id in DATA["spots"] else None


@strawberry.federation.type(keys=["id"], directives=[privacy.Subject(field="ownerId")])
class Vehicle:
    id: strawberry.ID
    owner_id: strawberry.ID
    model: str
    electric: bool
    plate: str | None = strawberry.federation.field(
        directives=[privacy.Personal(category="user.government_id.vehicle_registration")]
    )

    @classmethod
    def of(cls, vehicle_id: str) -> Vehicle:
        v = DATA["vehicles"][vehicle_id]
        return cls(
            id=strawberry.ID(vehicle_id),
            owner_id=strawberry.ID(v["owner"]),
            model=v["model"],
            electric=v["electric"],
            plate=v["plate"],
        )

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Vehicle | None:
        return cls.of(id) if id in DATA["vehicles"] else None


@strawberry.federation.type(keys=["id"], directives=[privacy.Subject(field="residentId")])
class Booking:
    id: strawberry.ID
    resident_id: strawberry.ID
    hours: int
    spot_id: strawberry.Private[str]
    vehicle_id: strawberry.Private[str]
    starts_at: str | None = strawberry.federation.field(
        description="When the resident parks.", directives=[privacy.Personal(category="user.behavior")]
    )
    amount_paid: float | None = strawberry.federation.field(directives=[privacy.Personal(category="user.financial")])

    @strawberry.federation.field(
        description="Where the resident parks.", directives=[privacy.Personal(category="user.location.imprecise")]
    )
    def spot(self) -> Spot | None:
        return Spot.of(self.spot_id)

    # a link: which car the resident parked is part of the booking (when, where, with what); the
    # vehicle's own fields are decided as its owner's
    @strawberry.federation.field(directives=[privacy.Personal(category="user.behavior")])
    def vehicle(self) -> Vehicle:
        return Vehicle.of(self.vehicle_id)

    @classmethod
    def of(cls, booking_id: str) -> Booking:
        b = DATA["bookings"][booking_id]
        price = DATA["spots"][b["spot"]]["price"]
        return cls(
            id=strawberry.ID(booking_id),
            resident_id=strawberry.ID(b["resident"]),
            hours=b["hours"],
            spot_id=b["spot"],
            vehicle_id=b["vehicle"],
            starts_at=b["start"],
            amount_paid=round(price * b["hours"], 2),
        )

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Booking | None:
        return cls.of(id) if id in DATA["bookings"] else None


@strawberry.federation.type(keys=["id"])
class Resident:
    id: strawberry.ID

    # links: a resident's bookings are their purchases of parking, their vehicles what they
    # registered with Parkr (each booking and vehicle is then decided by its own type)
    @strawberry.federation.field(
        description="The resident's bookings with Parkr.",
        directives=[privacy.Personal(category="user.behavior.purchase_history")],
    )
    def parking_bookings(self) -> list[Booking]:
        return [Booking.of(i) for i, b in DATA["bookings"].items() if b["resident"] == self.id]

    @strawberry.federation.field(
        description="The resident's vehicles registered with Parkr.",
        directives=[privacy.Personal(category="user.government_id.vehicle_registration")],
    )
    def vehicles(self) -> list[Vehicle]:
        return [Vehicle.of(i) for i, v in DATA["vehicles"].items() if v["owner"] == self.id]

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Resident:
        return cls(id=id)


@strawberry.type
class Query:
    @strawberry.field(description="Parkr's spots, optionally only the free ones of one district.")
    def spots(self, district: str | None = None, free_only: bool = False, first: int = 50) -> list[Spot]:
        ids = [
            i
            for i, s in DATA["spots"].items()
            if (district is None or s["district"] == district) and (s["free"] or not free_only)
        ]
        return [Spot.of(i) for i in ids[: max(0, min(first, 200))]]


# the city's gateway signs each erasure request for this connector (gateway/sdk_erasure.py); the
# demo reads the gateway's keys where `citygate demo` says the gateway listens
ERASURE_REQUESTS = ErasureRequestVerifier(
    "parking", lambda: os.environ.get("CITYGATE_DEMO_GATEWAY_URL", "") + "/.well-known/jwks.json"
)


async def erasure(request: Request) -> JSONResponse:
    """A resident's erasure request, from the city (the manifest's `erasure` endpoint, served next
    to the subgraph by `citygate demo`): their vehicles and bookings are deleted."""
    subject = await ERASURE_REQUESTS.subject_or_refusal(request)
    if isinstance(subject, JSONResponse):
        return subject
    vehicles = {i for i, v in DATA["vehicles"].items() if v["owner"] == subject}
    for booking_id in [i for i, b in DATA["bookings"].items() if b["resident"] == subject or b["vehicle"] in vehicles]:
        del DATA["bookings"][booking_id]
    for vehicle_id in vehicles:
        del DATA["vehicles"][vehicle_id]
    return JSONResponse({"status": "done"})


schema = strawberry.federation.Schema(
    query=Query, types=[District, Resident, Booking, Vehicle], federation_version="2.5"
)
