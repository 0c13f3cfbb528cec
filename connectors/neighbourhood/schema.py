"""A neighbourhood-services platform: small jobs posted in each district."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum
class JobKind(Enum):
    WATERING = "WATERING"
    PET_CARE = "PET_CARE"
    DIY = "DIY"
    DELIVERY = "DELIVERY"


JOBS = [
    {"id": "job-1", "title": "Water the balcony plants", "kind": "WATERING", "reward": 10.0, "district": "75118"},
    {"id": "job-2", "title": "Walk a beagle twice a day", "kind": "PET_CARE", "reward": 15.0, "district": "75105"},
    {"id": "job-3", "title": "Put up kitchen shelves", "kind": "DIY", "reward": 25.0, "district": "75111"},
    {"id": "job-4", "title": "Bring groceries upstairs", "kind": "DELIVERY", "reward": 8.0, "district": "75118"},
]


@strawberry.federation.type(keys=["code"])
class District:
    code: str

    @strawberry.field
    def open_jobs(self) -> list[Job]:
        return [Job.from_row(row) for row in JOBS if row["district"] == self.code]

    @classmethod
    def resolve_reference(cls, code: str) -> District:
        return cls(code=code)


@strawberry.federation.type(keys=["id"])
class Job:
    id: strawberry.ID
    title: str
    kind: JobKind
    reward: float
    district_code: strawberry.Private[str]

    @strawberry.field
    def district(self) -> District:
        return District(code=self.district_code)

    @classmethod
    def from_row(cls, row: dict) -> Job:
        return cls(id=strawberry.ID(row["id"]), title=row["title"], kind=JobKind(row["kind"]), reward=row["reward"], district_code=row["district"])

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Job | None:
        return next((cls.from_row(row) for row in JOBS if row["id"] == id), None)


@strawberry.type
class Query:
    @strawberry.field
    def jobs(self, kind: JobKind | None = None) -> list[Job]:
        return [Job.from_row(row) for row in JOBS if kind is None or row["kind"] == kind.value]


schema = strawberry.federation.Schema(query=Query, types=[District], federation_version="2.5")
