"""The REST client against a real partner API on loopback: requests built from $args, $this and
$batch, answers mapped, entities one by one (bounded) or batched, and every failure a stable code
without a byte of the partner's answer."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from gateway.connect import RestClient, read_connect_sdl
from gateway.executor import HttpPool
from gateway.executor._transport import BreakerSettings, SubgraphCircuitOpen
from tests.connect.conftest import LEAKED, SPOTS
from tests.connect.sdl import HEAD, parking

ENTITIES = "query($representations: [_Any!]!) { _entities(representations: $representations) { ... on Spot { id name capacity } ... on District { code name } } }"


def client_for(partner, pool, sdl: str | None = None, **options) -> RestClient:
    schema = read_connect_sdl(sdl or parking(partner.base_url), base_url=partner.base_url)
    return RestClient(schema, pool, name="parking", **options)


async def test_a_root_field_with_arguments_maps_paths_renames_literals_and_methods(partner, pool):
    client = client_for(partner, pool)
    answer = await client.send(
        'query { spots(district: "75111") { id name capacity free full tags firstTag tagCount kind origin district { code } } }',
        None,
    )
    assert "errors" not in answer, answer
    assert answer["data"]["spots"] == [
        {
            "id": "s2",
            "name": "Bastille",
            "capacity": 80,
            "free": 0,
            "full": True,
            "tags": [],
            "firstTag": None,
            "tagCount": 0,
            "kind": "STREET",
            "origin": "parking-api",
            "district": {"code": "75111"},
        },
        {
            "id": "s3",
            "name": "Oberkampf",
            "capacity": 45,
            "free": 9,
            "full": False,
            "tags": ["ev"],
            "firstTag": "ev",
            "tagCount": 1,
            "kind": "OTHER",
            "origin": "parking-api",
            "district": {"code": "75111"},
        },
    ]
    # a null argument's query parameter is dropped, not sent as "None" or empty
    assert partner.paths("/v1/spots") == ["/v1/spots?district=75111"]
    assert partner.headers[0]["x-partner-client"] == "citygate"


async def test_a_list_argument_is_written_comma_joined_and_a_whole_path_maps_a_scalar(partner, pool):
    client = client_for(partner, pool)
    answer = await client.send(
        '{ districts(codes: ["75105", "75111"]) { code name } spotCount(district: "75111") }', None
    )
    assert answer == {
        "data": {
            "districts": [{"code": "75105", "name": "Panthéon"}, {"code": "75111", "name": "Popincourt"}],
            "spotCount": 2,
        }
    }
    assert "/v1/districts?codes=75105%2C75111" in partner.paths()


async def test_a_mutation_posts_a_json_body_mapped_from_its_arguments(partner, pool):
    client = client_for(partner, pool)
    answer = await client.send(
        'mutation { rent(spot: "s1", hours: 3) { id hours spot { id } } endRental(id: "r/1") }', None
    )
    assert answer == {"data": {"rent": {"id": "r9", "hours": 3, "spot": {"id": "s1"}}, "endRental": True}}
    posted = [body for (method, _), body in zip(partner.requests, partner.bodies, strict=True) if method == "POST"]
    assert [orjson.loads(b) for b in posted] == [{"spot": "s1", "duration": {"hours": 3}}]
    # a path value is one segment: its "/" is encoded, it cannot reach another path
    assert ("DELETE", "/v1/rentals/r%2F1") in partner.requests


async def test_a_field_connector_reads_this_and_an_entity_made_with_its_key_only_is_completed(partner, pool):
    client = client_for(partner, pool)
    answer = await client.send('{ spots(district: "75105") { id rentals { id hours spot { id name } } } }', None)
    assert "errors" not in answer, answer
    assert answer["data"]["spots"] == [
        {
            "id": "s1",
            "rentals": [
                {"id": "r1", "hours": 2, "spot": {"id": "s1", "name": "Saint-Michel"}},
                {"id": "r3", "hours": 1, "spot": {"id": "s1", "name": "Saint-Michel"}},
            ],
        },
    ]
    # the two rentals' spot is one entity: fetched once in the send
    assert partner.paths("/v1/spots/s1") == ["/v1/spots/s1/rentals", "/v1/spots/s1"]


async def test_entities_by_this_make_one_call_each_never_more_than_the_concurrency_at_once(partner, pool):
    client = client_for(partner, pool, max_concurrency=2)
    partner.delay = 0.05  # each answer waits: calls that may overlap do
    representations = [{"__typename": "Spot", "id": spot_id} for spot_id in ("s1", "s2", "s3", "s1", "nope")]
    answer = await client.send(ENTITIES, {"representations": representations})
    entities = answer["data"]["_entities"]
    assert [e and e["name"] for e in entities] == ["Saint-Michel", "Bastille", "Oberkampf", "Saint-Michel", None]
    # one call per distinct entity (the repeated s1 shares its GET), two at most at once
    assert sorted(partner.paths("/v1/spots/")) == ["/v1/spots/nope", "/v1/spots/s1", "/v1/spots/s2", "/v1/spots/s3"]
    assert partner.most_in_flight == 2
    # the unknown spot: its 404 is an error at its own index, with the status
    [error] = answer["errors"]
    assert error["path"] == ["_entities", 4]
    assert error["extensions"] == {"code": "CONNECTOR_HTTP_ERROR", "connector": "parking", "status": 404}


async def test_entities_by_batch_make_one_call_for_all_matched_back_by_key(partner, pool):
    client = client_for(partner, pool)
    representations = [{"__typename": "District", "code": c} for c in ("75111", "75105", "99999", "75111")]
    answer = await client.send(ENTITIES, {"representations": representations})
    assert answer == {
        "data": {
            "_entities": [
                {"code": "75111", "name": "Popincourt"},
                {"code": "75105", "name": "Panthéon"},
                None,
                {"code": "75111", "name": "Popincourt"},
            ]
        }
    }
    assert partner.paths("/v1/districts") == ["/v1/districts?codes=75111%2C75105%2C99999%2C75111"]


async def test_a_batch_is_cut_at_its_max_size_and_nested_entities_are_batched_too(partner, pool):
    sdl = parking(partner.base_url).replace(
        'selection: "$.items { code name }") {', 'selection: "$.items { code name }", batch: { maxSize: 2 }) {'
    )
    client = client_for(partner, pool, sdl)
    representations = [{"__typename": "District", "code": c} for c in ("75105", "75111", "75106")]
    answer = await client.send(ENTITIES, {"representations": representations})
    assert [e and e["name"] for e in answer["data"]["_entities"]] == ["Panthéon", "Popincourt", None]
    assert partner.paths("/v1/districts") == ["/v1/districts?codes=75105%2C75111", "/v1/districts?codes=75106"]
    # districts made by the spots' selection (code only): their names come from one batch call
    partner.requests.clear()
    answer = await client.send("{ spots { id district { code name } } }", None)
    assert [s["district"]["name"] for s in answer["data"]["spots"]] == ["Panthéon", "Popincourt", "Popincourt"]
    assert partner.paths("/v1/districts") == ["/v1/districts?codes=75105%2C75111"]


async def test_repeated_query_parameters_from_a_list_and_query_params_mapping(partner, pool):
    sdl = (
        HEAD.replace("BASE", partner.base_url)
        + """
