"""One plan for the whole operation (issue 19), run against real subgraphs on loopback.

The scenario is shaped like the federation audit's `provides-on-interface` suite
(tests/planner/fixtures/provides_on_interface): `Query.media` is shareable in `a` and `b`; `b`
provides `animals { id name }` on it; `c` owns `Book.animals` and `Cat.age`. Subgraph `a` raises
on `Query.media`, so a plan that asks it for `media` answers with an error instead of data.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.engine import Engine
from tests.planner.sdl_subgraphs import SdlSubgraph, SdlSubgraphServer, fixture_sdl, fixture_supergraph

BOOK = {"__typename": "Book", "id": "m1", "animals": ["a1", "a2"]}
ANIMALS = {
    "a1": {"__typename": "Dog", "id": "a1", "name": "Fido", "age": 3},
    "a2": {"__typename": "Cat", "id": "a2", "name": "Whiskers", "age": 6},
}


def _animals(*fields: str) -> list[dict]:
    return [{k: v for k, v in ANIMALS[i].items() if k in ("__typename", "id", *fields)} for i in BOOK["animals"]]


def _refuse_media():
    raise RuntimeError("subgraph a is not the one to ask for media")


def provides_on_interface() -> list[SdlSubgraph]:
    sdl = fixture_sdl("provides_on_interface")

    def book(*animal_fields: str):
        return lambda *_: {"__typename": "Book", "id": BOOK["id"], "animals": _animals(*animal_fields)}

    def animal(*fields: str):
        return lambda representation: {
            k: v for k, v in ANIMALS[representation["id"]].items() if k in ("__typename", "id", *fields)
        }

    return [
        SdlSubgraph(
            "a",
            sdl["a"],
            root={"media": _refuse_media, "book": book()},
            entities={
                "Book": book(),
                "Dog": animal(),
                "Cat": animal(),
            },
        ),
        SdlSubgraph("b", sdl["b"], root={"media": book("name")}),
        SdlSubgraph(
            "c",
            sdl["c"],
            entities={"Book": book("name", "age"), "Dog": animal("name", "age"), "Cat": animal("name", "age")},
        ),
    ]


@pytest.fixture(scope="module")
def served():
    server = SdlSubgraphServer(provides_on_interface()).start()
    yield server
    server.stop()


@pytest.fixture
async def engine(served):
    served.requests.clear()
    served.bodies.clear()
    engine = Engine.from_sdl(served.supergraph())
    yield engine
    await engine.close()


@pytest.mark.parametrize(
    ("query", "data", "asked"),
    [
        # sibling root fields (an alias of the same field): one fetch to b, which can answer both
        (
            "{ media { id } y: media { animals { id } } }",
            {"media": {"id": "m1"}, "y": {"animals": [{"id": "a1"}, {"id": "a2"}]}},
            {"b": 1},
        ),
        # two aliases of `animals`: both through b then c, never through a
        (
            "{ media { animals { ... on Cat { age } } b: animals { id ... on Cat { age } } } }",
            {"media": {"animals": [{}, {"age": 6}], "b": [{"id": "a1"}, {"id": "a2", "age": 6}]}},
            {"b": 1, "c": 1},
        ),
        # the suite's own operations
        (
            "{ media { id animals { id name } } }",
            {"media": {"id": "m1", "animals": [{"id": "a1", "name": "Fido"}, {"id": "a2", "name": "Whiskers"}]}},
            {"b": 1},
        ),
        (
            "{ media { id animals { id name ... on Cat { age } } } }",
            {
                "media": {
                    "id": "m1",
                    "animals": [{"id": "a1", "name": "Fido"}, {"id": "a2", "name": "Whiskers", "age": 6}],
                }
            },
            {"b": 1, "c": 1},
        ),
    ],
)
async def test_the_plan_answers_with_data_from_the_subgraphs_that_can_serve_the_operation_together(
    engine, served, query, data, asked
):
    response = await engine.run(query)
    assert response.errors == []
    assert response.data == data
    assert dict(served.requests) == asked
    for body in served.bodies.get("a", []):
        assert "media" not in body["query"]


def test_citygate_plan_shows_the_cost_of_the_plan(tmp_path):
    supergraph_file = tmp_path / "supergraph.graphql"
    supergraph_file.write_text(fixture_supergraph("provides_on_interface"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "plan",
            "--supergraph",
            str(supergraph_file),
            "{ media { animals { ... on Cat { age } } b: animals { id ... on Cat { age } } } }",
        ],
        capture_output=True,
        timeout=60,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert lines == ["[0] b (query)", "[1] c (entities) at media after [0]", "cost: 2 fetch(es) in 2 wave(s)"]
