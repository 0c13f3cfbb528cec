"""The Engine of a new supergraph is built off the event loop: the served one keeps answering meanwhile.

Building the Engine of a large supergraph takes seconds (after a 10k-field registration every later
registration stalled all traffic ~2 s). Here the build is held open until a GraphQL request has
been answered: on the loop that request could not be answered before the build returned. A real
registry gateway over loopback, the world's subgraphs as upstreams.
"""

from __future__ import annotations

import asyncio
import threading

from tests.registry.test_admin import register_city
from tests.registry.test_partner_limits import LimitedGateway


async def test_requests_are_answered_while_a_registration_builds_its_engine(world, tmp_path):
    gateway = LimitedGateway(f"sqlite:///{tmp_path / 'r.db'}", {})
    try:
        await register_city(gateway, world)
        registry = gateway.gateway.registry
        assert registry is not None
        build = registry.build_engine
        building, answered, returned = threading.Event(), threading.Event(), threading.Event()

        def held_build(sdl, transport, owners):
            engine = build(sdl, transport, owners)
            building.set()
            answered.wait(20)  # held until a request was answered meanwhile (or given up on)
            returned.set()
            return engine

        registry.build_engine = held_build
        registration = asyncio.create_task(gateway.register("ratings", world.url("ratings"), owner="rater"))
        assert await asyncio.to_thread(building.wait, 30)
        body = await gateway.query("{ residents { name } }")
        built_meanwhile = not returned.is_set()
        answered.set()
        assert "errors" not in body and body["data"]["residents"], body
        assert built_meanwhile, "the request was answered only after the build returned"
        response = await registration
        assert response.status_code == 200, response.text[:500]
        body = await gateway.query("{ districts { spots { rating } } }")
        assert "errors" not in body, body  # the new Engine, with the new connector, is served
    finally:
        await gateway.close()


async def test_a_removal_builds_off_the_loop_too(world, tmp_path):
    gateway = LimitedGateway(f"sqlite:///{tmp_path / 'r.db'}", {})
    try:
        await register_city(gateway, world)
        assert (await gateway.register("ratings", world.url("ratings"), owner="rater")).status_code == 200
        registry = gateway.gateway.registry
        assert registry is not None
        build = registry.build_engine
        threads: list[str] = []

        def recording_build(sdl, transport, owners):
            threads.append(threading.current_thread().name)
            return build(sdl, transport, owners)

        registry.build_engine = recording_build
        loop_thread = gateway.server.thread.name  # the gateway's event loop runs there
        response = await gateway.admin("DELETE", "/admin/connectors/ratings")
        assert response.status_code == 200, response.text[:500]
        assert threads and loop_thread not in threads
    finally:
        await gateway.close()