type Query {
  echo(ids: [ID], q: String, missing: String): Echo
    @connect(source: "parking", http: { GET: "/echo/ab/{$args.q}?id={$args.ids}&x={$args.missing}", queryParams: "q: $args.q page: $(2)" },
             selection: "path query")
}
scalar JSON
type Echo { path: String query: JSON }
"""
    )
    client = client_for(partner, pool, sdl)
    answer = await client.send('{ echo(ids: ["1", "2"], q: "a/b?c") { path query } }', None)
    assert "errors" not in answer, answer
    # the value is one path segment (its / and ? encoded); a list repeats its parameter; a null
    # parameter is dropped; queryParams add theirs
    assert partner.paths("/v1/echo") == ["/v1/echo/ab/a%2Fb%3Fc?id=1&id=2&q=a%2Fb%3Fc&page=2"]
    assert answer["data"]["echo"]["query"] == [["id", "1"], ["id", "2"], ["q", "a/b?c"], ["page", "2"]]


@pytest.mark.parametrize(
    ("path", "code", "status"),
    [
        ("/fails", "CONNECTOR_HTTP_ERROR", 500),
        ("/redirect", "CONNECTOR_HTTP_ERROR", 302),
        ("/html", "CONNECTOR_INVALID_RESPONSE", None),
        ("/huge", "CONNECTOR_INVALID_RESPONSE", None),
    ],
)
async def test_a_failing_partner_yields_a_null_field_and_a_code_never_its_body(partner, pool, path, code, status):
    sdl = (
        HEAD.replace("BASE", partner.base_url)
        + f'''
type Query {{
  broken: [String] @connect(source: "parking", http: {{ GET: "{path}" }}, selection: "$.results")
  fine: Int @connect(source: "parking", http: {{ GET: "/spots" }}, selection: "$.total")
}}
'''
    )
    client = client_for(partner, pool, sdl, max_answer_bytes=1024 * 1024)
    answer = await client.send("{ broken fine }", None)
    assert answer["data"] == {"broken": None, "fine": 3}
    [error] = answer["errors"]
    expected = {"code": code, "connector": "parking"} | ({"status": status} if status else {})
    assert error["extensions"] == expected
    assert error["path"] == ["broken"]
    text = orjson.dumps(answer).decode()
    assert LEAKED not in text and "Oops" not in text and "steal" not in text
    assert ("GET", "/steal") not in partner.requests  # the redirect was not followed


async def test_a_hanging_partner_costs_the_timeout_then_a_code(partner, pool):
    sdl = (
        HEAD.replace("BASE", partner.base_url)
        + """
