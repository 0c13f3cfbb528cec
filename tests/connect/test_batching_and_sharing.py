"""Batches made per step of the execution (the same calls alone and under load, whenever the
answers land), identical GET calls shared in flight between sends (never another method), and
entity connectors reading the values a @requires brings in the representation, against the
loopback partner of conftest.py."""

from __future__ import annotations

import asyncio
import random

import pytest

from gateway.connect import ConnectError, RestClient, read_connect_sdl
from gateway.executor import HttpPool
from tests.connect.sdl import HEAD, parking

# Spots by $batch; a spot's rentals by one call each ($this), each rental naming its spot by key
# only; a spot's district by key only, its name by a $batch call too: two waves of batches
WAVES = """
type Query {
  spots: [Spot] @connect(source: "parking", http: { GET: "/spots" }, selection: "$.results { id name: label district: { code: district } }")
}

type Spot
  @connect(source: "parking", http: { GET: "/spots/batch?id={$batch.id}" }, selection: "id name: label district: { code: district }") {
  id: ID!
  name: String
  district: District
  rentals: [Rental] @connect(source: "parking", http: { GET: "/spots/{$this.id}/rentals" }, selection: "id spot: { id: spot } hours")
}

type District @key(fields: "code")
  @connect(source: "parking", http: { GET: "/districts?codes={$batch.code->joinNotNull(',')}" }, selection: "$.items { code name }") {
  code: ID!
  name: String
}

type Rental {
  id: ID!
  spot: Spot
  hours: Int
}
"""
DEEP = "{ spots { id rentals { id spot { name district { name } } } } }"
EXPECTED = {
    "spots": [
        {
            "id": "s1",
            "rentals": [
                {"id": "r1", "spot": {"name": "Saint-Michel", "district": {"name": "Panthéon"}}},
                {"id": "r3", "spot": {"name": "Saint-Michel", "district": {"name": "Panthéon"}}},
            ],
        },
        {"id": "s2", "rentals": [{"id": "r2", "spot": {"name": "Bastille", "district": {"name": "Popincourt"}}}]},
        {"id": "s3", "rentals": []},
    ]
}


def waves_client(partner, pool: HttpPool) -> RestClient:
    schema = read_connect_sdl(HEAD.replace("BASE", partner.base_url) + WAVES, base_url=partner.base_url)
    return RestClient(schema, pool, name="parking", max_concurrency=64)


@pytest.fixture
async def unshared_pool():
    pool = HttpPool(share_identical=False)  # every send makes its own calls: they can be counted
    yield pool
    await pool.close()


async def test_entities_found_by_calls_that_land_apart_go_in_one_batch(partner, unshared_pool):
    client = waves_client(partner, unshared_pool)
    # the spots' rentals answer at different times: each brings its spots; the batch waits for all
    partner.rental_delay = {"s1": 0.0, "s2": 0.05, "s3": 0.1}
    answer = await client.send(DEEP, None)
    assert answer == {"data": EXPECTED}
    assert partner.paths("/v1/spots/batch") == ["/v1/spots/batch?id=s1&id=s2"]
    assert partner.paths("/v1/districts") == ["/v1/districts?codes=75105%2C75111"]
    assert len(partner.requests) == 6  # the spots, three spots' rentals, one batch per wave
    # the other way round: the same calls
    partner.requests.clear()
    partner.rental_delay = {"s1": 0.1, "s2": 0.0, "s3": 0.05}
    assert await client.send(DEEP, None) == {"data": EXPECTED}
    [batch] = partner.paths("/v1/spots/batch")
    assert batch in ("/v1/spots/batch?id=s2&id=s1", "/v1/spots/batch?id=s1&id=s2")
    assert len(partner.requests) == 6


async def test_under_load_each_send_makes_the_calls_it_makes_alone(partner, unshared_pool):
    client = waves_client(partner, unshared_pool)
    assert await client.send(DEEP, None) == {"data": EXPECTED}
    alone = len(partner.requests)
    partner.requests.clear()
    jitter = random.Random(14)
    partner.jitter = lambda: jitter.random() * 0.03  # answers land in any order, sends interleave
    sends = 24
    answers = await asyncio.gather(*(client.send(DEEP, None) for _ in range(sends)))
    assert all(a == {"data": EXPECTED} for a in answers)
    assert len(partner.requests) == sends * alone
    assert len(partner.paths("/v1/spots/batch")) == sends
    assert len(partner.paths("/v1/districts")) == sends


async def test_a_batch_of_entities_asked_by_the_gateway_is_not_held_back(partner, unshared_pool):
    # _entities' own representations go at once, in one call; the spots they make wait as above
    client = waves_client(partner, unshared_pool)
    representations = [{"__typename": "Spot", "id": spot_id} for spot_id in ("s2", "s1")]
    answer = await client.send(
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Spot { name district { name } } } }",
        {"r": representations},
    )
    assert answer == {
        "data": {
            "_entities": [
                {"name": "Bastille", "district": {"name": "Popincourt"}},
                {"name": "Saint-Michel", "district": {"name": "Panthéon"}},
            ]
        }
    }
    assert partner.paths("/v1/spots/batch") == ["/v1/spots/batch?id=s2&id=s1"]
    assert partner.paths("/v1/districts") == ["/v1/districts?codes=75111%2C75105"]


# -- sharing between sends


