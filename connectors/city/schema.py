"""The city's own services: the twenty districts of Paris."""

from __future__ import annotations

import strawberry

ARRONDISSEMENTS = [
    "Louvre", "Bourse", "Temple", "Hôtel-de-Ville", "Panthéon", "Luxembourg", "Palais-Bourbon",
    "Élysée", "Opéra", "Entrepôt", "Popincourt", "Reuilly", "Gobelins", "Observatoire",
    "Vaugirard", "Passy", "Batignolles-Monceau", "Buttes-Montmartre", "Buttes-Chaumont", "Ménilmontant",
]


@strawberry.federation.type(keys=["code"])
class District:
    code: str
    name: str
    number: int

    @classmethod
    def numbered(cls, number: int) -> District:
        return cls(code=f"751{number:02d}", name=ARRONDISSEMENTS[number - 1], number=number)

    @classmethod
    def resolve_reference(cls, code: str) -> District | None:
        if len(code) == 5 and code.startswith("751") and code[3:].isdigit() and 1 <= int(code[3:]) <= 20:
            return cls.numbered(int(code[3:]))
        return None


@strawberry.type
class Query:
    @strawberry.field(description="The twenty districts (arrondissements) of Paris.")
    def districts(self) -> list[District]:
        return [District.numbered(n) for n in range(1, 21)]

    @strawberry.field
    def district(self, code: str) -> District | None:
        return District.resolve_reference(code)


schema = strawberry.federation.Schema(query=Query, federation_version="2.5")
