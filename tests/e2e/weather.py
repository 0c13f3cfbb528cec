"""A small partner subgraph for the CLI tests: today's weather per district."""

from __future__ import annotations

import strawberry


@strawberry.federation.type(keys=["code"])
class District:
    code: str

    @strawberry.field
    def temperature(self) -> float:
        return 12.0 + int(self.code[-2:]) / 2

    @classmethod
    def resolve_reference(cls, code: str) -> District:
        return cls(code=code)


@strawberry.type
class Query:
    @strawberry.field
    def warmest(self) -> District:
        return District(code="75120")


schema = strawberry.federation.Schema(query=Query, types=[District], federation_version="2.5")
