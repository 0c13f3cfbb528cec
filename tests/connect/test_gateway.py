"""A REST connector served like a subgraph: composed with the city's (in-process) subgraph,
planned and executed by the gateway, its failures reaching the client with their codes."""

from __future__ import annotations

import strawberry

from gateway.composition import SubgraphSource, compose
from gateway.connect import RestClient, read_connect_sdl
from gateway.engine import Engine
from gateway.executor import InProcessSubgraph, Subgraphs
from tests.connect.conftest import LEAKED
from tests.connect.sdl import HEAD

NAMES = {"75105": "Panthéon", "75111": "Popincourt"}


@strawberry.federation.type(keys=["code"])
class District:
    code: strawberry.ID
    name: str

    @classmethod
    def resolve_reference(cls, code: strawberry.ID) -> District:
        return District(code=code, name=NAMES[code])


@strawberry.type
class Query:
    @strawberry.field
    def districts(self) -> list[District]:
        return [District(code=code, name=name) for code, name in NAMES.items()]


CITY = strawberry.federation.Schema(query=Query, federation_version="2.5")

PARKING = (
    HEAD
    + '''
type Query {
  spots: [Spot] @connect(source: "parking", http: { GET: "/spots" }, selection: "$.results { id name: label district: { code: district } }")
  broken: [Spot] @connect(source: "parking", http: { GET: "/fails" }, selection: "$.results { id }")
}
type Spot @connect(source: "parking", http: { GET: "/spots/{$this.id}" }, selection: """
    id name: label capacity: places.total district: { code: district }
  """) {
  id: ID!
  name: String
  capacity: Int
  district: District
}
type District @key(fields: "code") {
  code: ID!
  spots: [Spot] @connect(source: "parking", http: { GET: "/spots?district={$this.code}" }, selection: "$.results { id name: label }")
}
'''
)


async def engine_for(partner, pool) -> Engine:
    schema = read_connect_sdl(PARKING.replace("BASE", partner.base_url), base_url=partner.base_url)
    city_sdl = CITY.execute_sync("{ _service { sdl } }").data["_service"]["sdl"]
    result = compose(
        [
            SubgraphSource("city", city_sdl, "http://city.invalid"),
            SubgraphSource("parking", schema.composition_sdl, partner.base_url),
        ]
    )
    assert result.ok, [str(e) for e in result.errors]
    clients = {"city": InProcessSubgraph(CITY), "parking": RestClient(schema, pool, name="parking")}
    return Engine.from_sdl(result.supergraph, Subgraphs(clients))


async def test_the_citys_districts_with_the_partners_spots_and_back(partner, pool):
    engine = await engine_for(partner, pool)
    try:
        response = await engine.run("{ districts { name spots { name capacity } } spots { name district { name } } }")
    finally:
        await engine.close()
    assert response.errors == [], response.errors
    assert response.data["districts"] == [
        {"name": "Panthéon", "spots": [{"name": "Saint-Michel", "capacity": 120}]},
        {"name": "Popincourt", "spots": [{"name": "Bastille", "capacity": 80}, {"name": "Oberkampf", "capacity": 45}]},
    ]
    assert response.data["spots"][0] == {"name": "Saint-Michel", "district": {"name": "Panthéon"}}


async def test_a_failing_partner_leaves_the_citys_fields_and_its_code(partner, pool):
    engine = await engine_for(partner, pool)
    try:
        response = await engine.run("{ districts { name } broken { id } }")
    finally:
        await engine.close()
    assert response.data == {"districts": [{"name": "Panthéon"}, {"name": "Popincourt"}], "broken": None}
    [error] = response.errors
    assert error["extensions"] == {
        "code": "CONNECTOR_HTTP_ERROR",
        "connector": "parking",
        "status": 500,
        "serviceName": "parking",
    }
    assert LEAKED not in str(response.errors)
