"""parking: spots, bookings and vehicles. Spot is a Place; bookings belong to residents."""

from __future__ import annotations

import asyncio

import strawberry

from gateway.sdk import privacy

from .data import world


@strawberry.federation.interface(keys=["id"])
class Place:
    id: strawberry.ID
    name: str

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Place | None:
        # an entity interface: answer with the concrete type behind the id
        return Spot.resolve_reference(id) or Garage.resolve_reference(id)


@strawberry.federation.type(keys=["code"])
class District:
    code: str

    @strawberry.field
    def spots(self) -> list[Spot]:
        return [Spot.from_row(r) for r in world["spots"].values() if r["district"] == self.code]

    @strawberry.field
    def free_spots(self) -> int:
        return sum(1 for r in world["spots"].values() if r["district"] == self.code and r["free"])

    @classmethod
    def resolve_reference(cls, code: str) -> District:
        return cls(code=code)


@strawberry.federation.type(keys=["id"])
class Spot(Place):
    id: strawberry.ID
    name: str
    price_per_hour: float
    district_code: strawberry.Private[str]

    @strawberry.field
    def district(self) -> District:
        return District(code=self.district_code)

    @classmethod
    def from_row(cls, row: dict) -> Spot:
        return cls(
            id=strawberry.ID(row["id"]), name=row["label"], price_per_hour=row["price"], district_code=row["district"]
        )

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Spot | None:
        row = world["spots"].get(id)
        return cls.from_row(row) if row else None


@strawberry.federation.type(keys=["id"])
class Garage(Place):
    id: strawberry.ID
    name: str
    levels: int

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Garage | None:
        row = world["garages"].get(id)
        return cls(id=strawberry.ID(row["id"]), name=row["name"], levels=row["levels"]) if row else None


@strawberry.federation.type(keys=["plate"])
class Vehicle:
    plate: str = strawberry.federation.field(
        directives=[privacy.NonPersonal()]
    )  # non-personal in this federation world (see residents.py)
    kind: str

    @classmethod
    def resolve_reference(cls, plate: str) -> Vehicle | None:
        row = world["vehicles"].get(plate)
        return cls(plate=row["plate"], kind=row["kind"]) if row else None


@strawberry.type
class Booking:
    id: strawberry.ID
    hours: int
    spot_id: strawberry.Private[str]
    plate: strawberry.Private[str]

    @strawberry.field
    def spot(self) -> Spot:
        return Spot.from_row(world["spots"][self.spot_id])

    @strawberry.field
    def vehicle(self) -> Vehicle:
        return Vehicle.resolve_reference(self.plate)  # type: ignore[return-value]

    @strawberry.field
    def cost(self) -> float:
        return world["spots"][self.spot_id]["price"] * self.hours


def _booking(row: dict) -> Booking:
    return Booking(id=strawberry.ID(row["id"]), hours=row["hours"], spot_id=row["spot"], plate=row["plate"])


@strawberry.federation.type(keys=["id"])
class Resident:
    id: strawberry.ID

    @strawberry.field
    def bookings(self) -> list[Booking]:
        return [_booking(b) for b in world["bookings"] if b["resident"] == self.id]

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Resident:
        return cls(id=id)


@strawberry.type
class Query:
    @strawberry.field
    def spots(self) -> list[Spot]:
        return [Spot.from_row(r) for r in world["spots"].values()]

    @strawberry.field
    def places(self) -> list[Place]:
        spots: list[Place] = [Spot.from_row(r) for r in world["spots"].values()]
        return spots + [Garage.resolve_reference(g) for g in world["garages"]]  # type: ignore[misc]

    @strawberry.field
    async def slow(self) -> str:
        await asyncio.sleep(2)
        return "slow"


@strawberry.type
class Mutation:
    @strawberry.mutation
    def book_spot(self, resident_id: strawberry.ID, spot_id: strawberry.ID, hours: int) -> Booking:
        row = {
            "id": f"b{len(world['bookings']) + 1}",
            "resident": resident_id,
            "spot": spot_id,
            "hours": hours,
            "plate": "AB-123-CD",
        }
        world["bookings"].append(row)
        world["spots"][spot_id]["free"] = False
        return _booking(row)


schema = strawberry.federation.Schema(
    query=Query, mutation=Mutation, types=[Resident, Spot, Garage], federation_version="2.5"
)
