"""A real REST partner on loopback (aiohttp.web, port 0): parking spots, districts and rentals,
with endpoints that misbehave on purpose, and what it saw (paths, headers, concurrency)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from gateway.executor import HttpPool

SPOTS = {
    "s1": {
        "id": "s1",
        "label": "Saint-Michel",
        "district": "75105",
        "places": {"total": 120, "free": 14},
        "tags": ["covered", "ev"],
        "kind": "UG",
    },
    "s2": {
        "id": "s2",
        "label": "Bastille",
        "district": "75111",
        "places": {"total": 80, "free": 0},
        "tags": [],
        "kind": "ST",
    },
    "s3": {
        "id": "s3",
        "label": "Oberkampf",
        "district": "75111",
        "places": {"total": 45, "free": 9},
        "tags": ["ev"],
        "kind": "XX",
    },
}
DISTRICTS = {"75105": {"code": "75105", "name": "Panthéon"}, "75111": {"code": "75111", "name": "Popincourt"}}
RENTALS = [
    {"id": "r1", "spot": "s1", "resident": "res-1", "hours": 2},
    {"id": "r2", "spot": "s2", "resident": "res-2", "hours": 5},
    {"id": "r3", "spot": "s1", "resident": "res-2", "hours": 1},
]
LEAKED = "jeanne.valjean@example.org"  # what a failing partner puts in its error bodies


@dataclass
class PartnerApi:
    base_url: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path with query)
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    delay: float = 0.0  # seconds each entity answer waits, so concurrent calls overlap
    # seconds a spot's rentals wait, by spot (or a function of it): answers that land apart
    rental_delay: dict[str, float] | None = None
    jitter: Callable[[], float] | None = None  # added to every rentals answer's wait

    def paths(self, prefix: str = "") -> list[str]:
        return [path for _, path in self.requests if path.startswith(prefix)]


def partner_app(api: PartnerApi) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler):
        api.requests.append((request.method, str(request.rel_url)))
        api.headers.append({k.lower(): v for k, v in request.headers.items()})
        api.bodies.append(await request.read())
        api.in_flight += 1
        api.most_in_flight = max(api.most_in_flight, api.in_flight)
        try:
            return await handler(request)
        finally:
            api.in_flight -= 1

    async def spots(request: web.Request) -> web.Response:
        found = [
            s for s in SPOTS.values() if "district" not in request.query or s["district"] == request.query["district"]
        ]
        limit = int(request.query.get("limit", "100"))
        return web.json_response({"results": found[:limit], "total": len(found)})

    async def spot(request: web.Request) -> web.Response:
        await asyncio.sleep(api.delay)
        found = SPOTS.get(request.match_info["id"])
        return web.json_response(found) if found else web.json_response({"error": "not found"}, status=404)

    async def spots_batch(request: web.Request) -> web.Response:
        ids = request.query.getall("id", [])
        return web.json_response([SPOTS[i] for i in reversed(ids) if i in SPOTS])

    async def district(request: web.Request) -> web.Response:
        await asyncio.sleep(api.delay)
        return web.json_response(DISTRICTS[request.match_info["code"]])

    async def districts(request: web.Request) -> web.Response:
        codes = request.query.get("codes", "").split(",")
        return web.json_response({"items": [DISTRICTS[c] for c in codes if c in DISTRICTS]})

    async def rentals_of_spot(request: web.Request) -> web.Response:
        wait = (api.rental_delay or {}).get(request.match_info["id"], 0.0) + (api.jitter() if api.jitter else 0.0)
        if wait:
            await asyncio.sleep(wait)
        return web.json_response([r for r in RENTALS if r["spot"] == request.match_info["id"]])

    async def estimates(request: web.Request) -> web.Response:
        # repeated parameters, in the same order: the shipping cost of each product from the
        # price and weight the gateway sends with it
        upcs, prices, weights = (request.query.getall(name, []) for name in ("upc", "price", "weight"))
        return web.json_response(
            [
                {"upc": upc, "estimate": round(int(price) * 0.01 + int(weight) * 0.5, 2)}
                for upc, price, weight in zip(upcs, prices, weights, strict=True)
            ]
        )

    async def create_rental(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"rental": {"id": "r9", **body}}, status=201)

    async def delete_rental(request: web.Request) -> web.Response:
        return web.Response(status=204)

    # the misbehaving ones
    async def fails(request: web.Request) -> web.Response:
        return web.json_response({"error": f"no such resident {LEAKED}"}, status=500)

    async def hangs(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.json_response({})

    async def html(request: web.Request) -> web.Response:
        return web.Response(text=f"<html><body>Oops {LEAKED}</body></html>", content_type="text/html")

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"results": ["')
        chunk = b"x" * (1024 * 1024)
        for _ in range(20):
            await response.write(chunk)
        await response.write(b'"]}')
        return response

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://localhost:1/steal?who={LEAKED}")

    async def wrong_shapes(request: web.Request) -> web.Response:
        return web.json_response(
            {"results": {"id": "s1"}, "spot": "not an object", "count": {"value": LEAKED}, "label": None}
        )

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "query": [[k, v] for k, v in request.query.items()]})

    app = web.Application(middlewares=[record])
    app.router.add_get("/v1/spots", spots)
    app.router.add_get("/v1/spots/batch", spots_batch)
    app.router.add_get("/v1/spots/{id}", spot)
    app.router.add_get("/v1/spots/{id}/rentals", rentals_of_spot)
    app.router.add_get("/v1/districts", districts)
    app.router.add_get("/v1/districts/{code}", district)
    app.router.add_post("/v1/rentals", create_rental)
    app.router.add_delete("/v1/rentals/{id}", delete_rental)
    app.router.add_get("/v1/fails", fails)
    app.router.add_get("/v1/hangs", hangs)
    app.router.add_get("/v1/html", html)
    app.router.add_get("/v1/huge", huge)
    app.router.add_get("/v1/redirect", redirect)
    app.router.add_get("/v1/wrong", wrong_shapes)
    app.router.add_get("/v1/echo/{rest:.*}", echo)
    app.router.add_get("/v1/estimates", estimates)
    return app


@pytest.fixture
async def partner():
    api = PartnerApi()
    runner = web.AppRunner(partner_app(api), handler_cancellation=True, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    api.base_url = f"http://127.0.0.1:{port}/v1"
    yield api
    await runner.cleanup()


@pytest.fixture
async def pool():
    pool = HttpPool()
    yield pool
    await pool.close()
