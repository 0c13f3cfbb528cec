"""The public gateways benchmark's four subgraphs (accounts, inventory, products, reviews):
their schema and data, our code, in Strawberry.

Served by one tiny ASGI app whose answers are memoized by request body: a body is executed once,
then answered from memory, so the subgraphs are never the bottleneck. It counts the requests each
subgraph receives (`GET /counts`, `POST /counts/reset`).

    python -m bench.subgraphs --port 4200 [--annotated]

With --annotated every field carries a privacy annotation (the "privacy on" scenario): a
@personal category, or none where default private makes it personal (the ids, each type's
subject field: `user.unique_id`); fields returning another type with a subject are links.
"""

from __future__ import annotations

import argparse
from collections import Counter

import orjson
import strawberry
import uvicorn

from gateway.sdk import privacy

USERS = [
    {"id": "1", "name": "Uri Goldshtein", "username": "urigo"},
    {"id": "2", "name": "Dotan Simha", "username": "dotansimha"},
    {"id": "3", "name": "Kamil Kisiela", "username": "kamilkisiela"},
    {"id": "4", "name": "Arda Tanrikulu", "username": "ardatan"},
    {"id": "5", "name": "Gil Gardosh", "username": "gilgardosh"},
    {"id": "6", "name": "Laurin Quast", "username": "laurin"},
]
PRODUCTS = [
    {"upc": "1", "name": "Table", "price": 899, "weight": 100, "inStock": True},
    {"upc": "2", "name": "Couch", "price": 1299, "weight": 1000, "inStock": False},
    {"upc": "3", "name": "Glass", "price": 15, "weight": 20, "inStock": False},
    {"upc": "4", "name": "Chair", "price": 499, "weight": 100, "inStock": False},
    {"upc": "5", "name": "TV", "price": 1299, "weight": 1000, "inStock": True},
    {"upc": "6", "name": "Lamp", "price": 6999, "weight": 300, "inStock": True},
    {"upc": "7", "name": "Grill", "price": 3999, "weight": 2000, "inStock": True},
    {"upc": "8", "name": "Fridge", "price": 100000, "weight": 6000, "inStock": False},
    {"upc": "9", "name": "Sofa", "price": 9999, "weight": 800, "inStock": True},
]
_LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. "
    "Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure "
    "dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non "
    "proident, sunt in culpa qui officia deserunt mollit anim id est laborum."
)
REVIEWS = [
    {"id": str(i), "body": _LOREM[: 140 + (i * 97) % 300], "product": upc}
    for i, upc in enumerate(["1", "1", "1", "1", "2", "2", "2", "2", "3", "4", "4"], start=1)
]


def _personal(category: str, annotated: bool) -> list:
    return [privacy.Personal(category=category)] if annotated else []


