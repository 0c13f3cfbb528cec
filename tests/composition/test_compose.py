"""Composing valid subgraph sets: the world's Strawberry subgraphs, Federation 1, renames."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.composition import SubgraphSource, compose
from gateway.engine import Engine
from gateway.supergraph import load_supergraph
from tests.composition.equivalence import differences
from tests.world.server import SUBGRAPHS, SUPERGRAPH_FILE


def world_sources(base_url: str = "http://127.0.0.1:4101") -> list[SubgraphSource]:
    sources = []
    for name, schema in SUBGRAPHS.items():
        sdl = schema.execute_sync("{ _service { sdl } }").data["_service"]["sdl"]
        sources.append(SubgraphSource(name, sdl, f"{base_url}/{name}"))
    return sources


def test_the_world_composes_to_the_hand_written_supergraph():
    result = compose(world_sources())
    assert result.ok, [str(e) for e in result.errors]
    ours = load_supergraph(result.supergraph)
    theirs = load_supergraph(SUPERGRAPH_FILE.read_text())
    assert differences(ours, theirs) == []


async def test_a_composed_supergraph_serves_queries(world):
    result = compose(world_sources(world.base_url))
    engine = Engine.from_sdl(result.supergraph)
    try:
        response = await engine.run(
            '{ resident(id: "r4") { name nickname district { name } jobsPosted { id } } topRated { rating name } }'
        )
    finally:
        await engine.close()
    assert response.errors == []
    assert response.data["resident"] == {
        "name": "Gavroche Thénardier",
        "nickname": "GAV",
        "district": {"name": "Popincourt"},
        "jobsPosted": [],
    }
    assert response.data["topRated"][0] == {"rating": 4.9, "name": "Parking Saint-Michel"}


FED1_USERS = """
type Query { me: User }
type User @key(fields: "id") { id: ID! name: String }
"""
FED1_REVIEWS = """
type Review { body: String author: User @provides(fields: "name") }
extend type User @key(fields: "id") {
  id: ID! @external
  name: String @external
  reviews: [Review]
}
"""


def test_federation_1_subgraphs_compose():
    result = compose([SubgraphSource("users", FED1_USERS), SubgraphSource("reviews", FED1_REVIEWS)])
    assert result.ok, [str(e) for e in result.errors]
    model = load_supergraph(result.supergraph)
    # the key field of an extension is not truly external; name is provided by Review.author
    assert model.resolves("User", "id", "reviews") is not None
    assert model.field_join("User", "name", "reviews").external
    assert model.field_join("Review", "author", "reviews").provides is not None


def test_renamed_and_namespaced_federation_directives():
    renamed = """
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: [{ name: "@key", as: "@primaryKey" }, "@shareable"])
    type Query { products: [Product] }
    type Product @primaryKey(fields: "upc") { upc: ID! name: String @shareable }
    """
    namespaced = """
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", as: "fed")
    type Product @fed__key(fields: "upc") { upc: ID! name: String @fed__shareable price: Int }
    """
    result = compose([SubgraphSource("catalog", renamed), SubgraphSource("prices", namespaced)])
    assert result.ok, [str(e) for e in result.errors]
    model = load_supergraph(result.supergraph)
    assert [k.fields for k in model.types["Product"].subgraphs["prices"].keys] == ["upc"]
    assert model.subgraphs_resolving("Product", "name") == ["catalog", "prices"]


def test_renamed_root_types_are_normalized():
    sdl = """
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
    schema { query: RootQuery }
    type RootQuery { hello: Greeting }
    type Greeting { text: String }
    """
    result = compose([SubgraphSource("a", sdl)])
    assert result.ok, [str(e) for e in result.errors]
    assert "hello" in load_supergraph(result.supergraph).api_schema.query_type.fields


def test_inaccessible_and_tags_reach_the_supergraph():
    sdl = """
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@inaccessible", "@tag"])
    type Query { me: User }
    type User @key(fields: "id") { id: ID! internalScore: Int @inaccessible name: String @tag(name: "public") }
    """
    result = compose([SubgraphSource("a", sdl)])
    assert result.ok
    model = load_supergraph(result.supergraph)
    assert "internalScore" not in model.api_schema.type_map["User"].fields
    assert '@tag(name: "public")' in result.supergraph


@pytest.mark.parametrize("style", ["file", "list"])
def test_the_compose_command(tmp_path, style):
    sources = world_sources()
    if style == "file":
        lines = ["subgraphs:"]
        for source in sources:
            (tmp_path / f"{source.name}.graphql").write_text(source.sdl)
            lines += [
                f"  {source.name}:",
                f"    routing_url: {source.url}",
                "    schema:",
                f"      file: ./{source.name}.graphql",
            ]
        (tmp_path / "supergraph.yaml").write_text("\n".join(lines) + "\n")
    else:
        import json

        (tmp_path / "supergraph.yaml").write_text(
            json.dumps([{"name": s.name, "url": s.url, "sdl": s.sdl} for s in sources])
        )
    output = tmp_path / "supergraph.graphql"
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "compose", str(tmp_path / "supergraph.yaml"), "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert differences(load_supergraph(output.read_text()), load_supergraph(SUPERGRAPH_FILE.read_text())) == []


def test_the_compose_command_reports_errors(tmp_path):
    (tmp_path / "a.graphql").write_text('type Query { u: User } type User @key(fields: "uuid") { id: ID! }')
    (tmp_path / "supergraph.yaml").write_text(
        "subgraphs:\n  a:\n    routing_url: http://127.0.0.1:1\n    schema:\n      file: a.graphql\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "compose", str(tmp_path / "supergraph.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "KEY_INVALID_FIELDS" in result.stderr and "[a]" in result.stderr
