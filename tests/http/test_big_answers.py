"""Large answers: shaped in slices that give the event loop its turn, and the same answer as in one go.

A partner (a real Strawberry subgraph over loopback) answers lists of thousands of objects, some
of them with nulls.
The gateway (an Engine over its supergraph, served by uvicorn) answers them whole while a probe
keeps being answered; `Shaper.shape_in_slices` gives exactly what `Shaper.shape` gives, data and
errors, for the same fetched data.
"""

from __future__ import annotations

import asyncio
import copy

import httpx
import pytest
import strawberry
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL

from gateway.composition import SubgraphSource, compose
from gateway.engine import Engine
from gateway.executor import _shape
from gateway.executor._fetch import Execution
from gateway.http import GatewayState, create_app
from tests.http.edge import Probe
from tests.world.server import AppServer


@strawberry.type
class Reading:
    id: int
    value: float
    label: str | None
    station: Station


@strawberry.type
class Station:
    code: str
    name: str | None
    readings: list[Reading]


def _station(index: int, readings: int, holes: int) -> Station:
    station = Station(code=f"S{index}", name=f"station {index}", readings=[])
    station.readings = [
        Reading(
            id=index * readings + n, value=n / 7, label=f"r{n}" if holes == 0 or n % holes else None, station=station
        )  # type: ignore[arg-type]
        for n in range(readings)
    ]
    return station


@strawberry.type
class Query:
    @strawberry.field
    def stations(self, count: int, readings: int, holes: int = 0) -> list[Station]:
        """`holes`: every holes-th reading's label is null (0: none)."""
        return [_station(index, readings, holes) for index in range(count)]


SCHEMA = strawberry.federation.Schema(query=Query, federation_version="2.5")
BIG = "query Big($count: Int!, $readings: Int!, $holes: Int!) { stations(count: $count, readings: $readings, holes: $holes) { code name readings { id value label station { code } } } }"


@pytest.fixture(scope="module")
def partner():
    server = AppServer(Starlette(routes=[Route("/graphql", GraphQL(SCHEMA), methods=["GET", "POST"])])).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def supergraph(partner) -> str:
    result = compose([SubgraphSource("readings", SCHEMA.as_str(), partner.base_url + "/graphql")])
    assert not result.errors, result.errors
    return result.supergraph


@pytest.fixture(scope="module")
def gateway(supergraph):
    engine = Engine.from_sdl(supergraph)
    server = AppServer(create_app(GatewayState(engine))).start()
    yield server
    server.stop()


def _big(gateway: AppServer, count: int, readings: int, holes: int = 0) -> dict:
    response = httpx.post(
        gateway.base_url + "/graphql",
        json={"query": BIG, "variables": {"count": count, "readings": readings, "holes": holes}},
        timeout=60,
    )
    assert response.status_code == 200, response.text[:300]
    return response.json()


def test_large_answers_are_answered_whole_while_others_are_answered(gateway):
    counts = (40, 500)  # 20,000 readings, 1.6 MB: ~30 slices each
    with Probe(gateway.base_url) as probe, httpx.Client(timeout=60) as client:

        def ask(n: int) -> dict:
            variables = {"count": counts[0], "readings": counts[1], "holes": 0, "n": n}
            return client.post(gateway.base_url + "/graphql", json={"query": BIG, "variables": variables}).json()

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(ask, range(4)))
    for body in answers:
        assert "errors" not in body, body.get("errors")
        stations = body["data"]["stations"]
        assert [s["code"] for s in stations] == [f"S{i}" for i in range(counts[0])]
        assert all(len(s["readings"]) == counts[1] for s in stations)
        assert stations[-1]["readings"][-1] == {
            "id": counts[0] * counts[1] - 1,
            "value": (counts[1] - 1) / 7,
            "label": f"r{counts[1] - 1}",
            "station": {"code": f"S{counts[0] - 1}"},
        }
    assert probe.latencies and not probe.failures and set(probe.statuses) == {200}, (
        probe.failures,
        set(probe.statuses),
    )


@pytest.mark.parametrize("slice_units", [50, 1_000, _shape.SLICE])
async def test_an_answer_shaped_in_slices_is_the_answer_shaped_in_one_go(supergraph, monkeypatch, slice_units):
    """Data and errors, for slices of a few objects to the default's."""
    engine = Engine.from_sdl(supergraph)
    try:
        variables = {"count": 30, "readings": 300, "holes": 7}
        prepared = engine.planner.prepare(BIG, None)
        plan = engine.planner.plan(prepared, variables)
        execution = Execution(variables=variables, context=None)
        await engine.executor.runner.run(plan, execution)
        shaper = engine.executor.shaper

        at_once_errors = list(execution.errors)
        at_once = shaper.shape(plan, copy.deepcopy(execution.data), at_once_errors)
        monkeypatch.setattr(_shape, "SLICE", slice_units)
        turns = 0

        async def count_turns() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1

        counter = asyncio.ensure_future(count_turns())
        sliced_errors = list(execution.errors)
        sliced = await shaper.shape_in_slices(plan, copy.deepcopy(execution.data), sliced_errors)
        counter.cancel()
    finally:
        await engine.close()
    assert sliced == at_once and sliced_errors == at_once_errors
    assert at_once["stations"][0]["readings"][7]["label"] is None and len(at_once["stations"]) == 30
    if slice_units < 1_000:
        assert turns > 10, "the loop got no turn while the answer was shaped"


async def test_a_request_cancelled_between_two_slices_leaves_nothing_running(supergraph, monkeypatch):
    engine = Engine.from_sdl(supergraph)
    try:
        variables = {"count": 20, "readings": 200, "holes": 0}
        prepared = engine.planner.prepare(BIG, None)
        plan = engine.planner.plan(prepared, variables)
        execution = Execution(variables=variables, context=None)
        await engine.executor.runner.run(plan, execution)
        monkeypatch.setattr(_shape, "SLICE", 50)
        shaping = asyncio.ensure_future(engine.executor.shaper.shape_in_slices(plan, execution.data, []))
        for _ in range(5):
            await asyncio.sleep(0)
        shaping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await shaping
        # the loop's turn is free again: another large answer is shaped to its end
        again = await engine.executor.shaper.shape_in_slices(plan, copy.deepcopy(execution.data), [])
    finally:
        await engine.close()
    assert again is not None and len(again["stations"]) == 20
