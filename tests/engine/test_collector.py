"""Engines and the garbage collector (gateway/collector.py): no full collection while an Engine is
built, a served Engine frozen out of the collector's passes, a retired one freed once idle."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL

from gateway import collector
from gateway.composition import SubgraphSource, compose
from gateway.engine import Engine, RequestError
from gateway.http import GatewayState
from tests.world.server import _PLACEHOLDER, SUBGRAPHS, SUPERGRAPH_FILE, AppServer

QUERY = "{ districts { code name } }"


def gauges_supergraph(fields: int) -> str:
    """A harmless partner of `fields` Int fields, 100 a type, composed alone."""
    types = [f"type Gauge{t} {{ " + " ".join(f"reading{j}: Int" for j in range(100)) + " }" for t in range(fields // 100)]
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
        inner = Starlette(routes=[Route(f"/{name}", GraphQL(schema), methods=["GET", "POST"]) for name, schema in SUBGRAPHS.items()])

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
