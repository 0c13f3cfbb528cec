"""Shaping by code generated per plan gives what the interpreter gives, on answers that misbehave.

A raw JSON subgraph (a Starlette app over loopback) answers whatever the test hands it: nulls where
the schema says non-null, enum values the API does not expose, objects where lists belong, types
the API does not know, objects without `__typename`. The same operation runs through a gateway
whose shaping is compiled (the default) and through one whose shaping is interpreted (no position
compiled); data and errors are identical, and each case also checks what the GraphQL spec asks.
"""

from __future__ import annotations

import copy

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.composition import SubgraphSource, compose
from gateway.engine import Engine
from gateway.executor import _shape
from tests.world.server import AppServer

SDL = """
extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])

enum Level { LOW HIGH }

interface Thing { id: ID! }

type Station implements Thing @key(fields: "id") {
  id: ID!
  code: String!
  name: String
  level: Level
  readings: [Reading!]
  tags: [String!]
  twin: Station
}

type Gauge implements Thing @key(fields: "id") {
  id: ID!
  depth: Int
}

type Reading {
  value: Float!
  level: Level!
}

type Query {
  stations: [Station!]!
  station: Station
  things: [Thing]
}
"""


class RawSubgraph:
    """Answers every operation with the body the test set: the subgraph misbehaves on purpose."""

    def __init__(self) -> None:
        self.data: dict = {}
        self.app = Starlette(routes=[Route("/graphql", self.answer, methods=["POST"])])

    async def answer(self, request: Request) -> Response:
        return Response(orjson.dumps({"data": copy.deepcopy(self.data)}), media_type="application/json")


@pytest.fixture(scope="module")
def subgraph():
    raw = RawSubgraph()
    server = AppServer(raw.app).start()
    raw.url = server.base_url + "/graphql"  # type: ignore[attr-defined]
    yield raw
    server.stop()


@pytest.fixture(scope="module")
def supergraph(subgraph) -> str:
    result = compose([SubgraphSource("stations", SDL, subgraph.url)])
    assert not result.errors, result.errors
    return result.supergraph


async def _both(supergraph: str, subgraph: RawSubgraph, data: dict, query: str, monkeypatch) -> dict:
    """The response of the compiled gateway, once checked identical to the interpreted one's."""
    subgraph.data = data
    answers = []
    for compiled in (True, False):
        with monkeypatch.context() as patch:
            if not compiled:
                patch.setattr(_shape, "_MAX_COMPILED_FIELDS", -1)  # every position interpreted
            engine = Engine.from_sdl(supergraph)
            try:
                response = await engine.run(query)
                plan = engine.planner.plan(engine.planner.prepare(query, None), {})
            finally:
                await engine.close()
        root = plan.compiled["shape"]
        assert all((fields.placed is not None) is compiled for fields in root.by_type.values())
        answers.append({"data": response.data, "errors": response.errors})
    assert answers[0] == answers[1]
    return answers[0]


async def test_a_non_null_violation_in_a_list_item_nulls_up_to_the_nullable_parent(supergraph, subgraph, monkeypatch):
    data = {"stations": [{"id": "1", "code": "A"}, {"id": "2", "code": None}]}
    answer = await _both(supergraph, subgraph, data, "{ stations { id code } }", monkeypatch)
    # [Station!]! : the item's null makes the list null, and the root field null: data is null
    assert answer["data"] is None
    assert answer["errors"] == [
        {"message": "Cannot return null for non-nullable field Station.code.", "path": ["stations", 1, "code"]}
    ]


