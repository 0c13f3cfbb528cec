"""A city with personal data, annotated through the partner SDK: three Strawberry subgraphs.

people   (the city): residents, with contact data; districts with aggregates.
reports  (the city): street issues residents file (an interface and a union), with locations.
parking  (a partner): bookings of residents, with plates and payments.

Default private: on a type with a subject, what is not annotated is personal; the fields the
tests read as public data say @nonPersonal, the subject fields included (a resident's id, a key
shared with parking, is declared non-personal by the test city's policy: conftest.policy_document).
"""

from __future__ import annotations

import copy
from typing import Annotated

import strawberry

from gateway.sdk import privacy

_INITIAL = {
    "residents": {
        "r1": {
            "name": "Amélie Poulain",
            "email": "amelie@example.org",
            "phone": "+33 6 12 34 56 78",
            "address": "12 Rue Lepic, 75018 Paris",
            "birth": "1990-05-17T08:00:00",
            "district": "75118",
        },
        "r2": {
            "name": "Jean Valjean",
            "email": "jean@example.org",
            "phone": "+33 6 98 76 54 32",
            "address": "3 Rue Mouffetard, 75005 Paris",
            "birth": "1969-01-02T10:00:00",
            "district": "75105",
        },
        "r3": {
            "name": "Cosette Fauchelevent",
            "email": "cosette@example.org",
            "phone": "+33 7 11 22 33 44",
            "address": "8 Rue Mouffetard, 75005 Paris",
            "birth": "2001-12-24T23:00:00",
            "district": "75105",
        },
        "r4": {
            "name": "Gavroche Thénardier",
            "email": None,
            "phone": "+33 6 00 00 00 04",
            "address": "1 Rue Oberkampf, 75011 Paris",
            "birth": "2010-07-14T12:00:00",
            "district": "75111",
        },
    },
    "districts": {"75105": "Panthéon", "75111": "Popincourt", "75118": "Buttes-Montmartre"},
    "reports": [
        {
            "id": "p1",
            "kind": "pothole",
            "description": "Deep hole",
            "reporter": "r1",
            "lat": 48.88621,
            "lng": 2.33412,
            "depth": 12,
        },
        {
            "id": "g1",
            "kind": "graffiti",
            "description": "Tag on a wall",
            "reporter": "r2",
            "lat": 48.84234,
            "lng": 2.34988,
            "depth": 0,
        },
        {
            "id": "p2",
            "kind": "pothole",
            "description": "Cracked road",
            "reporter": "r3",
            "lat": 48.84111,
            "lng": 2.35022,
            "depth": 5,
        },
    ],
    "notices": [{"id": "n1", "text": "Street cleaning on Monday"}],
    "bookings": [
        {"id": "b1", "resident": "r1", "plate": "AB-123-CD", "amount": 4.5},
        {"id": "b2", "resident": "r2", "plate": "EF-456-GH", "amount": 2.0},
        {"id": "b3", "resident": "r2", "plate": "EF-456-GH", "amount": 3.5},
    ],
}
data: dict = copy.deepcopy(_INITIAL)


def reset() -> None:
    data.clear()
    data.update(copy.deepcopy(_INITIAL))


# -- people -------------------------------------------------------------------------------------


@strawberry.federation.type(keys=["code"])
class District:
    code: str

    @strawberry.field
    def name(self) -> str:
        return data["districts"][self.code]

    @strawberry.federation.field(directives=[privacy.Aggregate(contributors="residentCount")])
    def average_birth_year(self) -> float | None:
        years = [int(r["birth"][:4]) for r in data["residents"].values() if r["district"] == self.code]
        return sum(years) / len(years) if years else None

    @strawberry.field
    def resident_count(self) -> int:
        return sum(1 for r in data["residents"].values() if r["district"] == self.code)

    @classmethod
    def resolve_reference(cls, code: str) -> District:
        return cls(code=code)


@strawberry.federation.type(keys=["id"], directives=[privacy.Subject(field="id")])
class Resident:
    id: strawberry.ID
    name: str | None = strawberry.federation.field(directives=[privacy.Personal(category="user.name")])
    email: str | None = strawberry.federation.field(directives=[privacy.Personal(category="user.contact.email")])
    phone: str | None = strawberry.federation.field(directives=[privacy.Personal(category="user.contact.phone_number")])
    address: str | None = strawberry.federation.field(
        directives=[privacy.Personal(category="user.contact.address", strategy="coarsen")]
    )
    birth_date: str | None = strawberry.federation.field(
        directives=[privacy.Personal(category="user.demographic.date_of_birth", strategy="coarsen")]
    )
    district_code: strawberry.Private[str]

    @strawberry.federation.field(directives=[privacy.NonPersonal()])
    def district(self) -> District:
        return District(code=self.district_code)

    @classmethod
    def of(cls, resident_id: str) -> Resident | None:
        row = data["residents"].get(resident_id)
        if row is None:
            return None
        return cls(
            id=strawberry.ID(resident_id),
            name=row["name"],
            email=row["email"],
            phone=row["phone"],
            address=row["address"],
            birth_date=row["birth"],
            district_code=row["district"],
        )

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Resident | None:
        return cls.of(id)


