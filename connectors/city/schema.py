"""The city's services: districts, the resident directory, waste collection, water quality and
the street issues residents report and technicians handle.

Runs in-process: the requester arrives as the execution context, so reporting an issue needs a
signed-in resident and handling one a technician. Data is generated with Faker from a fixed seed:
every run of the demo shows the same city.
"""

from __future__ import annotations

import random
import unicodedata
from datetime import date, datetime, timedelta
from enum import Enum

import strawberry
from faker import Faker
from graphql import GraphQLError
from strawberry.types import Info

from gateway.sdk import privacy

RESIDENTS = 2000
ARRONDISSEMENTS = [
    "Louvre",
    "Bourse",
    "Temple",
    "Hôtel-de-Ville",
    "Panthéon",
    "Luxembourg",
    "Palais-Bourbon",
    "Élysée",
    "Opéra",
    "Entrepôt",
    "Popincourt",
    "Reuilly",
    "Gobelins",
    "Observatoire",
    "Vaugirard",
    "Passy",
    "Batignolles-Monceau",
    "Buttes-Montmartre",
    "Buttes-Chaumont",
    "Ménilmontant",
]
POPULATION = [
    15917,
    20900,
    33000,
    28370,
    56841,
    40209,
    48520,
    35016,
    59629,
    83459,
    142583,
    139297,
    178350,
    134382,
    225312,
    162061,
    164413,
    185825,
    181616,
    189805,
]
CENTRES = [
    (48.8603, 2.3401),
    (48.8683, 2.3428),
    (48.8630, 2.3600),
    (48.8543, 2.3576),
    (48.8445, 2.3507),
    (48.8491, 2.3328),
    (48.8562, 2.3122),
    (48.8727, 2.3126),
    (48.8770, 2.3375),
    (48.8761, 2.3607),
    (48.8590, 2.3800),
    (48.8350, 2.4212),
    (48.8283, 2.3623),
    (48.8291, 2.3265),
    (48.8421, 2.2988),
    (48.8603, 2.2620),
    (48.8873, 2.3067),
    (48.8925, 2.3484),
    (48.8871, 2.3848),
    (48.8634, 2.4012),
]


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and (c.isalnum() or c in ".-")).replace(" ", "-")


def _generate() -> dict:
    fake = Faker("fr_FR")
    fake.seed_instance(2026)
    rng = random.Random(2026)
    residents = {}
    for index in range(1, RESIDENTS + 1):
        number = rng.choices(range(1, 21), weights=POPULATION)[0]
        first, last = fake.first_name(), fake.last_name()
        residents[f"r{index:04d}"] = {
            "name": f"{first} {last}",
            "email": _ascii(f"{first}.{last}".lower()) + "@" + fake.free_email_domain(),
            "phone": fake.phone_number(),
            "address": f"{fake.street_address()}, 750{number:02d} Paris",
            "birth": fake.date_of_birth(minimum_age=18, maximum_age=95).isoformat(),
            "district": f"751{number:02d}",
        }
    kinds = ["POTHOLE", "GRAFFITI", "LITTER", "STREETLIGHT", "BULKY_WASTE"]
    issues = {}
    start = datetime(2026, 9, 1, 8, 0)
    for index in range(1, 301):
        reporter = f"r{rng.randint(1, RESIDENTS):04d}"
        number = int(residents[reporter]["district"][-2:])
        lat, lng = CENTRES[number - 1]
        issues[f"i{index:04d}"] = {
            "kind": rng.choice(kinds),
            "description": fake.sentence(nb_words=8),
            "status": rng.choices(["OPEN", "IN_PROGRESS", "RESOLVED"], weights=[5, 2, 3])[0],
            "reporter": reporter,
            "district": f"751{number:02d}",
            "lat": round(lat + rng.uniform(-0.006, 0.006), 6),
            "lng": round(lng + rng.uniform(-0.008, 0.008), 6),
            "reported_at": (start + timedelta(minutes=rng.randint(0, 60 * 24 * 80))).isoformat(timespec="minutes"),
            "technician": None,
        }
    return {"residents": residents, "issues": issues}


DATA = _generate()


@strawberry.enum
class WasteKind(Enum):
    HOUSEHOLD = "HOUSEHOLD"
    RECYCLABLES = "RECYCLABLES"
    GLASS = "GLASS"
    FOOD = "FOOD"


@strawberry.enum
class IssueKind(Enum):
    POTHOLE = "POTHOLE"
    GRAFFITI = "GRAFFITI"
    LITTER = "LITTER"
    STREETLIGHT = "STREETLIGHT"
    BULKY_WASTE = "BULKY_WASTE"


@strawberry.enum
class IssueStatus(Enum):
    OPEN = "OPEN"
    IN_PROGRESS = "IN_PROGRESS"
    RESOLVED = "RESOLVED"


