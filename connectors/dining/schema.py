"""Table d'hôte, a home-dining platform: dinners residents host, seats guests book."""

from __future__ import annotations

import random

import strawberry

from gateway.sdk import privacy

RESIDENTS = 2000
CUISINES = ["Provençale", "Bretonne", "Lyonnaise", "Libanaise", "Vietnamienne", "Sénégalaise", "Végétarienne", "Italienne"]


def _generate() -> dict:
    rng = random.Random(23)
    dinners = {}
    for index in range(1, 151):
        number = rng.randint(1, 20)
        seats = rng.randint(4, 10)
        dinners[f"d{index:04d}"] = {
            "title": f"{rng.choice(['Dîner', 'Soirée', 'Table'])} {rng.choice(CUISINES).lower()}", "cuisine": rng.choice(CUISINES),
            "date": f"2026-12-{rng.randint(1, 23):02d}T20:00", "price": float(rng.choice([18, 22, 25, 30, 35, 40])), "seats": seats,
            "district": f"751{number:02d}", "host": f"r{rng.randint(1, RESIDENTS):04d}",
            "address": f"{rng.randint(1, 120)} rue {rng.choice(['des Martyrs', 'de Charonne', 'Caulaincourt', 'du Bac', 'de la Roquette'])}, 751{number:02d} Paris",
        }
    dinners["d0001"]["host"] = "r0002"
    reservations = {}
    for index in range(1, 401):
        dinner = f"d{rng.randint(1, 150):04d}"
        reservations[f"res{index:04d}"] = {"dinner": dinner, "guest": f"r{rng.randint(1, RESIDENTS):04d}", "seats": rng.randint(1, 3)}
    reservations["res0001"].update(guest="r0001", dinner="d0001")
    return {"dinners": dinners, "reservations": reservations}


DATA = _generate()


def _booked(dinner_id: str) -> int:
    return sum(r["seats"] for r in DATA["reservations"].values() if r["dinner"] == dinner_id)


@strawberry.federation.type(keys=["code"])
class District:
    code: str

    @strawberry.field(description="Dinners hosted in the district.")
    def dinners(self) -> list[Dinner]:
        return [Dinner.of(i) for i, d in DATA["dinners"].items() if d["district"] == self.code]

    @strawberry.field(description="Average price of a seat at the district's dinners (euros).")
    def average_dinner_price(self) -> float | None:
        prices = [d["price"] for d in DATA["dinners"].values() if d["district"] == self.code]
        return round(sum(prices) / len(prices), 2) if prices else None

    @classmethod
    def resolve_reference(cls, code: str) -> District:
        return cls(code=code)


@strawberry.federation.type(
    keys=["id"],
    directives=[privacy.Subject(field="hostId")],
    description="A dinner a resident hosts at home. The offer is public; who hosts it, where and when is the host's personal data.",
)
class Dinner:
    id: strawberry.ID
    title: str = strawberry.federation.field(directives=[privacy.NonPersonal()])
    cuisine: str = strawberry.federation.field(directives=[privacy.NonPersonal()])
    date: str
    price_per_seat: float = strawberry.federation.field(directives=[privacy.NonPersonal()])
    seats: int = strawberry.federation.field(directives=[privacy.NonPersonal()])
    host_id: strawberry.ID
    district_code: strawberry.Private[str]
    address: str | None = strawberry.federation.field(description="The host's home.", directives=[privacy.Personal(category="user.contact.address")])

    @strawberry.federation.field(directives=[privacy.NonPersonal()])
    def seats_left(self) -> int:
        return max(0, self.seats - _booked(self.id))

    @strawberry.field
    def district(self) -> District:
        return District(code=self.district_code)

    @strawberry.federation.field(description="Who hosts it.", directives=[privacy.Personal(category="user.unique_id")])
    def host(self) -> Resident | None:
        return Resident(id=self.host_id)

    @classmethod
    def of(cls, dinner_id: str) -> Dinner:
        d = DATA["dinners"][dinner_id]
        return cls(
            id=strawberry.ID(dinner_id), title=d["title"], cuisine=d["cuisine"], date=d["date"], price_per_seat=d["price"], seats=d["seats"],
            host_id=strawberry.ID(d["host"]), district_code=d["district"], address=d["address"],
        )

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Dinner | None:
        return cls.of(id) if id in DATA["dinners"] else None


@strawberry.federation.type(keys=["id"], directives=[privacy.Subject(field="guestId")], description="Seats a guest booked at a dinner.")
class Reservation:
    id: strawberry.ID
    guest_id: strawberry.ID
    seats: int
    dinner_id: strawberry.Private[str]
    amount_paid: float | None = strawberry.federation.field(directives=[privacy.Personal(category="user.financial")])

    @strawberry.federation.field(description="Which dinner: where the guest will be.", directives=[privacy.Personal(category="user.behavior")])
    def dinner(self) -> Dinner | None:
        return Dinner.of(self.dinner_id)

    @classmethod
    def of(cls, reservation_id: str) -> Reservation:
        r = DATA["reservations"][reservation_id]
        price = DATA["dinners"][r["dinner"]]["price"]
        return cls(id=strawberry.ID(reservation_id), guest_id=strawberry.ID(r["guest"]), seats=r["seats"], dinner_id=r["dinner"], amount_paid=price * r["seats"])

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Reservation | None:
        return cls.of(id) if id in DATA["reservations"] else None


@strawberry.federation.type(keys=["id"])
class Resident:
    id: strawberry.ID

    @strawberry.field(description="Dinners the resident hosts on Table d'hôte.")
    def dinners_hosted(self) -> list[Dinner]:
        return [Dinner.of(i) for i, d in DATA["dinners"].items() if d["host"] == self.id]

    @strawberry.field(description="Seats the resident booked on Table d'hôte.")
    def dinner_reservations(self) -> list[Reservation]:
        return [Reservation.of(i) for i, r in DATA["reservations"].items() if r["guest"] == self.id]

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Resident:
        return cls(id=id)


@strawberry.type
class Query:
    @strawberry.field(description="Upcoming dinners, optionally of one cuisine or district.")
    def dinners(self, district: str | None = None, cuisine: str | None = None, first: int = 20) -> list[Dinner]:
        ids = [i for i, d in DATA["dinners"].items() if (district is None or d["district"] == district) and (cuisine is None or d["cuisine"] == cuisine)]
        return [Dinner.of(i) for i in ids[: max(0, min(first, 100))]]


schema = strawberry.federation.Schema(query=Query, types=[District, Resident, Dinner, Reservation], federation_version="2.5")
