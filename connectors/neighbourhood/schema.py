"""Voisinage, a neighbourhood-services platform: small jobs residents post and neighbours take."""

from __future__ import annotations

import random
from enum import Enum

import strawberry

from gateway.sdk import privacy

RESIDENTS = 2000
TITLES = {
    "WATERING": ["Water my balcony plants", "Water the courtyard garden", "Look after my orchids"],
    "PET_CARE": ["Walk my dog twice a day", "Feed my cat for a week", "Look after two rabbits"],
    "DIY": ["Put up kitchen shelves", "Fix a dripping tap", "Assemble a wardrobe"],
    "DELIVERY": ["Bring groceries upstairs", "Collect a parcel at the post office", "Carry a sofa to the 4th floor"],
}


@strawberry.enum
class JobKind(Enum):
    WATERING = "WATERING"
    PET_CARE = "PET_CARE"
    DIY = "DIY"
    DELIVERY = "DELIVERY"


@strawberry.enum
class JobStatus(Enum):
    OPEN = "OPEN"
    TAKEN = "TAKEN"
    DONE = "DONE"


def _generate() -> dict:
    rng = random.Random(11)
    jobs = {}
    for index in range(1, 401):
        kind = rng.choice(list(TITLES))
        number = rng.randint(1, 20)
        status = rng.choices(["OPEN", "TAKEN", "DONE"], weights=[5, 2, 3])[0]
        poster = f"r{rng.randint(1, RESIDENTS):04d}"
        jobs[f"j{index:04d}"] = {
            "kind": kind, "title": rng.choice(TITLES[kind]), "reward": float(rng.choice([8, 10, 12, 15, 20, 25, 30])), "status": status,
            "district": f"751{number:02d}", "poster": poster, "address": f"{rng.randint(1, 150)} rue {rng.choice(['Lepic', 'Oberkampf', 'Monge', 'Cler', 'Mouffetard'])}, 751{number:02d} Paris",
            "taker": None if status == "OPEN" else f"r{rng.randint(1, RESIDENTS):04d}",
        }
    jobs["j0001"].update(poster="r0001", status="DONE", taker="r0002")
    ratings = {}
    for index, (job_id, job) in enumerate((j for j in jobs.items() if j[1]["status"] == "DONE"), start=1):
        ratings[f"rt{index:04d}"] = {"job": job_id, "ratee": job["taker"], "rater": job["poster"], "score": rng.randint(2, 5), "comment": rng.choice(["Perfect", "Very kind", "On time", "Would ask again", "OK"])}
    return {"jobs": jobs, "ratings": ratings}


DATA = _generate()


@strawberry.federation.type(keys=["code"])
class District:
    code: str

    @strawberry.field(description="Jobs posted in the district that nobody took yet.")
    def open_jobs(self) -> list[Job]:
        return [Job.of(i) for i, j in DATA["jobs"].items() if j["district"] == self.code and j["status"] == "OPEN"]

    @strawberry.field(description="Average reward of the district's jobs (euros).")
    def average_job_reward(self) -> float | None:
        rewards = [j["reward"] for j in DATA["jobs"].values() if j["district"] == self.code]
        return round(sum(rewards) / len(rewards), 2) if rewards else None

    @classmethod
    def resolve_reference(cls, code: str) -> District:
        return cls(code=code)


@strawberry.federation.type(
    keys=["id"],
    directives=[privacy.Subject(field="posterId")],
    description="A small job a resident posted. What the job is, is public; who posted it and where is the poster's personal data.",
)
class Job:
    id: strawberry.ID
    title: str = strawberry.federation.field(directives=[privacy.NonPersonal()])
    kind: JobKind = strawberry.federation.field(directives=[privacy.NonPersonal()])
    reward: float = strawberry.federation.field(directives=[privacy.NonPersonal()])
    status: JobStatus = strawberry.federation.field(directives=[privacy.NonPersonal()])
    poster_id: strawberry.ID  # the poster's identifier: personal data of the poster (default private)
    district_code: strawberry.Private[str]
    taker_id: strawberry.Private[str | None]
    address: str | None = strawberry.federation.field(description="Where the job is.", directives=[privacy.Personal(category="user.contact.address")])

    @strawberry.field
    def district(self) -> District:
        return District(code=self.district_code)

    @strawberry.federation.field(description="Who posted it.", directives=[privacy.Personal(category="user.unique_id")])
    def poster(self) -> Resident | None:
        return Resident(id=self.poster_id)

    @strawberry.field(description="Who took it, if anyone.")
    def assignment(self) -> Assignment | None:
        return Assignment(taker_id=strawberry.ID(self.taker_id)) if self.taker_id else None

    @classmethod
    def of(cls, job_id: str) -> Job:
        j = DATA["jobs"][job_id]
        return cls(
            id=strawberry.ID(job_id), title=j["title"], kind=JobKind(j["kind"]), reward=j["reward"], status=JobStatus(j["status"]),
            poster_id=strawberry.ID(j["poster"]), district_code=j["district"], taker_id=j["taker"], address=j["address"],
        )

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Job | None:
        return cls.of(id) if id in DATA["jobs"] else None


@strawberry.type(directives=[privacy.Subject(field="takerId")], description="The neighbour who took a job.")
class Assignment:
    taker_id: strawberry.ID

    @strawberry.federation.field(directives=[privacy.Personal(category="user.unique_id")])
    def taker(self) -> Resident | None:
        return Resident(id=self.taker_id)


@strawberry.type(directives=[privacy.Subject(field="rateeId")], description="How a neighbour rated a resident's work.")
class Rating:
    ratee_id: strawberry.ID
    job_id: strawberry.ID
    score: int | None = strawberry.federation.field(directives=[privacy.Personal(category="user.social")])
    comment: str | None = strawberry.federation.field(directives=[privacy.Personal(category="user.social")])


@strawberry.federation.type(keys=["id"])
class Resident:
    id: strawberry.ID

    @strawberry.field(description="Jobs the resident posted on Voisinage.")
    def jobs_posted(self) -> list[Job]:
        return [Job.of(i) for i, j in DATA["jobs"].items() if j["poster"] == self.id]

    @strawberry.field(description="Jobs the resident took on Voisinage.")
    def jobs_taken(self) -> list[Job]:
        return [Job.of(i) for i, j in DATA["jobs"].items() if j["taker"] == self.id]

    @strawberry.field(description="Ratings the resident received as a neighbour.")
    def ratings(self) -> list[Rating]:
        return [
            Rating(ratee_id=self.id, job_id=strawberry.ID(r["job"]), score=r["score"], comment=r["comment"])
            for r in DATA["ratings"].values()
            if r["ratee"] == self.id
        ]

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Resident:
        return cls(id=id)


@strawberry.type
class Query:
    @strawberry.field(description="Jobs, newest first, optionally of one kind or district.")
    def jobs(self, kind: JobKind | None = None, district: str | None = None, status: JobStatus | None = None, first: int = 20) -> list[Job]:
        ids = [
            i for i, j in reversed(DATA["jobs"].items())
            if (kind is None or j["kind"] == kind.value) and (district is None or j["district"] == district) and (status is None or j["status"] == status.value)
        ]
        return [Job.of(i) for i in ids[: max(0, min(first, 100))]]


schema = strawberry.federation.Schema(query=Query, types=[District, Resident, Job], federation_version="2.5")