@strawberry.type
class WasteCollection:
    kind: WasteKind
    weekdays: list[str]


@strawberry.type
class WaterQuality:
    sampled_on: str
    nitrates_mg_per_l: float
    free_chlorine_mg_per_l: float
    compliant: bool


@strawberry.type(
    description="A point on the map. Whether it is personal is decided where it is used (StreetIssue.location is)."
)
class GeoPoint:
    latitude: float = strawberry.federation.field(directives=[privacy.NonPersonal()])
    longitude: float = strawberry.federation.field(directives=[privacy.NonPersonal()])


def _number(code: str) -> int:
    return int(code[-2:])


@strawberry.federation.type(keys=["code"], description="One of the twenty districts (arrondissements) of Paris.")
class District:
    code: str

    @strawberry.field
    def number(self) -> int:
        return _number(self.code)

    @strawberry.field
    def name(self) -> str:
        return ARRONDISSEMENTS[_number(self.code) - 1]

    @strawberry.field(description="The official population figure (public).")
    def population(self) -> int:
        return POPULATION[_number(self.code) - 1]

    @strawberry.field(description="Residents of the district in the city's directory.")
    def resident_count(self) -> int:
        return sum(1 for r in DATA["residents"].values() if r["district"] == self.code)

    @strawberry.federation.field(
        description="Average age of the district's residents in the directory (open data: published over k residents only).",
        directives=[privacy.Aggregate(contributors="residentCount", statistic="mean", lower=0, upper=110)],
    )
    def average_age(self) -> float | None:
        today = date(2026, 11, 25)
        ages = [
            (today - date.fromisoformat(r["birth"])).days / 365.25
            for r in DATA["residents"].values()
            if r["district"] == self.code
        ]
        return round(sum(ages) / len(ages), 1) if ages else None

    @strawberry.field(description="When the city collects which waste.")
    def waste_collection(self) -> list[WasteCollection]:
        days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
        number = _number(self.code)
        return [
            WasteCollection(kind=WasteKind.HOUSEHOLD, weekdays=[days[number % 6], days[(number + 3) % 6]]),
            WasteCollection(kind=WasteKind.RECYCLABLES, weekdays=[days[(number + 1) % 6]]),
            WasteCollection(kind=WasteKind.GLASS, weekdays=[days[(number + 2) % 6]]),
            WasteCollection(kind=WasteKind.FOOD, weekdays=[days[(number + 4) % 6]]),
        ]

    @strawberry.field(description="The latest tap-water sample of the district.")
    def water_quality(self) -> WaterQuality:
        number = _number(self.code)
        nitrates = round(14 + (number * 7 % 19) / 2, 1)
        return WaterQuality(
            sampled_on="2026-11-18",
            nitrates_mg_per_l=nitrates,
            free_chlorine_mg_per_l=round(0.1 + number % 4 * 0.05, 2),
            compliant=nitrates < 50,
        )

    @strawberry.field(description="Street issues of the district not resolved yet.")
    def open_issues(self) -> list[StreetIssue]:
        return [
            StreetIssue.of(i)
            for i, row in DATA["issues"].items()
            if row["district"] == self.code and row["status"] != "RESOLVED"
        ]

    @classmethod
    def resolve_reference(cls, code: str) -> District | None:
        return (
            cls(code=code)
            if len(code) == 5 and code.startswith("751") and code[3:].isdigit() and 1 <= _number(code) <= 20
            else None
        )


@strawberry.federation.type(
    keys=["id"], directives=[privacy.Subject(field="id")], description="A resident in the city's directory."
)
class Resident:
    id: strawberry.ID
    name: str | None = strawberry.federation.field(directives=[privacy.Personal(category="user.name")])
    email: str | None = strawberry.federation.field(directives=[privacy.Personal(category="user.contact.email")])
    phone: str | None = strawberry.federation.field(directives=[privacy.Personal(category="user.contact.phone_number")])
    address: str | None = strawberry.federation.field(directives=[privacy.Personal(category="user.contact.address")])
    birth_date: str | None = strawberry.federation.field(
        directives=[privacy.Personal(category="user.demographic.date_of_birth")]
    )
    district_code: strawberry.Private[str]

    @strawberry.field
    def district(self) -> District:
        return District(code=self.district_code)

    # a link: that this resident reported these issues is the resident's data (content they gave
    # the city), though an issue's kind and status are public; each issue is then decided as a StreetIssue
    @strawberry.federation.field(
        description="The street issues this resident reported.", directives=[privacy.Personal(category="user.content")]
    )
    def issues_reported(self) -> list[StreetIssue]:
        return [StreetIssue.of(i) for i, row in DATA["issues"].items() if row["reporter"] == self.id]

    @classmethod
    def of(cls, resident_id: str) -> Resident | None:
        row = DATA["residents"].get(resident_id)
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


