"""The benchmark's four subgraphs (accounts, inventory, products, reviews) as REST/JSON APIs: the
same data as bench/subgraphs.py, shaped as start-ups' JSON APIs are (snake_case, ids in query
strings), for the REST connectors of bench/rest/ (`python -m bench.rest`).

One Starlette app serves the four under /accounts, /inventory, /products and /reviews. A raw ASGI
layer in front memoizes every answer by method, path and query string: a request is routed and
answered once, then from memory, so the APIs are never the bottleneck (as bench/subgraphs.py).
It counts the requests each API receives (`GET /counts`, `POST /counts/reset`).

    python -m bench.rest_apis --port 4300

Routes (GET, JSON):
- /accounts/me, /accounts/users (all, or `?id=1&id=2`: the gateway's batched entity calls),
  /accounts/users/{id} (null when unknown)
- /products/top?first=5, /products/products?upc=1&upc=2
- /inventory/count, /inventory/products?upc=1&upc=2 (stock and the shipping estimate; the price
  and weight it is computed from are the products API's, which this API also knows)
- /reviews/count, /reviews/reviews?id=1&id=2, /reviews/products?upc=1&upc=2 (each product's
  reviews), /reviews/users?id=1&id=2 (each author's reviews)
"""

from __future__ import annotations

import argparse
from collections import Counter

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from bench.subgraphs import PRODUCTS, REVIEWS, USERS

BIRTHDAY = 1234567890  # what the accounts subgraph answers for everyone
# the reviews subgraph's fixed answers: every review's author, every user's reviews
AUTHOR = {"id": "1", "username": "urigo"}
AUTHORS_REVIEWS = REVIEWS[0:2]


class JSONAnswer(Response):
    media_type = "application/json"

    def render(self, content) -> bytes:
        return orjson.dumps(content)


def _user(row: dict) -> dict:
    return {"id": row["id"], "name": row["name"], "username": row["username"], "birthday": BIRTHDAY}


def _review(row: dict) -> dict:
    return {"id": row["id"], "body": row["body"], "product_upc": row["product"], "author": AUTHOR}


def _shipping_estimate(row: dict) -> int | None:
    # as the inventory subgraph computes it from the price and weight it @requires
    if row["price"] > 1000:
        return 0
    return row["weight"] // 2


# -- accounts ---------------------------------------------------------------------------------


async def accounts_me(request: Request) -> JSONAnswer:
    return JSONAnswer(_user(USERS[0]))


async def accounts_users(request: Request) -> JSONAnswer:
    ids = request.query_params.getlist("id")
    rows = [u for u in USERS if u["id"] in ids] if ids else USERS
    return JSONAnswer([_user(u) for u in rows])


async def accounts_user(request: Request) -> JSONAnswer:
    row = next((u for u in USERS if u["id"] == request.path_params["id"]), None)
    return JSONAnswer(_user(row) if row else None)


# -- products ---------------------------------------------------------------------------------


def _product(row: dict) -> dict:
    return {"upc": row["upc"], "name": row["name"], "price": row["price"], "weight": row["weight"]}


async def products_top(request: Request) -> JSONAnswer:
    first = int(request.query_params.get("first") or 5)
    return JSONAnswer([_product(p) for p in PRODUCTS[:first]])


async def products_by_upc(request: Request) -> JSONAnswer:
    upcs = request.query_params.getlist("upc")
    return JSONAnswer([_product(p) for p in PRODUCTS if p["upc"] in upcs])


# -- inventory --------------------------------------------------------------------------------


async def inventory_count(request: Request) -> JSONAnswer:
    return JSONAnswer({"count": len(PRODUCTS)})


async def inventory_products(request: Request) -> JSONAnswer:
    upcs = request.query_params.getlist("upc")
    return JSONAnswer(
        [
            {
                "upc": p["upc"],
                "in_stock": p["inStock"],
                "shipping_estimate": _shipping_estimate(p),
                "price": p["price"],
                "weight": p["weight"],
            }
            for p in PRODUCTS
            if p["upc"] in upcs
        ]
    )


# -- reviews ----------------------------------------------------------------------------------


async def reviews_count(request: Request) -> JSONAnswer:
    return JSONAnswer({"count": len(REVIEWS)})


async def reviews_by_id(request: Request) -> JSONAnswer:
    ids = request.query_params.getlist("id")
    return JSONAnswer([_review(r) for r in REVIEWS if r["id"] in ids])


async def reviews_of_products(request: Request) -> JSONAnswer:
    # every upc asked gets its (maybe empty) list, as the reviews subgraph resolves any Product
    upcs = request.query_params.getlist("upc")
    return JSONAnswer([{"upc": upc, "reviews": [_review(r) for r in REVIEWS if r["product"] == upc]} for upc in upcs])


async def reviews_of_users(request: Request) -> JSONAnswer:
    ids = request.query_params.getlist("id")
    usernames = {u["id"]: u["username"] for u in USERS}
    return JSONAnswer(
        [{"id": i, "username": usernames.get(i), "reviews": [_review(r) for r in AUTHORS_REVIEWS]} for i in ids]
    )


APIS = ("accounts", "inventory", "products", "reviews")

app = Starlette(
    routes=[
        Mount(
            "/accounts",
            routes=[Route("/me", accounts_me), Route("/users", accounts_users), Route("/users/{id}", accounts_user)],
        ),
        Mount("/products", routes=[Route("/top", products_top), Route("/products", products_by_upc)]),
        Mount("/inventory", routes=[Route("/count", inventory_count), Route("/products", inventory_products)]),
        Mount(
            "/reviews",
            routes=[
                Route("/count", reviews_count),
                Route("/reviews", reviews_by_id),
                Route("/products", reviews_of_products),
                Route("/users", reviews_of_users),
            ],
        ),
    ]
)


class MemoizedApis:
    """A raw ASGI app: each (method, path, query string) routed through `app` once, then answered
    from memory; counts the requests per API."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.cache: dict[tuple[str, str, bytes], tuple[int, bytes]] = {}
        self.counts: Counter = Counter()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await self.inner(scope, receive, send)
        path = scope["path"]
        if path == "/counts":
            if scope["method"] == "POST":
                self.counts.clear()
            return await self._answer(send, 200, orjson.dumps(dict(self.counts)))
        if path == "/health":
            return await self._answer(send, 200, b'{"ok":true}')
        api = path.strip("/").split("/", 1)[0]
        if api in APIS:
            self.counts[api] += 1
        key = (scope["method"], path, scope["query_string"])
        cached = self.cache.get(key)
        if cached is None:
            cached = await self._route(scope, receive)
            if cached[0] == 200:
                self.cache[key] = cached
        await self._answer(send, *cached)

    async def _route(self, scope, receive) -> tuple[int, bytes]:
        status, chunks = 500, []

        async def capture(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.inner(scope, receive, capture)
        return status, b"".join(chunks)

    @staticmethod
    async def _answer(send, status: int, body: bytes) -> None:
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=4300)
    args = parser.parse_args()
    uvicorn.run(
        MemoizedApis(app),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


if __name__ == "__main__":
    main()