def schemas(annotated: bool = False) -> dict[str, strawberry.federation.Schema]:
    """The four subgraphs; `annotated` makes every field personal (annotated, or by default)."""
    subject = [privacy.Subject(field="id")] if annotated else []

    # -- accounts ---------------------------------------------------------------------------
    @strawberry.federation.type(keys=["id"], name="User", directives=subject)
    class AccountUser:
        id: strawberry.ID
        name: str | None = strawberry.federation.field(directives=_personal("user.name", annotated))
        username: str | None = strawberry.federation.field(directives=_personal("user.account.username", annotated))
        birthday: int | None = strawberry.federation.field(
            directives=_personal("user.demographic.date_of_birth", annotated)
        )

        @classmethod
        def of(cls, row: dict) -> AccountUser:
            return cls(id=strawberry.ID(row["id"]), name=row["name"], username=row["username"], birthday=1234567890)

        @classmethod
        def resolve_reference(cls, id: strawberry.ID) -> AccountUser | None:
            return next((cls.of(u) for u in USERS if u["id"] == id), None)

    @strawberry.type(name="Query")
    class AccountsQuery:
        @strawberry.field
        def me(self) -> AccountUser | None:
            return AccountUser.of(USERS[0])

        @strawberry.field
        def user(self, id: strawberry.ID) -> AccountUser | None:
            return AccountUser.resolve_reference(id)

        @strawberry.field
        def users(self) -> list[AccountUser | None] | None:
            return [AccountUser.of(u) for u in USERS]

    # -- products -----------------------------------------------------------------------------
    @strawberry.federation.type(
        keys=["upc"], name="Product", directives=[privacy.Subject(field="upc")] if annotated else []
    )
    class CatalogProduct:
        upc: str
        name: str | None = strawberry.federation.field(directives=_personal("user.content", annotated))
        price: int | None = strawberry.federation.field(directives=_personal("user.financial", annotated))
        weight: int | None = strawberry.federation.field(directives=_personal("user.content", annotated))

        @classmethod
        def of(cls, row: dict) -> CatalogProduct:
            return cls(upc=row["upc"], name=row["name"], price=row["price"], weight=row["weight"])

        @classmethod
        def resolve_reference(cls, upc: str) -> CatalogProduct | None:
            return next((cls.of(p) for p in PRODUCTS if p["upc"] == upc), None)

    @strawberry.type(name="Query")
    class ProductsQuery:
        @strawberry.field
        def top_products(self, first: int | None = 5) -> list[CatalogProduct | None] | None:
            return [CatalogProduct.of(p) for p in PRODUCTS[: first or 5]]

    # -- inventory ----------------------------------------------------------------------------
    @strawberry.federation.type(keys=["upc"], name="Product", extend=True)
    class StockProduct:
        upc: str = strawberry.federation.field(external=True)
        weight: int | None = strawberry.federation.field(external=True)
        price: int | None = strawberry.federation.field(external=True)
        in_stock: bool | None = strawberry.federation.field(directives=_personal("user.content", annotated))

        @strawberry.federation.field(requires=["price weight"], directives=_personal("user.content", annotated))
        def shipping_estimate(self) -> int | None:
            if self.price is None:
                return None
            if self.price > 1000:
                return 0
            return self.weight // 2 if self.weight is not None else None

        @classmethod
        def resolve_reference(
            cls, upc: str, price: int | None = None, weight: int | None = None
        ) -> StockProduct | None:
            row = next((p for p in PRODUCTS if p["upc"] == upc), None)
            return cls(upc=upc, weight=weight, price=price, in_stock=row["inStock"]) if row else None

    @strawberry.type(name="Query")
    class InventoryQuery:
        @strawberry.field
        def _inventory(self) -> int:
            return len(PRODUCTS)

    # -- reviews ------------------------------------------------------------------------------
    @strawberry.federation.type(keys=["upc"], name="Product", extend=True)
    class ReviewedProduct:
        upc: str = strawberry.federation.field(external=True)

        @strawberry.field
        def reviews(self) -> list[Review | None] | None:
            return [Review.of(r) for r in REVIEWS if r["product"] == self.upc]

        @classmethod
        def resolve_reference(cls, upc: str) -> ReviewedProduct:
            return cls(upc=upc)

    @strawberry.federation.type(keys=["id"], name="User", extend=True)
    class ReviewAuthor:
        id: strawberry.ID = strawberry.federation.field(external=True)
        username: str | None = strawberry.federation.field(external=True)

        @strawberry.field
        def reviews(self) -> list[Review | None] | None:
            return [Review.of(r) for r in REVIEWS[0:2]]

        @classmethod
        def resolve_reference(cls, id: strawberry.ID) -> ReviewAuthor:
            return cls(id=id, username="user")

    @strawberry.federation.type(keys=["id"], directives=subject)
    class Review:
        id: strawberry.ID
        body: str | None = strawberry.federation.field(directives=_personal("user.content", annotated))
        product_upc: strawberry.Private[str]

        @strawberry.field
        def product(self) -> ReviewedProduct | None:
            return ReviewedProduct(upc=self.product_upc)

        @strawberry.federation.field(provides=["username"])
        def author(self) -> ReviewAuthor | None:
            return ReviewAuthor(id=strawberry.ID("1"), username="urigo")

        @classmethod
        def of(cls, row: dict) -> Review:
            return cls(id=strawberry.ID(row["id"]), body=row["body"], product_upc=row["product"])

        @classmethod
        def resolve_reference(cls, id: strawberry.ID) -> Review | None:
            return next((cls.of(r) for r in REVIEWS if r["id"] == id), None)

    @strawberry.type(name="Query")
    class ReviewsQuery:
        @strawberry.field
        def _reviews(self) -> int:
            return len(REVIEWS)

    # Strawberry resolves (postponed) annotations in the module's namespace: publish this
    # variant's classes there before building the schemas.
    globals().update({name: value for name, value in locals().items() if isinstance(value, type)})
    version = "2.5"
    return {
        "accounts": strawberry.federation.Schema(query=AccountsQuery, types=[AccountUser], federation_version=version),
        "inventory": strawberry.federation.Schema(
            query=InventoryQuery, types=[StockProduct], federation_version=version
        ),
        "products": strawberry.federation.Schema(
            query=ProductsQuery, types=[CatalogProduct], federation_version=version
        ),
        "reviews": strawberry.federation.Schema(
            query=ReviewsQuery, types=[Review, ReviewAuthor, ReviewedProduct], federation_version=version
        ),
    }


def sdl_of(schema) -> str:
    return schema.execute_sync("{ _service { sdl } }").data["_service"]["sdl"]


class MemoizedSubgraphs:
    """A raw ASGI app: POST /<subgraph> answered from a cache keyed by the request body."""

    def __init__(self, schemas: dict) -> None:
        self.schemas = schemas
        self.cache: dict[tuple[str, bytes], bytes] = {}
        self.counts: Counter = Counter()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"].strip("/")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if path == "counts":
            if scope["method"] == "POST":
                self.counts.clear()
            return await self._answer(send, orjson.dumps(dict(self.counts)))
        if path == "health":
            return await self._answer(send, b'{"ok":true}')
        schema = self.schemas.get(path)
        if schema is None:
            return await self._answer(send, b'{"errors":[{"message":"no such subgraph"}]}', 404)
        self.counts[path] += 1
        answer = self.cache.get((path, body))
        if answer is None:
            request = orjson.loads(body)
            result = await schema.execute(request["query"], variable_values=request.get("variables"))
            payload: dict = {"data": result.data}
            if result.errors:
                payload["errors"] = [e.formatted for e in result.errors]
            answer = self.cache[(path, body)] = orjson.dumps(payload)
        await self._answer(send, answer)

    @staticmethod
    async def _answer(send, body: bytes, status: int = 200) -> None:
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=4200)
    parser.add_argument("--annotated", action="store_true")
    args = parser.parse_args()
    uvicorn.run(
        MemoizedSubgraphs(schemas(args.annotated)),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


if __name__ == "__main__":
    main()
