"""jobs: small jobs that residents post and take. Takes Resident.nickname over with @override."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import strawberry

from .data import world


@strawberry.enum
class JobKind(Enum):
    WATERING = "WATERING"
    PET_CARE = "PET_CARE"
    DIY = "DIY"
    DELIVERY = "DELIVERY"


@strawberry.federation.type(keys=["id"])
class Resident:
    id: strawberry.ID
    name: str = strawberry.federation.field(external=True)

    @strawberry.federation.field(override="residents")
    def nickname(self) -> str | None:
        row = world["residents"].get(self.id)
        return row["nickname"].upper() if row and row["nickname"] else None

    @strawberry.field
    def jobs_posted(self) -> list[Job]:
        return [Job.from_row(r) for r in world["jobs"].values() if r["postedBy"] == self.id]

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Resident:
        return cls(id=id, name="")


@strawberry.federation.type(keys=["id"])
class Job:
    id: strawberry.ID
    title: str
    kind: JobKind
    reward: float
    posted_by_id: strawberry.Private[str]
    taken_by_id: strawberry.Private[str | None]

    @strawberry.federation.field(provides=["name"])
    def posted_by(self) -> Resident:
        return Resident(id=strawberry.ID(self.posted_by_id), name=world["residents"][self.posted_by_id]["name"])

    @strawberry.field
    def taken_by(self) -> Resident | None:
        return Resident(id=strawberry.ID(self.taken_by_id), name="") if self.taken_by_id else None

    @classmethod
    def from_row(cls, row: dict) -> Job:
        return cls(
            id=strawberry.ID(row["id"]),
            title=row["title"],
            kind=JobKind(row["kind"]),
            reward=row["reward"],
            posted_by_id=row["postedBy"],
            taken_by_id=row["takenBy"],
        )

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Job | None:
        row = world["jobs"].get(id)
        return cls.from_row(row) if row else None


@strawberry.type
class Announcement:
    id: strawberry.ID
    text: str


FeedItem = Annotated[Job | Announcement, strawberry.union("FeedItem")]


@strawberry.type
class Query:
    @strawberry.field
    def jobs(self, kind: JobKind | None = None) -> list[Job]:
        return [Job.from_row(r) for r in world["jobs"].values() if kind is None or r["kind"] == kind.value]

    @strawberry.field
    def job(self, id: strawberry.ID) -> Job | None:
        return Job.resolve_reference(id)

    @strawberry.field
    def feed(self) -> list[FeedItem]:
        items: list = [Job.from_row(r) for r in world["jobs"].values()]
        items += [Announcement(id=strawberry.ID(a["id"]), text=a["text"]) for a in world["announcements"]]
        return items


@strawberry.type
class Mutation:
    @strawberry.mutation
    def post_job(self, title: str, kind: JobKind, reward: float, resident_id: strawberry.ID) -> Job:
        job_id = f"j{len(world['jobs']) + 1}"
        row = {
            "id": job_id,
            "title": title,
            "kind": kind.value,
            "reward": reward,
            "postedBy": resident_id,
            "takenBy": None,
        }
        world["jobs"][job_id] = row
        return Job.from_row(row)

    @strawberry.mutation
    def take_job(self, job_id: strawberry.ID, resident_id: strawberry.ID) -> Job | None:
        row = world["jobs"].get(job_id)
        if row is None:
            return None
        if row["takenBy"]:
            raise ValueError("this job is already taken")
        row["takenBy"] = resident_id
        return Job.from_row(row)


schema = strawberry.federation.Schema(query=Query, mutation=Mutation, types=[Resident], federation_version="2.5")