type Query { slow: Int @connect(source: "parking", http: { GET: "/hangs" }, selection: "$.count") }
"""
    )
    client = client_for(partner, pool, sdl, timeout=0.3)
    answer = await client.send("{ slow }", None)
    assert answer["data"] in (None, {"slow": None})
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["CONNECTOR_TIMEOUT"]


async def test_an_answer_that_does_not_fit_the_types_is_a_mapping_error_without_its_values(partner, pool):
    sdl = (
        HEAD.replace("BASE", partner.base_url)
        + """
type Query {
  asList: [Thing] @connect(source: "parking", http: { GET: "/wrong" }, selection: "$.results { id }")
  asObject: Thing @connect(source: "parking", http: { GET: "/wrong" }, selection: "$.spot { id }")
  count: Int @connect(source: "parking", http: { GET: "/wrong" }, selection: "$.count")
  required: Thing @connect(source: "parking", http: { GET: "/wrong" }, selection: "id: label")
}
type Thing { id: ID! }
"""
    )
    client = client_for(partner, pool, sdl)
    answer = await client.send("{ asList { id } asObject { id } count required { id } }", None)
    assert answer["data"] == {"asList": None, "asObject": None, "count": None, "required": None}
    assert sorted((e["path"][0], e["extensions"]["code"]) for e in answer["errors"]) == [
        ("asList", "CONNECTOR_MAPPING_ERROR"),
        ("asObject", "CONNECTOR_MAPPING_ERROR"),
        ("count", "CONNECTOR_MAPPING_ERROR"),
        ("required", "CONNECTOR_MAPPING_ERROR"),
    ]
    assert LEAKED not in orjson.dumps(answer).decode()
    assert len(partner.paths("/v1/wrong")) == 1  # four fields, one identical GET


async def test_a_missing_path_value_refuses_the_request_before_it_leaves(partner, pool):
    sdl = (
        HEAD.replace("BASE", partner.base_url)
        + """
type Query { spot(id: ID): Thing @connect(source: "parking", http: { GET: "/spots/{$args.id}" }, selection: "id") }
type Thing { id: ID }
"""
    )
    client = client_for(partner, pool, sdl)
    answer = await client.send("{ spot { id } }", None)
    assert answer["data"] == {"spot": None}
    assert answer["errors"][0]["extensions"]["code"] == "CONNECTOR_REQUEST_ERROR"
    assert partner.requests == []


async def test_the_breaker_opens_after_failures_and_refuses_at_once(partner, pool):
    sdl = (
        HEAD.replace("BASE", partner.base_url)
        + """
type Query { broken: Int @connect(source: "parking", http: { GET: "/fails" }, selection: "$.count") }
"""
    )
    client = client_for(partner, pool, sdl, breaker=BreakerSettings(failures=2, cool_down=60))
    for _ in range(2):
        answer = await client.send("{ broken }", None)
        assert answer["errors"][0]["extensions"]["status"] == 500
    with pytest.raises(SubgraphCircuitOpen):
        await client.send("{ broken }", None)
    assert len(partner.paths("/v1/fails")) == 2


async def test_secrets_of_the_manifest_go_with_every_call_and_win_over_the_sdl(partner, pool):
    sdl = (
        parking(partner.base_url)
        .replace('value: "citygate"', 'value: "from-the-sdl"')
        .replace("x-partner-client", "authorization")
    )
    client = client_for(partner, pool, sdl, headers={"Authorization": "Bearer s3cret"})
    await client.send("{ spots(limit: 1) { id rentals { id } } }", None)
    assert len(partner.headers) == 2
    assert all(h["authorization"] == "Bearer s3cret" for h in partner.headers)


async def test_a_guarded_client_reaches_no_refused_address(partner, pool):
    client = client_for(partner, pool, guarded=True)
    answer = await client.send("{ spotCount }", None)
    assert answer["data"] == {"spotCount": None}
    assert answer["errors"][0]["extensions"]["code"] == "SUBGRAPH_UNAVAILABLE"
    assert partner.requests == []
    # the operator allows loopback: the same client goes through
    import ipaddress

    pool.allow_upstreams = lambda: (ipaddress.ip_network("127.0.0.0/8"),)
    answer = await client.send("{ spotCount }", None)
    assert answer == {"data": {"spotCount": 3}}


async def test_service_sdl_is_the_composition_sdl_and_a_bad_document_is_refused(partner, pool):
    client = client_for(partner, pool)
    answer = await client.send("{ _service { sdl } }", None)
    assert answer["data"]["_service"]["sdl"] == client.schema.composition_sdl
    assert "@connect" not in client.schema.composition_sdl
    answer = await client.send("{ nothing }", None)
    assert answer["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert partner.requests == []


async def test_concurrent_sends_share_the_concurrency_bound(partner):
    unshared = HttpPool(share_identical=False)  # every send makes its own calls
    try:
        client = client_for(partner, unshared, max_concurrency=3)
        partner.delay = 0.05
        representations = [{"__typename": "Spot", "id": spot_id} for spot_id in SPOTS]
        answers = await asyncio.gather(*(client.send(ENTITIES, {"representations": representations}) for _ in range(4)))
    finally:
        await unshared.close()
    assert all("errors" not in a for a in answers)
    assert len(partner.paths("/v1/spots/")) == 12
    assert partner.most_in_flight == 3