async def test_enum_values_the_api_does_not_expose_are_errors_and_bubble_where_non_null(
    supergraph, subgraph, monkeypatch
):
    data = {
        "station": {"level": "MEDIUM", "readings": [{"value": 1.5, "level": "LOW"}, {"value": 2.5, "level": "SECRET"}]}
    }
    answer = await _both(supergraph, subgraph, data, "{ station { level readings { value level } } }", monkeypatch)
    assert answer["data"] == {"station": {"level": None, "readings": None}}
    assert [(e["path"], e["extensions"]["code"]) for e in answer["errors"]] == [
        (["station", "level"], "INVALID_SUBGRAPH_RESULT"),
        (["station", "readings", 1, "level"], "INVALID_SUBGRAPH_RESULT"),
    ]


async def test_values_of_the_wrong_kind_are_errors_and_null(supergraph, subgraph, monkeypatch):
    data = {"station": {"id": "1", "code": "A", "twin": "not an object", "readings": {"value": 1}, "tags": ["a", None]}}
    answer = await _both(
        supergraph, subgraph, data, "{ station { id twin { id } readings { value } tags } }", monkeypatch
    )
    assert answer["data"] == {"station": {"id": "1", "twin": None, "readings": None, "tags": None}}
    messages = {(tuple(e["path"]), e["message"]) for e in answer["errors"]}
    assert (("station", "twin"), "Station.twin expected an object from its subgraph") in messages
    assert (("station", "readings"), "Station.readings expected a list from its subgraph") in messages
    assert (("station", "tags", 1), "Cannot return null for non-nullable field Station.tags.") in messages


async def test_abstract_positions_pick_fields_by_runtime_type(supergraph, subgraph, monkeypatch):
    data = {
        "things": [
            {"__typename": "Station", "id": "s1", "label": "A"},
            {"__typename": "Gauge", "id": "g1", "depth": 7},
            {"__typename": "Hidden", "id": "h1"},  # a type the API does not expose: null in its place
            None,
            {"__typename": "Station", "id": "s2", "label": "B"},
        ]
    }
    query = "{ things { __typename id ... on Station { label: code } ... on Gauge { depth } } }"
    answer = await _both(supergraph, subgraph, data, query, monkeypatch)
    assert answer["errors"] == []
    assert answer["data"] == {
        "things": [
            {"__typename": "Station", "id": "s1", "label": "A"},
            {"__typename": "Gauge", "id": "g1", "depth": 7},
            None,
            None,
            {"__typename": "Station", "id": "s2", "label": "B"},
        ]
    }


async def test_aliases_typename_and_nested_objects_keep_the_clients_order(supergraph, subgraph, monkeypatch):
    data = {"station": {"id": "1", "code": "A", "name": None, "twin": {"id": "2", "code": "B", "twin": None}}}
    query = "{ station { kind: __typename twin { code id twin { id } } name id } }"
    answer = await _both(supergraph, subgraph, data, query, monkeypatch)
    assert answer["errors"] == []
    assert orjson.dumps(answer["data"]) == orjson.dumps(
        {"station": {"kind": "Station", "twin": {"code": "B", "id": "2", "twin": None}, "name": None, "id": "1"}}
    )


async def test_an_answer_shaped_in_slices_is_the_compiled_answer_in_one_go(supergraph, subgraph, monkeypatch):
    stations = [
        {
            "id": str(n),
            "code": f"S{n}",
            "readings": [{"value": r / 3, "level": "BAD" if n % 5 == 0 and r == 0 else "LOW"} for r in range(n % 7)],
        }
        for n in range(300)
    ]
    subgraph.data = {"stations": stations}
    engine = Engine.from_sdl(supergraph)
    try:
        query = "{ stations { id code readings { value level } } }"
        whole = await engine.run(query)
        monkeypatch.setattr(_shape, "SLICE", 40)  # a turn of the loop every few stations
        sliced = await engine.run(query)
    finally:
        await engine.close()
    assert sliced.data == whole.data and sliced.errors == whole.errors
    assert whole.data["stations"][5]["readings"] is None  # a reading's bad level: its non-null list item bubbled
    assert whole.data["stations"][6]["readings"][5] == {"value": 5 / 3, "level": "LOW"}
