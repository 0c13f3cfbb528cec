"""An execution leaves nothing for the garbage collector: its fetched data is freed when the
request is done, by reference counting, not kept until the collector runs.

A heavy answer is thousands of dicts and lists; held by a reference cycle (a closure calling
itself held the execution), every request's data waited for the collector, which then had to
traverse it and free it out of the CPU's caches (bench/privacy_cpu.py: the annotated gateway's
CPU per request -25% with the collector on, as `citygate serve` runs it)."""

from __future__ import annotations

import gc

from gateway.executor import ExecutionResult
from gateway.executor._fetch import Execution

# jobs first, then residents and parking, both depending on it: one runs in the first fetch's
# task, the other in a task of its own (FetchRunner._chain)
QUERY = "{ jobs { title postedBy { email bookings { hours } } } }"


async def _cyclic_garbage_of(engine) -> list:
    """What the collector finds unreachable after one request (the objects it had to free)."""
    await engine.run(QUERY)  # planned and compiled before: only the request itself is looked at
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # keep what is collected, to look at it
    try:
        response = await engine.run(QUERY)
        assert response.errors == [] and len(response.data["jobs"]) == 3
        del response
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_a_request_with_parallel_fetches_leaves_no_execution_to_the_collector(engine):
    plan = engine.planner.plan(engine.planner.prepare(QUERY, None), {})
    assert [n.depends_on for n in plan.nodes] == [(), (0,), (0,)]
    garbage = await _cyclic_garbage_of(engine)
    # (the world's subgraphs run in this process: graphql-core leaves cycles of its own, not looked at)
    assert [o for o in garbage if isinstance(o, Execution | ExecutionResult)] == []
