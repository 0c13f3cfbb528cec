"""residents: who lives in the city. Owns Resident and its contact fields."""

from __future__ import annotations

import strawberry

from gateway.sdk import privacy

from .data import world


@strawberry.federation.type(keys=["id"])
class Resident:
    id: strawberry.ID
    name: str = strawberry.federation.field(shareable=True)
    # this world tests federation, not privacy: its owner declares the e-mail non-personal, which
    # the registry's privacy lint asks of a personal-looking field (tests/privacy has the city
    # where it is personal)
    email: str | None = strawberry.federation.field(directives=[privacy.NonPersonal()])
    # internal: the districts subgraph @requires it, clients never see it
    district_code: str = strawberry.federation.field(name="districtCode", inaccessible=True)
    # taken over by the jobs subgraph with @override(from: "residents")
    nickname: str | None

    @classmethod
    def from_row(cls, row: dict) -> Resident:
        return cls(
            id=strawberry.ID(row["id"]),
            name=row["name"],
            email=row["email"],
            district_code=row["district"],
            nickname=row["nickname"],
        )

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Resident | None:
        row = world["residents"].get(id)
        return cls.from_row(row) if row else None


@strawberry.type
class Query:
    @strawberry.field
    def residents(self) -> list[Resident]:
        return [Resident.from_row(row) for row in world["residents"].values()]

    @strawberry.field
    def resident(self, id: strawberry.ID) -> Resident | None:
        return Resident.resolve_reference(id)

    @strawberry.field
    def broken(self) -> str:
        raise ValueError("residents cannot answer broken")


@strawberry.type
class Mutation:
    @strawberry.mutation
    def rename_resident(self, id: strawberry.ID, name: str) -> Resident | None:
        row = world["residents"].get(id)
        if row is None:
            return None
        row["name"] = name
        return Resident.from_row(row)


schema = strawberry.federation.Schema(query=Query, mutation=Mutation, federation_version="2.5")
