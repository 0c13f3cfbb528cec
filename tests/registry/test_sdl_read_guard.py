"""A partner's SDL is read through the same connect-time address guard as its subgraph traffic.

A registration checks the URL (its host must resolve to an allowed address), then reads the SDL.
A partner whose DNS answers differently between the two ("rebinding") must not receive the read,
which carries the connector's own headers and secrets, at an address the policy refuses. Real
servers over loopback; the partner's DNS as the gateway's pool sees it is tests/executor's PartnerDns
(the hook the subgraph-traffic guard test uses), the URL check keeps the system's.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.applications import Starlette
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.executor.test_breaker import city_behind_partner_dns
from tests.registry.test_partner_limits import LimitedGateway
from tests.world.server import AppServer


async def test_a_partner_host_rebinding_to_a_refused_address_before_its_sdl_is_read_receives_nothing(world, tmp_path):
    gateway, dns, url = await city_behind_partner_dns(world, tmp_path)
    try:
        # the URL check resolves `localhost` to loopback (allowed here); the read's connection is
        # told a private address the policy does not allow
        dns.overrides["localhost"] = "10.20.30.40"
        world.traffic.reset()
        response = await gateway.register(
            "ratings",
            url,
            owner="rater",
            headers={"authorization": "Bearer ${secret:RATINGS}"},
            secrets={"RATINGS": "s3cret-ratings-token"},
        )
        assert response.status_code == 422, response.text[:500]
        errors = response.json()["errors"]
        assert [e["code"] for e in errors] == ["UPSTREAM_URL_REFUSED"], errors
        assert "s3cret" not in response.text
        assert world.traffic.counts["ratings"] == 0  # not a byte sent
        # the gateway keeps serving what it served
        body = await gateway.query("{ residents { name } }")
        assert "errors" not in body and body["data"]["residents"], body
        # an allowed answer at the read: the same registration goes through
        del dns.overrides["localhost"]
        response = await gateway.register(
            "ratings",
            url,
            owner="rater",
            headers={"authorization": "Bearer ${secret:RATINGS}"},
            secrets={"RATINGS": "s3cret-ratings-token"},
        )
        assert response.status_code == 200, response.text[:500]
        assert world.traffic.counts["ratings"] >= 1
    finally:
        await gateway.close()


def _upstream() -> AppServer:
    """A partner answering `_service { sdl }` with 1 MB (/huge), or a byte every 0.2 s (/trickle)."""

    async def huge(_request):
        sdl = "type Query { a: Int }\n" + "# padding\n" * 100_000
        return Response(orjson.dumps({"data": {"_service": {"sdl": sdl}}}), media_type="application/json")

    async def trickle(_request):
        async def bytes_slowly():
            for _ in range(150):
                yield b" "
                await asyncio.sleep(0.2)

        return StreamingResponse(bytes_slowly(), media_type="application/json")

    return AppServer(
        Starlette(routes=[Route("/huge", huge, methods=["POST"]), Route("/trickle", trickle, methods=["POST"])])
    ).start()


async def test_the_guarded_read_keeps_its_size_cap_and_its_one_deadline(world, tmp_path):
    upstream = _upstream()
    gateway = LimitedGateway(f"sqlite:///{tmp_path / 'r.db'}", {"max_sdl_bytes": 50_000})
    try:
        response = await gateway.register("huge", upstream.base_url + "/huge", owner="rater")
        assert response.status_code == 422, response.text[:500]
        assert [e["code"] for e in response.json()["errors"]] == ["SDL_TOO_LARGE"]
        # a byte every 0.2 s for 30 s: the read's one deadline (the manifest's timeout) ends it
        response = await gateway.register("trickle", upstream.base_url + "/trickle", owner="rater", timeout=1)
        assert response.status_code == 422, response.text[:500]
        assert [e["code"] for e in response.json()["errors"]] == ["SUBGRAPH_SDL_UNAVAILABLE"]
        assert (await gateway.query("{ __typename }"))["data"] == {"__typename": "Query"}
    finally:
        await gateway.close()
        await asyncio.to_thread(upstream.stop)
