"""A partner that hangs costs the others milliseconds (circuit breaker), and a partner whose DNS
turns to a refused address reaches nothing (addresses checked at each connection).

Real servers over loopback: the city's subgraphs, a ratings partner that can be made to accept
requests and never answer, a registry gateway in front.
"""

from __future__ import annotations

import asyncio
import socket
import time

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL

from tests.registry.conftest import RunningGateway
from tests.registry.test_admin import register_city
from tests.registry.test_partner_limits import LimitedGateway
from tests.world import ratings
from tests.world.server import AppServer

# ratings adds `rating` (nullable) to the city's places: its outage loses only that field
QUERY = "{ residents { name } districts { name spots { name rating } } }"
TOP_RATED = "{ topRated { rating } }"  # ratings' own root field: another request to it than QUERY's


def rated(body: dict) -> bool:
    return any(spot["rating"] is not None for district in body["data"]["districts"] for spot in district["spots"])


class HangingPartner:
    """The ratings subgraph, which accepts requests and never answers them while `hanging`."""

    def __init__(self) -> None:
        self.hanging = False
        self.received = 0
        self.graphql = GraphQL(ratings.schema)
        self.server = AppServer(Starlette(routes=[Route("/graphql", self, methods=["GET", "POST"])])).start()
        self.url = f"{self.server.base_url}/graphql"

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            self.received += 1
            while self.hanging:  # accepted, never answered
                await asyncio.sleep(0.02)
        await self.graphql(scope, receive, send)


async def timed(gateway: RunningGateway) -> tuple[float, dict]:
    started = time.perf_counter()
    body = await gateway.query(QUERY)
    return time.perf_counter() - started, body


# The partner's timeout: what its honest answers never reach, even on a loaded machine (they take
# milliseconds, but over 0.5 s at load 9 on two cores and over 1.5 s at load 20). The cool-down: far
# longer than the two refused requests take between the breaker's opening and the probe (each is
# refused at once: 0.65 s at worst seen at load 9), or one of them would be the probe
PARTNER_TIMEOUT = 3.0
COOL_DOWN = 4.0


async def test_a_hanging_partner_is_cut_off_by_its_breaker_then_probed_back(world, tmp_path):
    partner = HangingPartner()
    gateway = LimitedGateway(
        f"sqlite:///{tmp_path / 'r.db'}",
        {"max_timeout": 5, "circuit_breaker": {"failures": 2, "cool_down": COOL_DOWN}},
    )
    try:
        await register_city(gateway, world)
        registered = await gateway.register("ratings", partner.url, owner="rater", timeout=PARTNER_TIMEOUT)
        assert registered.status_code == 200
        took, body = await timed(gateway)
        assert "errors" not in body and rated(body)

        partner.hanging = True
        before = partner.received  # the registration's requests and the first query's
        # two requests at once, each its own call to the partner (identical ones would share one):
        # each reaches it and waits out its timeout, and the two failures open the breaker
        started = time.perf_counter()
        hung = await asyncio.gather(gateway.query(QUERY), gateway.query(TOP_RATED))
        assert time.perf_counter() - started >= PARTNER_TIMEOUT - 0.05  # a lower bound: load only adds
        opened = time.monotonic()  # the breaker opened before these answers left the gateway
        timeout = ({"code": "SUBREQUEST_HTTP_ERROR", "serviceName": "ratings"}, "subgraph 'ratings' failed: timed out")
        assert hung[0]["data"]["residents"]
        assert [(e["extensions"], e["message"]) for e in hung[0]["errors"]] == [timeout], hung[0]
        # (a non-null root field of the partner's own: the timeout, then null reaching the root)
        assert (hung[1]["errors"][0]["extensions"], hung[1]["errors"][0]["message"]) == timeout, hung[1]
        # both timed-out requests reached the partner (counted on arrival, on the partner's own thread)
        deadline = opened + 10
        while partner.received < before + 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert partner.received == before + 2
        fast = []
        for _ in range(2):
            took, body = await timed(gateway)
            fast.append(took)
            assert body["data"]["residents"] and body["data"]["districts"], body  # the others' data still comes
            # the breaker's refusal: the only SUBGRAPH_UNAVAILABLE a loopback partner gets (a timeout is
            # SUBREQUEST_HTTP_ERROR, above), and the partner never saw the request: nothing was
            # sent, so nothing was waited for, however slow the machine
            assert [e["extensions"] for e in body["errors"]] == [
                {"code": "SUBGRAPH_UNAVAILABLE", "serviceName": "ratings"}
            ]
            assert partner.received == before + 2
        print(
            f"\nbreaker open: answers in {min(fast) * 1000:.1f}-{max(fast) * 1000:.1f} ms"
            f" (partner timeout {PARTNER_TIMEOUT * 1000:.0f} ms)"
        )

        partner.hanging = False
        # the rest of the cool-down: the next request is the half-open probe
        await asyncio.sleep(max(0.0, opened + COOL_DOWN + 0.1 - time.monotonic()))
        took, body = await timed(gateway)
        assert "errors" not in body and rated(body), body
        assert partner.received == before + 3
        took, body = await timed(gateway)
        assert "errors" not in body  # closed again
    finally:
        await gateway.close()
        partner.hanging = False
        await asyncio.to_thread(partner.server.stop)


class PartnerDns(AbstractResolver):
    """The partner's DNS, as the gateway sees it: the system's answer unless the test overrides a name."""

    def __init__(self) -> None:
        self.overrides: dict[str, str] = {}
        self.system: AbstractResolver | None = None  # made in the gateway's loop, on first use

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host in self.overrides:
            address = self.overrides[host]
            return [{"hostname": host, "host": address, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}]
        if self.system is None:
            self.system = DefaultResolver()
        return await self.system.resolve(host, port, family)

    async def close(self) -> None:
        if self.system is not None:
            await self.system.close()


async def city_behind_partner_dns(world, tmp_path) -> tuple[LimitedGateway, PartnerDns, str]:
    """The city served by a gateway whose pool asks PartnerDns (under the production guard,
    GuardedResolver, in place of the system's DNS), and the ratings partner's URL by the name
    `localhost`, which resolves to loopback (allowed here) until a test overrides it."""
    gateway = LimitedGateway(f"sqlite:///{tmp_path / 'r.db'}", {})
    dns = PartnerDns()
    gateway.gateway.pool.resolver = dns
    try:
        await register_city(gateway, world)
    except BaseException:
        await gateway.close()
        raise
    return gateway, dns, world.url("ratings").replace("127.0.0.1", "localhost")


async def test_a_partner_host_resolving_to_a_refused_address_at_connect_time_reaches_nothing(world, tmp_path):
    gateway, dns, url = await city_behind_partner_dns(world, tmp_path)
    try:
        # registered while `localhost` resolves to loopback, which the policy allows
        assert (await gateway.register("ratings", url, owner="rater")).status_code == 200
        # then the partner's DNS answers a private address the policy does not allow
        dns.overrides["localhost"] = "10.20.30.40"
        world.traffic.reset()
        body = await gateway.query(QUERY)
        assert body["data"]["residents"] and not rated(body), body
        assert [e["extensions"] for e in body["errors"]] == [{"code": "SUBGRAPH_UNAVAILABLE", "serviceName": "ratings"}]
        assert world.traffic.counts["ratings"] == 0  # nothing sent
        # the check is made at each connection: an allowed answer again, and it is reached
        del dns.overrides["localhost"]
        body = await gateway.query(QUERY)
        assert "errors" not in body and rated(body), body
        assert world.traffic.counts["ratings"] == 1
    finally:
        await gateway.close()