@strawberry.federation.type(
    keys=["id"],
    directives=[privacy.Subject(field="reporterId")],
    description="A street issue a resident reported. Personal data of its reporter, but for its kind and status (default private).",
)
class StreetIssue:
    id: strawberry.ID
    kind: IssueKind = strawberry.federation.field(directives=[privacy.NonPersonal()])
    description: str
    status: IssueStatus = strawberry.federation.field(directives=[privacy.NonPersonal()])
    reporter_id: strawberry.ID
    reported_at: str
    assigned_technician: str | None
    location: GeoPoint | None = strawberry.federation.field(
        description="Where the reporter stood.", directives=[privacy.Personal(category="user.location.precise")]
    )
    district_code: strawberry.Private[str]

    @strawberry.federation.field(
        description="Who reported it.", directives=[privacy.Personal(category="user.unique_id")]
    )
    def reporter(self) -> Resident | None:
        return Resident.of(self.reporter_id)

    @strawberry.field
    def district(self) -> District:
        return District(code=self.district_code)

    @classmethod
    def of(cls, issue_id: str) -> StreetIssue:
        row = DATA["issues"][issue_id]
        return cls(
            id=strawberry.ID(issue_id),
            kind=IssueKind(row["kind"]),
            description=row["description"],
            status=IssueStatus(row["status"]),
            reporter_id=strawberry.ID(row["reporter"]),
            reported_at=row["reported_at"],
            assigned_technician=row["technician"],
            location=GeoPoint(latitude=row["lat"], longitude=row["lng"]),
            district_code=row["district"],
        )

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> StreetIssue | None:
        return cls.of(id) if id in DATA["issues"] else None


@strawberry.type
class Query:
    @strawberry.field(description="The twenty districts of Paris.")
    def districts(self) -> list[District]:
        return [District(code=f"751{n:02d}") for n in range(1, 21)]

    @strawberry.field
    def district(self, code: str) -> District | None:
        return District.resolve_reference(code)

    @strawberry.field(description="One resident of the directory, by id.")
    def resident(self, id: strawberry.ID) -> Resident | None:
        return Resident.of(id)

    @strawberry.field(description="The directory, a page at a time (at most 100).")
    def residents(self, district: str | None = None, first: int = 20, offset: int = 0) -> list[Resident]:
        ids = [i for i, row in DATA["residents"].items() if district is None or row["district"] == district]
        return [Resident.of(i) for i in ids[max(0, offset) : max(0, offset) + max(0, min(first, 100))]]  # type: ignore[misc]

    @strawberry.field(description="Street issues, newest first.")
    def street_issues(
        self, status: IssueStatus | None = None, district: str | None = None, first: int = 20
    ) -> list[StreetIssue]:
        rows = sorted(DATA["issues"].items(), key=lambda item: item[1]["reported_at"], reverse=True)
        selected = [
            i
            for i, r in rows
            if (status is None or r["status"] == status.value) and (district is None or r["district"] == district)
        ]
        return [StreetIssue.of(i) for i in selected[: max(0, min(first, 100))]]


def _requester(info: Info):
    return info.context


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Report a street issue where you stand (signed-in residents).")
    def report_issue(
        self, info: Info, kind: IssueKind, description: str, latitude: float, longitude: float
    ) -> StreetIssue:
        resident = getattr(_requester(info), "resident", None)
        if resident is None or resident not in DATA["residents"]:
            raise GraphQLError("sign in as a resident to report an issue", extensions={"code": "UNAUTHENTICATED"})
        issue_id = f"i{len(DATA['issues']) + 1:04d}"
        DATA["issues"][issue_id] = {
            "kind": kind.value,
            "description": description[:500],
            "status": "OPEN",
            "reporter": resident,
            "district": DATA["residents"][resident]["district"],
            "lat": latitude,
            "lng": longitude,
            "reported_at": datetime.now().isoformat(timespec="minutes"),
            "technician": None,
        }
        return StreetIssue.of(issue_id)

    @strawberry.mutation(description="Move an issue along (technicians).")
    def update_issue_status(self, info: Info, id: strawberry.ID, status: IssueStatus) -> StreetIssue:
        requester = _requester(info)
        if "technician" not in getattr(requester, "roles", ()):
            raise GraphQLError("only technicians handle street issues", extensions={"code": "FORBIDDEN"})
        if id not in DATA["issues"]:
            raise GraphQLError("no such issue", extensions={"code": "NOT_FOUND"})
        DATA["issues"][id]["status"] = status.value
        DATA["issues"][id]["technician"] = getattr(requester, "recipient", None)
        return StreetIssue.of(id)


schema = strawberry.federation.Schema(
    query=Query, mutation=Mutation, types=[Resident, District, StreetIssue], federation_version="2.5"
)
