"""Engines and the garbage collector (gateway/collector.py): no full collection while an Engine is
built, a served Engine frozen out of the collector's passes, a retired one freed once idle."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref

import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL

from gateway import collector
from gateway.composition import SubgraphSource, compose
from gateway.connect import RestClient, read_connect_sdl
from gateway.engine import Engine, RequestError
from gateway.executor import InProcessSubgraph, Subgraphs
from gateway.http import GatewayState
from tests.connect.conftest import partner, pool  # noqa: F401 (fixtures: the parking partner's REST API on loopback)
from tests.connect.test_gateway import CITY, PARKING
from tests.world.server import _PLACEHOLDER, SUBGRAPHS, SUPERGRAPH_FILE, AppServer

QUERY = "{ districts { code name } }"


def gauges_supergraph(fields: int) -> str:
    """A harmless partner of `fields` Int fields, 100 a type, composed alone."""
    types = [
        f"type Gauge{t} {{ " + " ".join(f"reading{j}: Int" for j in range(100)) + " }" for t in range(fields // 100)
    ]
    roots = " ".join(f"gauge{t}: Gauge{t}" for t in range(fields // 100))
    link = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])'
    sdl = "\n".join([link, *types, f"type Query {{ {roots} }}"])
    result = compose([SubgraphSource("gauges", sdl, "http://127.0.0.1:9/graphql")])
    assert result.supergraph is not None, result.errors
    return result.supergraph


@pytest.fixture
def managed():
    """This process manages the collector as a serving one does; everything frozen is let go after."""
    thresholds = gc.get_threshold()
    collector.manage()
    yield
    collector._managed = False
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def _frozen_after_release(supergraph: str, release: bool) -> tuple[int, int]:
    """(objects the Engine added to the frozen generation, objects of it still there once dropped)."""
    gc.collect()
    gc.freeze()
    before = gc.get_freeze_count()
    engine = Engine.from_sdl(supergraph)
    collector.serving()
    frozen = gc.get_freeze_count() - before
    if release:
        for _ in engine.release_steps():
            pass
    del engine
    return frozen, gc.get_freeze_count() - before


def test_a_released_engine_is_freed_by_reference_counting_though_frozen(managed):
    supergraph = gauges_supergraph(3_000)
    frozen, left = _frozen_after_release(supergraph, release=True)
    assert frozen > 20_000  # the Engine went out of the collector's passes
    assert left < frozen * 0.05, f"{left} of the Engine's {frozen} frozen objects outlived it"
    # without release_steps the frozen Engine's cycles would stay for the life of the process
    frozen_again, kept = _frozen_after_release(supergraph, release=False)
    assert kept > frozen_again * 0.5


def test_no_full_collection_while_an_engine_is_built(managed):
    supergraph = gauges_supergraph(3_000)
    generations: list[int] = []

    def record(phase, info):
        if phase == "start":
            generations.append(info["generation"])

    gc.set_threshold(700, 10, 10)
    gc.callbacks.append(record)
    try:
        Engine.from_sdl(supergraph)
        assert generations, "the build allocated enough for the young generations to be collected"
        assert 2 not in generations
        assert gc.get_threshold() == (700, 10, 10)  # restored after the build
    finally:
        gc.callbacks.remove(record)


class GatedWorld(AppServer):
    """The world's subgraphs, answering only once `gate` is set."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        inner = Starlette(
            routes=[Route(f"/{name}", GraphQL(schema), methods=["GET", "POST"]) for name, schema in SUBGRAPHS.items()]
        )

        async def app(scope, receive, send):
            if scope["type"] == "http":
                await asyncio.to_thread(self.gate.wait, 10)
            await inner(scope, receive, send)

        super().__init__(app)

    def supergraph(self) -> str:
        return SUPERGRAPH_FILE.read_text().replace(_PLACEHOLDER, self.base_url)


