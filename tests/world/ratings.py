"""ratings: residents' ratings of places, contributed to every Place through @interfaceObject."""

from __future__ import annotations

import strawberry

from .data import world


@strawberry.federation.interface_object(keys=["id"])
class Place:
    id: strawberry.ID

    @strawberry.field
    def rating(self) -> float | None:
        return world["ratings"].get(self.id)

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Place:
        return cls(id=id)


@strawberry.type
class Query:
    @strawberry.field
    def top_rated(self) -> list[Place]:
        ranked = sorted(world["ratings"].items(), key=lambda item: -item[1])
        return [Place(id=strawberry.ID(place_id)) for place_id, _ in ranked]


schema = strawberry.federation.Schema(query=Query, federation_version="2.5")
