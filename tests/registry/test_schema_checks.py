"""Schema checks over real HTTP, on SQLite and PostgreSQL: a change breaking what no client used is a
warning, one breaking what a client's operation selected (recorded usage) is refused unless the
operator accepts it; recorded usage keeps counts and coordinates, never a value.

Usage is recorded by gateway.usage's hook. Where gateway/engine.py calls it for every planned
request, `test_requests_over_http_are_recorded` checks that path; the other tests call the hook
themselves, on the gateway's own loop, with the served engine's prepared operation: the call the
engine makes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import sqlalchemy
from graphql import BreakingChangeType, build_schema, find_breaking_changes

from gateway import usage
from gateway.app import registry_app
from gateway.registry._checks import _breaking
from tests.postgres import fresh_database
from tests.registry.conftest import LOOPBACK, OPERATOR_KEY
from tests.workers import worker_database
from tests.world.server import AppServer

POSTGRES_URL = f"postgresql://postgres@127.0.0.1:5432/{worker_database('citygate_q')}"
HOOK_WIRED = "usage.record(" in (Path(__file__).parents[2] / "gateway" / "engine.py").read_text(encoding="utf-8")


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'checks.db'}"
    return await fresh_database(worker_database("citygate_q"))


class CheckedGateway:
    """A registry gateway recording usage, served in its own thread (its own loop)."""

    def __init__(self, store_url: str) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.recorder: usage.UsageRecorder | None = None

        async def on_start(gateway) -> None:
            self.loop = asyncio.get_running_loop()
            self.recorder = usage.install(gateway.store, flush_every=3600)  # flushed by each check

        self.gateway = registry_app(
            folder=None, store_url=store_url, policy=LOOPBACK, operator_key=OPERATOR_KEY, on_start=on_start
        )
        self.server = AppServer(self.gateway.app, lifespan="on").start()
        self.client = httpx.AsyncClient(base_url=self.server.base_url, timeout=60)

    async def on_gateway_loop(self, coroutine):
        assert self.loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    async def sent(self, client: str, query: str, times: int = 1) -> None:
        """`client` sent `query` `times` times: the engine's hook, called as the engine calls it."""

        async def record() -> None:
            engine = self.gateway.state.engine
            for _ in range(times):
                usage.record(client, engine.planner.prepare(query, None), engine.model.api_schema)

        await self.on_gateway_loop(record())

    async def admin(self, method: str, path: str, json=None, key: str = OPERATOR_KEY) -> httpx.Response:
        return await self.client.request(method, path, json=json, headers={"authorization": f"Bearer {key}"})

    async def usage_rows(self) -> list[tuple]:
        async def read() -> list[tuple]:
            async with self.gateway.store.engine.connect() as connection:
                counts = (await connection.execute(sqlalchemy.text("SELECT * FROM usage_counts"))).all()
                coordinates = (await connection.execute(sqlalchemy.text("SELECT * FROM usage_coordinates"))).all()
            return [tuple(row) for row in [*counts, *coordinates]]

        return await self.on_gateway_loop(read())

    async def close(self) -> None:
        if self.recorder is not None:
            await self.on_gateway_loop(usage.uninstall(self.recorder))
        await self.client.aclose()
        await asyncio.to_thread(self.server.stop)


@pytest.fixture
async def checked(store_url):
    gateway = CheckedGateway(store_url)
    yield gateway
    await gateway.close()


async def city(checked: CheckedGateway, world) -> str:
    """The city's connectors registered; parking's SDL as its subgraph serves it."""
    for name in ("residents", "districts", "parking"):
        response = await checked.admin("PUT", f"/admin/connectors/{name}", {"owner": "city", "url": world.url(name)})
        assert response.status_code == 200, response.text
    async with httpx.AsyncClient() as client:
        answer = await client.post(world.url("parking"), json={"query": "{ _service { sdl } }"})
    return answer.json()["data"]["_service"]["sdl"]


def without(sdl: str, *lines: str) -> str:
    for line in lines:
        assert line in sdl
        sdl = sdl.replace(line, "")
    return sdl


PRICE = "  pricePerHour: Float!\n"
LEVELS = "  levels: Int!\n"