async def test_identical_gets_in_flight_are_one_call_for_every_send(partner, pool):
    assert pool.share_identical
    schema = read_connect_sdl(parking(partner.base_url), base_url=partner.base_url)
    client = RestClient(schema, pool, name="parking", headers={"authorization": "Bearer s3cret"})
    partner.delay = 0.2  # the spot's answer is slow: every send asks while the first call is out
    query = '{ _entities(representations: [{__typename: "Spot", id: "s1"}]) { ... on Spot { name } } }'
    answers = await asyncio.gather(*(client.send(query, None) for _ in range(10)))
    assert all(a == {"data": {"_entities": [{"name": "Saint-Michel"}]}} for a in answers)
    assert partner.paths("/v1/spots/s1") == ["/v1/spots/s1"]
    assert partner.headers[0]["authorization"] == "Bearer s3cret"
    # once answered, the next send calls again: shared in flight, not cached
    await client.send(query, None)
    assert partner.paths("/v1/spots/s1") == ["/v1/spots/s1", "/v1/spots/s1"]


async def test_a_shared_failure_is_every_senders_error_and_a_mutation_is_never_shared(partner, pool):
    sdl = (
        HEAD.replace("BASE", partner.base_url)
        + """
type Query { broken: Int @connect(source: "parking", http: { GET: "/fails" }, selection: "$.count") }
type Mutation { endRental(id: ID!): Boolean @connect(source: "parking", http: { DELETE: "/rentals/{$args.id}" }, selection: "$(true)") }
"""
    )
    client = RestClient(read_connect_sdl(sdl, base_url=partner.base_url), pool, name="parking")
    answers = await asyncio.gather(*(client.send("{ broken }", None) for _ in range(5)))
    assert all(a["data"] == {"broken": None} for a in answers)
    assert all(
        a["errors"][0]["extensions"] == {"code": "CONNECTOR_HTTP_ERROR", "connector": "parking", "status": 500}
        for a in answers
    )
    assert 1 <= len(partner.paths("/v1/fails")) <= 5  # shared while in flight (how many overlap is the loop's)
    answers = await asyncio.gather(*(client.send('mutation { endRental(id: "r1") }', None) for _ in range(5)))
    assert all(a == {"data": {"endRental": True}} for a in answers)
    assert [m for m, p in partner.requests if p == "/v1/rentals/r1"] == ["DELETE"] * 5


async def test_when_the_send_making_a_shared_call_leaves_another_calls_itself(partner, pool):
    schema = read_connect_sdl(parking(partner.base_url), base_url=partner.base_url)
    client = RestClient(schema, pool, name="parking")
    partner.delay = 0.3
    query = '{ _entities(representations: [{__typename: "Spot", id: "s2"}]) { ... on Spot { name } } }'
    leader = asyncio.ensure_future(client.send(query, None))
    await asyncio.sleep(0.05)
    follower = asyncio.ensure_future(client.send(query, None))
    await asyncio.sleep(0.05)
    leader.cancel()
    assert await follower == {"data": {"_entities": [{"name": "Bastille"}]}}
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert partner.paths("/v1/spots/s2") == ["/v1/spots/s2", "/v1/spots/s2"]


# -- @requires


REQUIRES = """
type Product @key(fields: "upc")
  @connect(
    source: "parking"
    http: { GET: "/estimates?upc={$batch.upc}&price={$batch.price}&weight={$batch.weight}" }
    selection: "upc shippingEstimate: estimate"
  ) {
  upc: String!
  price: Int @external
  weight: Int @external
  shippingEstimate: Float @requires(fields: "price weight")
}

type Query {
  count: Int @connect(source: "parking", http: { GET: "/spots" }, selection: "$.total")
}
"""
REQUIRES_HEAD = HEAD.replace('import: ["@key"]', 'import: ["@key", "@external", "@requires"]')


async def test_an_entity_connector_reads_what_requires_brings_and_is_keyed_by_its_key_only(partner, pool):
    schema = read_connect_sdl(REQUIRES_HEAD.replace("BASE", partner.base_url) + REQUIRES, base_url=partner.base_url)
    [connector] = schema.model.entity_resolvers["Product"]
    assert connector.key_paths == (("upc",),)
    assert connector.read_paths == (("price",), ("upc",), ("weight",))
    client = RestClient(schema, pool, name="parking")
    representations = [
        {"__typename": "Product", "upc": "1", "price": 899, "weight": 2},
        {"__typename": "Product", "upc": "2", "price": 1299, "weight": 10},
    ]
    answer = await client.send(
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { shippingEstimate } } }",
        {"r": representations},
    )
    assert answer == {"data": {"_entities": [{"shippingEstimate": 9.99}, {"shippingEstimate": 17.99}]}}
    assert partner.paths("/v1/estimates") == ["/v1/estimates?upc=1&upc=2&price=899&price=1299&weight=2&weight=10"]


def test_only_requires_fields_may_be_read_besides_the_key_and_a_key_must_be_read():
    base = "http://127.0.0.1:9/v1"
    head = REQUIRES_HEAD.replace("BASE", base)
    read_connect_sdl(head + REQUIRES, base_url=base)  # no @external field selected: fine
    # a field no @requires names is still not the connector's to read
    with pytest.raises(ConnectError) as caught:
        read_connect_sdl(
            head
            + REQUIRES.replace("price: Int @external", "price: Int @external\n  label: String @external").replace(
                "weight={$batch.weight}", "weight={$batch.weight}&l={$batch.label}"
            ),
            base_url=base,
        )
    assert [p.code for p in caught.value.problems] == ["CONNECT_INVALID_KEY"]
    # reading required values without the key identifies nothing
    only_required = REQUIRES.replace('@key(fields: "upc")\n', "").replace("upc={$batch.upc}&", "")
    with pytest.raises(ConnectError) as caught:
        read_connect_sdl(head + only_required, base_url=base)
    assert "CONNECT_INVALID_KEY" in [p.code for p in caught.value.problems]
    # without @key, the key composition is given is the key part only
    keyless = read_connect_sdl(head + REQUIRES.replace(' @key(fields: "upc")', ""), base_url=base)
    assert 'type Product @key(fields: "upc")' in keyless.composition_sdl
