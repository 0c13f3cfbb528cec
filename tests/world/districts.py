"""districts: the city's districts. Adds Resident.district through @requires."""

from __future__ import annotations

import strawberry

from .data import world


@strawberry.federation.type(keys=["code"])
class District:
    code: str
    name: str
    population: int

    @classmethod
    def from_code(cls, code: str) -> District | None:
        row = world["districts"].get(code)
        return cls(code=row["code"], name=row["name"], population=row["population"]) if row else None

    @classmethod
    def resolve_reference(cls, code: str) -> District | None:
        return cls.from_code(code)


@strawberry.federation.type(keys=["id"])
class Resident:
    id: strawberry.ID
    district_code: str = strawberry.federation.field(name="districtCode", external=True)

    @strawberry.federation.field(requires=["districtCode"])
    def district(self) -> District | None:
        return District.from_code(self.district_code)

    @classmethod
    def resolve_reference(cls, id: strawberry.ID, districtCode: str | None = None) -> Resident:
        return cls(id=id, district_code=districtCode or "")


@strawberry.type
class Query:
    @strawberry.field
    def districts(self) -> list[District]:
        return [District.from_code(code) for code in world["districts"]]  # type: ignore[misc]

    @strawberry.field
    def district(self, code: str) -> District | None:
        return District.from_code(code)


schema = strawberry.federation.Schema(query=Query, types=[Resident], federation_version="2.5")