@strawberry.type
class PeopleQuery:
    @strawberry.field
    def residents(self) -> list[Resident]:
        return [Resident.of(r) for r in data["residents"]]  # type: ignore[misc]

    @strawberry.field
    def resident(self, id: strawberry.ID) -> Resident | None:
        return Resident.of(id)

    @strawberry.field
    def districts(self) -> list[District]:
        return [District(code=c) for c in data["districts"]]


people = strawberry.federation.Schema(query=PeopleQuery, types=[Resident, District], federation_version="2.5")


# -- reports ------------------------------------------------------------------------------------


@strawberry.type
class GeoPoint:
    latitude: float = strawberry.federation.field(directives=[privacy.NonPersonal()])
    longitude: float = strawberry.federation.field(directives=[privacy.NonPersonal()])


@strawberry.federation.type(keys=["id"], name="Resident")
class ReportResident:
    id: strawberry.ID


@strawberry.interface(directives=[privacy.Subject(field="reporterId")])
class Incident:
    id: strawberry.ID = strawberry.federation.field(directives=[privacy.NonPersonal()])
    description: str = strawberry.federation.field(directives=[privacy.NonPersonal()])
    # the subject field: personal by default; this world publishes it, as resident ids (the
    # property test's oracle reads it to know whose values it checks)
    reporter_id: strawberry.ID = strawberry.federation.field(directives=[privacy.NonPersonal()])
    location: GeoPoint | None = strawberry.federation.field(
        directives=[privacy.Personal(category="user.location.precise")]
    )

    # a link is its parent's subject's data by default; this world publishes reporterId, and the
    # link to the reporter says no more than it
    @strawberry.federation.field(directives=[privacy.NonPersonal()])
    def reporter(self) -> ReportResident | None:
        return ReportResident(id=self.reporter_id)


@strawberry.type
class Pothole(Incident):
    depth_cm: int = strawberry.federation.field(directives=[privacy.NonPersonal()])


@strawberry.type
class Graffiti(Incident):
    pass


@strawberry.type
class Notice:
    id: strawberry.ID
    text: str


def _incident(row: dict) -> Incident:
    common = {
        "id": strawberry.ID(row["id"]),
        "description": row["description"],
        "reporter_id": strawberry.ID(row["reporter"]),
        "location": GeoPoint(latitude=row["lat"], longitude=row["lng"]),
    }
    return Pothole(**common, depth_cm=row["depth"]) if row["kind"] == "pothole" else Graffiti(**common)


FeedItem = Annotated[Pothole | Graffiti | Notice, strawberry.union("FeedItem")]


@strawberry.type
class ReportsQuery:
    @strawberry.field
    def incidents(self) -> list[Incident]:
        return [_incident(r) for r in data["reports"]]

    @strawberry.field
    def feed(self) -> list[FeedItem]:
        return [_incident(r) for r in data["reports"]] + [
            Notice(id=strawberry.ID(n["id"]), text=n["text"]) for n in data["notices"]
        ]  # type: ignore[list-item]


reports = strawberry.federation.Schema(
    query=ReportsQuery, types=[Pothole, Graffiti, ReportResident], federation_version="2.5"
)


# -- parking --------------------------------------------------------------------------------------


@strawberry.type(directives=[privacy.Subject(field="residentId")])
class Booking:
    id: strawberry.ID = strawberry.federation.field(directives=[privacy.NonPersonal()])
    resident_id: strawberry.ID = strawberry.federation.field(
        directives=[privacy.NonPersonal()]
    )  # published, as Incident.reporterId
    plate: str | None = strawberry.federation.field(directives=[privacy.Personal(category="user.unique_id")])
    amount: float | None = strawberry.federation.field(directives=[privacy.Personal(category="user.financial")])


@strawberry.federation.type(keys=["id"], name="Resident")
class ParkingResident:
    id: strawberry.ID

    # a link is its parent's subject's data by default; this world publishes every booking with
    # its residentId (ParkingQuery.bookings), so a resident's bookings say no more than that
    # (tests/privacy/test_links.py makes the link personal through the policy)
    @strawberry.federation.field(directives=[privacy.NonPersonal()])
    def bookings(self) -> list[Booking]:
        return [
            Booking(
                id=strawberry.ID(b["id"]),
                resident_id=strawberry.ID(b["resident"]),
                plate=b["plate"],
                amount=b["amount"],
            )
            for b in data["bookings"]
            if b["resident"] == self.id
        ]

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> ParkingResident:
        return cls(id=id)


@strawberry.type
class ParkingQuery:
    @strawberry.field
    def bookings(self) -> list[Booking]:
        return [
            Booking(
                id=strawberry.ID(b["id"]),
                resident_id=strawberry.ID(b["resident"]),
                plate=b["plate"],
                amount=b["amount"],
            )
            for b in data["bookings"]
        ]


parking = strawberry.federation.Schema(query=ParkingQuery, types=[ParkingResident], federation_version="2.5")

SUBGRAPHS = {"people": people, "reports": reports, "parking": parking}