async def test_a_removed_field_is_a_warning_when_unused_and_refused_when_a_client_used_it(checked, world):
    sdl = await city(checked, world)
    changed = {"name": "parking", "owner": "city", "url": world.url("parking"), "sdl": without(sdl, PRICE, LEVELS)}

    # nobody used either field: warnings, and the change is valid
    response = await checked.admin("POST", "/admin/connectors/validate", changed)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] and body["errors"] == []
    breaking = {(w["code"], w["change"], w["coordinate"]) for w in body["warnings"] if w["code"].startswith("BREAKING")}
    assert breaking == {
        ("BREAKING_CHANGE", "FIELD_REMOVED", "Spot.pricePerHour"),
        ("BREAKING_CHANGE", "FIELD_REMOVED", "Garage.levels"),
    }

    # two clients' operations select Spot.pricePerHour (one through a fragment); Garage.levels stays unused
    await checked.sent("mobile-app", "{ spots { name pricePerHour } }", times=3)
    await checked.sent("kiosk", "query Prices { places { ...P } } fragment P on Spot { pricePerHour }", times=2)
    await checked.sent("kiosk", "{ spots { name } }", times=5)

    response = await checked.admin("POST", "/admin/connectors/validate", changed)
    assert response.status_code == 422
    body = response.json()
    assert [(e["code"], e["coordinate"], e["clients"], e["operations"], e["requests"]) for e in body["errors"]] == [
        ("BREAKING_CHANGE_IN_USE", "Spot.pricePerHour", 2, 2, 5)
    ]
    assert "accept_breaking" in body["errors"][0]["message"]
    assert {(w["code"], w["coordinate"]) for w in body["warnings"] if w["code"].startswith("BREAKING")} == {
        ("BREAKING_CHANGE", "Garage.levels")
    }

    # registering is refused the same way: the served supergraph stays
    engine_before = checked.gateway.state.engine
    response = await checked.admin("PUT", "/admin/connectors/parking", changed)
    assert response.status_code == 422
    assert [e["code"] for e in response.json()["errors"]] == ["BREAKING_CHANGE_IN_USE"]
    assert checked.gateway.state.engine is engine_before
    answer = (await checked.client.post("/graphql", json={"query": "{ spots { pricePerHour } }"})).json()
    assert "errors" not in answer and answer["data"]["spots"]

    # the connector's owner cannot accept it; the operator can
    partner_key = (await checked.admin("POST", "/admin/partners", {"name": "city"})).json()["key"]
    response = await checked.admin(
        "PUT", "/admin/connectors/parking", {**changed, "accept_breaking": True}, key=partner_key
    )
    assert response.status_code == 422 and [e["code"] for e in response.json()["errors"]] == ["BREAKING_CHANGE_IN_USE"]
    response = await checked.admin("PUT", "/admin/connectors/parking", {**changed, "accept_breaking": True})
    assert response.status_code == 200, response.text
    accepted = [w for w in response.json()["warnings"] if w["code"] == "BREAKING_CHANGE_IN_USE"]
    # with the engine's hook in place, the public request above used it too
    assert [(w["coordinate"], w["accepted"], w["clients"]) for w in accepted] == [
        ("Spot.pricePerHour", True, 2 + HOOK_WIRED)
    ]
    assert checked.gateway.state.engine is not engine_before
    answer = (await checked.client.post("/graphql", json={"query": "{ spots { pricePerHour } }"})).json()
    assert answer["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_removed_arguments_and_connectors_are_reported(checked, world):
    sdl = await city(checked, world)
    response = await checked.admin("PUT", "/admin/connectors/ratings", {"owner": "city", "url": world.url("ratings")})
    assert response.status_code == 200, response.text
    await checked.sent("mobile-app", 'mutation { bookSpot(residentId: "r1", spotId: "s1", hours: 2) { id } }')
    await checked.sent("mobile-app", "{ topRated { name } }", times=4)

    # an argument removed that a client gave: refused
    changed = {
        "name": "parking",
        "owner": "city",
        "url": world.url("parking"),
        "sdl": sdl.replace(", hours: Int!)", ")"),
    }
    response = await checked.admin("POST", "/admin/connectors/validate", changed)
    assert response.status_code == 422
    assert [(e["change"], e["coordinate"], e["operations"]) for e in response.json()["errors"]] == [
        ("ARG_REMOVED", "Mutation.bookSpot(hours:)", 1)
    ]

    # removing a connector is the owner's right: what it breaks is reported, never refused
    response = await checked.admin("DELETE", "/admin/connectors/ratings")
    assert response.status_code == 200, response.text
    in_use = [w for w in response.json()["warnings"] if w["code"] == "BREAKING_CHANGE_IN_USE"]
    assert [(w["coordinate"], w["requests"], w["accepted"]) for w in in_use] == [("Query.topRated", 4, True)]


async def test_recorded_usage_holds_no_value_sent(checked, world):
    await city(checked, world)
    await checked.sent("mobile-app", '{ resident(id: "r1") { name bookings { hours } } }')
    await checked.sent("mobile-app", '{ resident(id: "r2") { name bookings { hours } } }')
    await checked.sent(
        "mobile-app", 'mutation { bookSpot(residentId: "r3", spotId: "s-secret-spot", hours: 7) { id } }'
    )
    await checked.on_gateway_loop(checked.recorder.flush())
    rows = await checked.usage_rows()
    cells = [str(cell) for row in rows for cell in row]
    assert not [cell for cell in cells for value in ("r1", "r2", "r3", "secret") if value in cell]
    counts = [row for row in rows if len(row) == 4]
    # both resident queries are one operation (their documents differ only by a value), sent twice
    assert sorted(row[3] for row in counts) == [1, 2]
    coordinates = {row[1] for row in rows if len(row) == 2}
    assert {
        "Query.resident",
        "Query.resident(id:)",
        "Resident.name",
        "Resident.bookings",
        "Booking.hours",
        "Mutation.bookSpot(hours:)",
    } <= coordinates


@pytest.mark.skipif(not HOOK_WIRED, reason="gateway/engine.py does not call usage.record yet")
async def test_requests_over_http_are_recorded(checked, world):
    sdl = await city(checked, world)
    for _ in range(3):
        answer = (await checked.client.post("/graphql", json={"query": "{ spots { pricePerHour } }"})).json()
        assert "errors" not in answer
    changed = {"name": "parking", "owner": "city", "url": world.url("parking"), "sdl": without(sdl, PRICE)}
    response = await checked.admin("POST", "/admin/connectors/validate", changed)
    assert response.status_code == 422
    assert [(e["coordinate"], e["clients"], e["requests"]) for e in response.json()["errors"]] == [
        ("Spot.pricePerHour", 1, 3)
    ]


def test_every_kind_of_breaking_change_is_traced_to_its_coordinate():
    """graphql-core's descriptions are read for coordinates: each kind it reports must be read."""
    old = build_schema("""
        directive @tagged(name: String, x: Int) repeatable on FIELD | QUERY
        type Query { a(x: Int, y: String): String b: Int u: U e(c: Color, i: In): E r: I gone: Gone }
        type A implements I { id: ID f: Int } type B { id: ID } union U = A | B interface I { id: ID }
        enum E { X Y } enum Color { RED BLUE } input In { p: Int q: String } type Gone { z: Int }
        type Shape { s: Int }
        directive @old on FIELD
    """)
    new = build_schema("""
        directive @tagged(y: Int!) on FIELD
        type Query { a(y: Int, z: Int!): String b: String u: U e(c: Color, i: In): E r: I }
        type A { id: ID f: Int } type B { id: ID } union U = B interface I { id: ID }
        enum E { X } enum Color { RED BLUE } input In { p: Int r: Int! }
        interface Shape { s: Int }
    """)
    traced = {}
    for change in find_breaking_changes(old, new):
        found = _breaking(old, change.type, change.description)
        assert found.coordinate is not None and found.affects, change
        traced.setdefault(found.change, set()).add((found.coordinate, found.affects))
    assert set(traced) == {kind.name for kind in BreakingChangeType}
    assert traced["FIELD_REMOVED"] == {("Query.gone", ("Query.gone",)), ("In.q", ("In", "In.q"))}
    assert traced["TYPE_REMOVED"] == {("Gone", ("Gone", "Gone.z"))}
    assert traced["REQUIRED_ARG_ADDED"] == {("Query.a(z:)", ("Query.a", "Query.a(x:)", "Query.a(y:)"))}
    assert traced["TYPE_REMOVED_FROM_UNION"] == {("U.A", ("A",))}


async def test_connector_validate_prints_the_breaking_changes(checked, world, tmp_path):
    import os
    import subprocess
    import sys

    sdl = await city(checked, world)
    folder = tmp_path / "parking"
    folder.mkdir()
    (folder / "schema.graphql").write_text(without(sdl, PRICE), encoding="utf-8")
    (folder / "manifest.yaml").write_text(
        f"name: parking\nowner: city\nkind: subgraph\nurl: {world.url('parking')}\nsdl_file: schema.graphql\n",
        encoding="utf-8",
    )

    def validate() -> subprocess.CompletedProcess:
        env = {**os.environ, "CITYGATE_URL": checked.server.base_url, "CITYGATE_KEY": OPERATOR_KEY, "COLUMNS": "400"}
        command = [sys.executable, "-m", "gateway.cli", "connector", "validate", str(folder)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)

    unused = await asyncio.to_thread(validate)
    assert unused.returncode == 0, unused.stdout + unused.stderr
    printed = unused.stdout + unused.stderr
    assert "warning BREAKING_CHANGE: FIELD_REMOVED: Field Spot.pricePerHour was removed." in printed
    assert "1 breaking change(s)" in printed

    await checked.sent("mobile-app", "{ spots { pricePerHour } }")
    used = await asyncio.to_thread(validate)
    assert used.returncode == 1
    assert (
        "error BREAKING_CHANGE_IN_USE: FIELD_REMOVED: Field Spot.pricePerHour was removed. Used by 1 operation(s) of 1 client(s)"
        in used.stdout + used.stderr
    )
