"""A shared-parking operator: spots per district."""

from __future__ import annotations

import strawberry

SPOTS = [
    {"id": f"spot-{n}", "district": f"751{(n % 20) + 1:02d}", "street": street, "pricePerHour": 1.5 + (n % 4) * 0.5, "free": n % 3 != 0}
    for n, street in enumerate(
        ["Rue de Rivoli", "Rue Montorgueil", "Rue de Bretagne", "Rue Vieille-du-Temple", "Rue Mouffetard",
         "Rue de Vaugirard", "Rue de Grenelle", "Rue du Faubourg-Saint-Honoré", "Rue La Fayette", "Rue du Faubourg-Saint-Denis",
         "Rue Oberkampf", "Rue de Charenton", "Avenue d'Italie", "Rue Daguerre", "Rue de la Convention",
         "Rue de Passy", "Rue des Dames", "Rue Lepic", "Rue de Belleville", "Rue des Pyrénées"]
    )
]


@strawberry.federation.type(keys=["code"])
class District:
    code: str

    @strawberry.field
    def parking_spots(self) -> list[Spot]:
        return [Spot.from_row(row) for row in SPOTS if row["district"] == self.code]

    @strawberry.field(description="How many of the district's spots are free right now.")
    def free_spots(self) -> int:
        return sum(1 for row in SPOTS if row["district"] == self.code and row["free"])

    @classmethod
    def resolve_reference(cls, code: str) -> District:
        return cls(code=code)


@strawberry.federation.type(keys=["id"])
class Spot:
    id: strawberry.ID
    street: str
    price_per_hour: float
    free: bool
    district_code: strawberry.Private[str]

    @strawberry.field
    def district(self) -> District:
        return District(code=self.district_code)

    @classmethod
    def from_row(cls, row: dict) -> Spot:
        return cls(id=strawberry.ID(row["id"]), street=row["street"], price_per_hour=row["pricePerHour"], free=row["free"], district_code=row["district"])

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Spot | None:
        return next((cls.from_row(row) for row in SPOTS if row["id"] == id), None)


@strawberry.type
class Query:
    @strawberry.field
    def spots(self, free_only: bool = False) -> list[Spot]:
        return [Spot.from_row(row) for row in SPOTS if row["free"] or not free_only]


schema = strawberry.federation.Schema(query=Query, types=[District], federation_version="2.5")
