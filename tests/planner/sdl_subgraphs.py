"""Federation subgraphs written as SDL files and a few Python functions, served over real HTTP.

For planning scenarios shaped like the federation audit's suites (tests/planner/fixtures/): each
subgraph is its SDL (composed by our composition for the gateway) plus resolvers for its root
fields and its entities; everything else is read from the returned dictionaries. A subgraph can
misbehave on purpose (a root field that raises) to catch a plan that asks it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from graphql import GraphQLSchema, build_schema, graphql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.composition import SubgraphSource, compose
from tests.world.server import AppServer

FIXTURES = Path(__file__).with_name("fixtures")

_FEDERATION = """
scalar _Any
type _Service { sdl: String! }
directive @link(url: String, import: [String]) repeatable on SCHEMA
directive @key(fields: String!, resolvable: Boolean = true) repeatable on OBJECT | INTERFACE
directive @shareable repeatable on OBJECT | FIELD_DEFINITION
directive @external on OBJECT | FIELD_DEFINITION
directive @provides(fields: String!) on FIELD_DEFINITION
directive @requires(fields: String!) on FIELD_DEFINITION
"""


@dataclass
class SdlSubgraph:
    name: str
    sdl: str
    root: dict[str, Callable[[], object]] = field(default_factory=dict)  # Query field -> value
    entities: dict[str, Callable[[dict], object]] = field(default_factory=dict)  # type -> representation -> object

    def schema(self) -> GraphQLSchema:
        body = re.sub(r"^extend schema[^\n]*\n", "", self.sdl, flags=re.MULTILINE)
        extra = ["_service: _Service!"]
        if self.entities:
            body += f"\nunion _Entity = {' | '.join(self.entities)}\n"
            extra.append("_entities(representations: [_Any!]!): [_Entity]!")
        keyword = "extend type Query" if re.search(r"^type Query\b", body, re.MULTILINE) else "type Query"
        schema = build_schema(body + _FEDERATION + f"{keyword} {{ {' '.join(extra)} }}\n")
        for type_ in schema.type_map.values():
            if hasattr(type_, "resolve_type"):
                type_.resolve_type = lambda value, *_: value["__typename"]  # type: ignore[union-attr]
        assert schema.query_type is not None
        query_fields = schema.query_type.fields
        query_fields["_service"].resolve = lambda *_: {"sdl": self.sdl}
        for name, resolver in self.root.items():
            query_fields[name].resolve = lambda _root, _info, resolver=resolver: resolver()
        if self.entities:
            query_fields["_entities"].resolve = lambda _root, _info, representations: [
                self.entities[r["__typename"]](r) for r in representations
            ]
        return schema


class SdlSubgraphServer(AppServer):
    """Every subgraph on a path of its own (`/<name>`), counting the requests each receives."""

    def __init__(self, subgraphs: list[SdlSubgraph]) -> None:
        self.subgraphs = subgraphs
        self.requests: Counter = Counter()
        self.bodies: dict[str, list[dict]] = {}
        routes = [Route(f"/{s.name}", self._endpoint(s.name, s.schema()), methods=["POST"]) for s in subgraphs]
        super().__init__(Starlette(routes=routes))

    def _endpoint(self, name: str, schema: GraphQLSchema):
        async def answer(request: Request) -> JSONResponse:
            body = json.loads(await request.body())
            self.requests[name] += 1
            self.bodies.setdefault(name, []).append(body)
            result = await graphql(
                schema, body["query"], variable_values=body.get("variables"), operation_name=body.get("operationName")
            )
            payload: dict = {"data": result.data}
            if result.errors:
                payload["errors"] = [error.formatted for error in result.errors]
            return JSONResponse(payload)

        return answer

    def supergraph(self) -> str:
        result = compose(SubgraphSource(s.name, s.sdl, f"{self.base_url}/{s.name}") for s in self.subgraphs)
        assert result.ok and result.supergraph is not None, [str(e) for e in result.errors]
        return result.supergraph


def fixture_sdl(scenario: str) -> dict[str, str]:
    """The SDL of each subgraph of a scenario (tests/planner/fixtures/<scenario>/<name>.graphql)."""
    return {path.stem: path.read_text() for path in sorted((FIXTURES / scenario).glob("*.graphql"))}


def fixture_supergraph(scenario: str) -> str:
    """A scenario's subgraphs composed by our composition (placeholder URLs: for planning only)."""
    result = compose(
        SubgraphSource(name, sdl, f"http://127.0.0.1:9/{name}") for name, sdl in fixture_sdl(scenario).items()
    )
    assert result.ok and result.supergraph is not None, [str(e) for e in result.errors]
    return result.supergraph
