"""In-flight sharing never crosses requesters or consent changes, and every sharer is audited."""

from __future__ import annotations

import asyncio

QUERY = '{ resident(id: "r1") { id email phone } }'


class PeopleGate:
    """Holds calls to the `people` subgraph until opened; every other subgraph passes."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.held = 0

    async def send(self, subgraph, query, variables, context=None):
        if subgraph == "people":
            self.held += 1
            await self.gate.wait()
        return await self.inner.send(subgraph, query, variables, context)

    async def close(self) -> None:
        await self.inner.close()


def _gate(city) -> PeopleGate:
    engine = city.gateway.state.engine
    gate = PeopleGate(engine.transport)
    engine.transport = engine.executor.runner.transport = gate
    return gate


async def _held(gate: PeopleGate, count: int) -> None:
    for _ in range(400):
        if gate.held >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"only {gate.held} calls reached the gate")


async def test_two_residents_asking_the_same_bytes_at_once_each_get_their_own_answer(sqlite_city):
    gate = _gate(sqlite_city)
    owner = asyncio.create_task(sqlite_city.ask(QUERY, resident="r1"))
    other = asyncio.create_task(sqlite_city.ask(QUERY, resident="r2"))
    await _held(gate, 2)  # both reached the subgraph: nothing was shared
    gate.gate.set()
    mine, theirs = await asyncio.gather(owner, other)
    assert mine["data"]["resident"]["email"] == "amelie@example.org"
    assert theirs["data"]["resident"]["email"] == "a***@example.org"


async def test_a_request_after_a_consent_change_does_not_join_one_from_before(sqlite_city):
    gate = _gate(sqlite_city)
    before = asyncio.create_task(sqlite_city.ask(QUERY, client="parking-app", purpose="booking"))
    await _held(gate, 1)
    grant = await sqlite_city.grant("r1", "parking-app", "booking", ["user.contact"])
    after = asyncio.create_task(sqlite_city.ask(QUERY, client="parking-app", purpose="booking"))
    await _held(gate, 2)  # the later request executed on its own
    gate.gate.set()
    await before
    assert (await after)["data"]["resident"]["email"] == "amelie@example.org"
    # and a withdrawal is honoured by a request that arrives while an earlier one is in flight
    gate.gate.clear()
    before = asyncio.create_task(sqlite_city.ask(QUERY, client="parking-app", purpose="booking"))
    await _held(gate, 3)
    await sqlite_city.withdraw("r1", grant["consent"]["id"])
    after = asyncio.create_task(sqlite_city.ask(QUERY, client="parking-app", purpose="booking"))
    await _held(gate, 4)
    gate.gate.set()
    await before
    assert (await after)["data"]["resident"]["email"] == "a***@example.org"


async def test_requests_that_share_an_execution_are_each_audited(sqlite_city):
    await sqlite_city.grant("r1", "parking-app", "booking", ["user.contact"])
    gate = _gate(sqlite_city)
    tasks = [asyncio.create_task(sqlite_city.ask(QUERY, client="parking-app", purpose="booking")) for _ in range(4)]
    await _held(gate, 1)
    await asyncio.sleep(0.2)  # the other three arrive while the first is held
    gate.gate.set()
    answers = await asyncio.gather(*tasks)
    assert gate.held == 1  # one execution served the four
    assert all(a["data"]["resident"]["email"] == "amelie@example.org" for a in answers)
    read = await sqlite_city.ask("{ me { disclosures { recipient fields requestId } } }", resident="r1")
    disclosures = read["data"]["me"]["disclosures"]
    assert len(disclosures) == 4
    assert len({d["requestId"] for d in disclosures}) == 4
    assert all(
        d["recipient"] == "parking-app" and d["fields"] == ["Resident.email", "Resident.phone"] for d in disclosures
    )