async def _until(condition, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not come true in time")


async def test_a_retired_engine_is_released_once_its_last_request_is_answered(managed, monkeypatch):
    monkeypatch.setattr(collector, "RELEASE_GRACE_SECONDS", 0.05)
    world = GatedWorld().start()
    try:
        old, new = Engine.from_sdl(world.supergraph()), Engine.from_sdl(world.supergraph())
        state = GatewayState(old)
        world.gate.clear()
        in_flight = asyncio.create_task(old.run(QUERY))
        await _until(lambda: old.runs == 1)
        state.engine = new  # the swap: `old` is retired with a request still running on it
        await asyncio.sleep(0.3)  # six times the grace
        assert not old.released
        world.gate.set()
        answered = await in_flight
        assert not answered.errors and answered.data["districts"]
        await _until(lambda: old.released)
        with pytest.raises(RequestError) as late:
            await old.run(QUERY)
        assert late.value.code == "SERVICE_UNAVAILABLE"
        again = await state.engine.run(QUERY)
        assert again.data == answered.data
        await new.close()
    finally:
        world.gate.set()
        world.stop()


async def test_a_retired_engines_own_pool_is_closed_once_released_never_while_a_successor_shares_it(
    managed, monkeypatch
):
    """An Engine built without a transport creates its own (Subgraphs.owns_pool): released, its
    pool is closed; handed on to the next Engine (a policy reload of a static supergraph), it is not."""
    monkeypatch.setattr(collector, "RELEASE_GRACE_SECONDS", 0.05)
    world = GatedWorld().start()
    try:
        first = Engine.from_sdl(world.supergraph())
        assert first.transport.owns_pool
        pool = first.transport.http_pool
        answered = await first.run(QUERY)
        assert not answered.errors and pool._sessions
        state = GatewayState(first)
        sharing = Engine.from_sdl(world.supergraph(), first.transport)  # as StaticSupergraph.rebuild builds it
        state.engine = sharing
        await _until(lambda: first.released)
        await asyncio.sleep(0.05)  # the release task's last steps, were it to close anything
        assert not any(session.closed for session in pool._sessions.values())
        assert (await sharing.run(QUERY)).data == answered.data  # the shared pool still serves
        own = Engine.from_sdl(world.supergraph())
        state.engine = own
        await _until(lambda: sharing.released)
        await _until(lambda: all(session.closed for session in pool._sessions.values()))
        with pytest.raises(RequestError) as late:
            await sharing.run(QUERY)
        assert late.value.code == "SERVICE_UNAVAILABLE"
        assert (await own.run(QUERY)).data == answered.data
        assert not any(session.closed for session in own.transport.http_pool._sessions.values())
        await own.close()
    finally:
        world.stop()


def _parking_engine(partner, pool, client: RestClient | None = None) -> tuple[Engine, RestClient]:  # noqa: F811
    """The city (in process) and the parking partner's REST connector, composed; `client`: the
    connector's client of an Engine before (an unchanged connector keeps it), else a new one (replaced)."""
    schema = read_connect_sdl(PARKING.replace("BASE", partner.base_url), base_url=partner.base_url)
    city_sdl = CITY.execute_sync("{ _service { sdl } }").data["_service"]["sdl"]
    result = compose(
        [
            SubgraphSource("city", city_sdl, "http://city.invalid"),
            SubgraphSource("parking", schema.composition_sdl, partner.base_url),
        ]
    )
    assert result.ok and result.supergraph is not None, [str(e) for e in result.errors]
    client = client or RestClient(schema, pool, name="parking")
    return Engine.from_sdl(result.supergraph, Subgraphs({"city": InProcessSubgraph(CITY), "parking": client})), client


async def test_a_replaced_rest_connectors_schema_is_freed_with_its_engine_an_unchanged_ones_kept(
    managed,
    monkeypatch,
    partner,  # noqa: F811 (the fixture imported above)
    pool,  # noqa: F811
):
    """The REST connector's client holds an executable graphql-core schema (cycles: frozen with its
    Engine, never collected). Replaced, it is freed once the Engine using it is released; an
    unchanged connector's client, which the next Engine uses too, is left whole."""
    monkeypatch.setattr(collector, "RELEASE_GRACE_SECONDS", 0.05)
    spots = "{ spots { name district { name } } }"
    first, replaced = _parking_engine(partner, pool)
    answered = await first.run(spots)
    assert not answered.errors and answered.data["spots"]
    state = GatewayState(first)
    second, kept = _parking_engine(partner, pool)  # the connector registered again: a new client
    state.engine = second
    replaced_schema = weakref.ref(replaced._executable)
    await _until(lambda: first.released)
    await _until(lambda: replaced_schema() is None)  # freed by reference counting, though frozen
    third, same = _parking_engine(partner, pool, client=kept)  # another connector's change: this one unchanged
    assert same is kept
    state.engine = third
    await _until(lambda: second.released)
    await asyncio.sleep(0.05)  # the release task's last steps, were it to free the shared client
    assert (await third.run(spots)).data == answered.data  # the kept client's schema is whole
    with pytest.raises(RequestError) as late:
        await second.run(spots)
    assert late.value.code == "SERVICE_UNAVAILABLE"
    await third.close()
