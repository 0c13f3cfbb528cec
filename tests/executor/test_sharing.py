"""Sharing work between requests in flight: inbound (identical queries of one requester) and
outbound (identical subgraph calls), against the world's real subgraphs."""

from __future__ import annotations

import asyncio

from gateway.engine import Engine
from gateway.executor import HttpPool, Subgraphs
from gateway.identity import PUBLIC, Requester
from gateway.policy import parse_policy
from gateway.supergraph import load_supergraph

QUERY = '{ resident(id: "r1") { name district { name } } }'


class GatedTransport:
    """The real transport behind a gate: calls wait until the test opens it, and are counted."""

    def __init__(self, inner: Subgraphs) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.calls = 0

    async def send(self, subgraph, query, variables, context=None):
        self.calls += 1
        await self.gate.wait()
        return await self.inner.send(subgraph, query, variables, context)

    async def close(self) -> None:
        await self.inner.close()


async def _gated_engine(world) -> tuple[Engine, GatedTransport]:
    plain = Engine.from_sdl(world.supergraph())
    transport = GatedTransport(plain.transport)
    return Engine(plain.model, transport), transport


async def _all_waiting(transport: GatedTransport, calls: int) -> None:
    for _ in range(200):
        if transport.calls >= calls:
            return
        await asyncio.sleep(0.005)


async def test_identical_queries_of_one_requester_share_one_execution(world):
    engine, transport = await _gated_engine(world)
    try:
        tasks = [asyncio.create_task(engine.run(QUERY)) for _ in range(5)]
        await _all_waiting(transport, 1)
        await asyncio.sleep(0.02)
        assert transport.calls == 1  # only the first request reached a subgraph
        transport.gate.set()
        responses = await asyncio.gather(*tasks)
        assert [r.shared for r in responses].count(True) == 4
        assert all(r.data == responses[0].data and r.errors == [] for r in responses)
        assert responses[0].data["resident"]["name"] == "Amélie Poulain"
        # once answered, nothing is kept: the next request executes again
        again = await engine.run(QUERY)
        assert not again.shared and again.data == responses[0].data
    finally:
        await engine.close()


async def test_requests_that_differ_in_anything_share_nothing(world):
    engine, transport = await _gated_engine(world)
    # read as the policy file is: a client's purposes are checked against the declared ones
    client = parse_policy(
        {
            "purposes": {"booking": None},
            "clients": {"parking-app": {"name": "Parkr", "purposes": ["booking"], "roles": ["partner"]}},
        }
    ).clients["parking-app"]
    requesters = [
        PUBLIC,
        Requester(client, "booking", frozenset({"partner"})),
        Requester(client, "marketing", frozenset({"partner"})),
        Requester(client, "booking", frozenset({"partner"}), resident="r1"),
        Requester(client, "booking", frozenset({"partner"}), resident="r2"),
    ]
    try:
        tasks = [asyncio.create_task(engine.run(QUERY, requester=requester)) for requester in requesters]
        # the same requester with a variable no operation uses, its own each time: the bytes differ
        tasks += [asyncio.create_task(engine.run(QUERY, variables={"tag": n})) for n in range(3)]
        tasks.append(asyncio.create_task(engine.run("query Named " + QUERY, operation_name="Named")))
        await _all_waiting(transport, len(tasks))
        transport.gate.set()
        responses = await asyncio.gather(*tasks)
        assert transport.calls >= len(tasks)
        assert not any(r.shared for r in responses)
        assert all(r.data == responses[0].data for r in responses)
    finally:
        await engine.close()


async def test_mutations_are_never_shared(world):
    engine, transport = await _gated_engine(world)
    mutation = 'mutation { renameResident(id: "r3", name: "Cosette") { id } }'
    try:
        tasks = [asyncio.create_task(engine.run(mutation)) for _ in range(2)]
        await _all_waiting(transport, 2)
        transport.gate.set()
        responses = await asyncio.gather(*tasks)
        assert transport.calls == 2 and not any(r.shared for r in responses)
    finally:
        await engine.close()


async def test_identical_subgraph_calls_in_flight_share_one_http_request(world):
    engine = Engine.from_sdl(world.supergraph())
    try:
        # distinct client requests (an unused variable each) whose subgraph calls are identical
        responses = await asyncio.gather(*(engine.run(QUERY, variables={"tag": n}) for n in range(20)))
        assert all(r.errors == [] and r.data == responses[0].data for r in responses)
        assert not any(r.shared for r in responses)
        residents_calls = world.traffic.counts["residents"]
        assert 1 <= residents_calls < 20  # the 20 identical calls to `residents` went out as fewer requests
        bodies = world.traffic.bodies["residents"]
        assert len(set(bodies)) == 1
    finally:
        await engine.close()


async def test_subgraph_call_sharing_can_be_turned_off(world):
    pool = HttpPool(share_identical=False)
    engine = Engine.from_sdl(world.supergraph(), Subgraphs.over_http(_urls(world), http_pool=pool))
    try:
        responses = await asyncio.gather(*(engine.run(QUERY, variables={"tag": n}) for n in range(20)))
        assert all(r.errors == [] and r.data == responses[0].data for r in responses)
        assert world.traffic.counts["residents"] == 20
    finally:
        await engine.close()
        await pool.close()


def _urls(world) -> dict[str, str]:
    return {name: subgraph.url for name, subgraph in load_supergraph(world.supergraph()).subgraphs.items()}
