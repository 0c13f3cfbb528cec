"""Refused admin keys are limited per address (gateway/http_limits.py, AdminAuthLimit).

Each junk bearer key sent to /admin/* costs a hash and a store query. A real `citygate serve`
(a connectors folder, an operator key) with `CITYGATE_ADMIN_AUTH_FAILURES=3`: an address past 3
refused keys gets 429 `RATE_LIMITED` before its key is looked at or its body read, accepted keys
are not counted, other addresses keep their own count, /graphql keeps answering; with Redis, two
replicas count one address together.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.http.edge import Probe, ServeProcess, post_head, stream_request
from tests.http.test_limits import EDGE_ENV, OPERATOR_KEY, PROBE_KEY, _redis_up
from tests.http.test_limits import edge_world as edge_world  # the module fixture, shared
from tests.workers import REDIS_URL

MiB = 1024 * 1024
FAILURES = 3


def _address() -> str:
    """An address of its own (a /64 nobody else in any run uses), sent as X-Forwarded-For from the loopback proxy uvicorn trusts."""
    return f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}::1"


def _serve(edge_world, env: dict[str, str] | None = None) -> ServeProcess:
    directory, connectors, policy = edge_world
    store = directory / f"{uuid.uuid4().hex[:8]}.db"
    return ServeProcess(
        ["--connectors", str(connectors), "--policy", str(policy), "--store", f"sqlite:///{store}"],
        {**EDGE_ENV, "CITYGATE_ADMIN_AUTH_FAILURES": str(FAILURES), **(env or {})},
    )


@pytest.fixture(scope="module")
def gateway(edge_world):
    running = _serve(edge_world)
    yield running
    running.stop()


def _list(gateway: ServeProcess, address: str, key: str) -> httpx.Response:
    return httpx.get(
        gateway.url + "/admin/connectors",
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": address},
        timeout=10,
    )


def _code(response: httpx.Response) -> str:
    return response.json()["errors"][0]["code"]


def test_an_address_sending_junk_keys_is_refused_before_its_key_is_looked_at(gateway):
    attacker, operator = _address(), _address()
    with Probe(gateway.url, headers={"x-api-key": PROBE_KEY}) as probe:
        first = [_list(gateway, attacker, f"junk-{n}") for n in range(FAILURES)]
        assert [(r.status_code, _code(r)) for r in first] == [(401, "UNAUTHENTICATED")] * FAILURES
        flood = [_list(gateway, attacker, f"junk-more-{n}") for n in range(50)]
        assert {(r.status_code, _code(r)) for r in flood} == {(429, "RATE_LIMITED")}
        assert int(flood[-1].headers["retry-after"]) >= 1
        # over the limit, even the right key is not looked at: the address waits like any other
        assert _list(gateway, attacker, OPERATOR_KEY).status_code == 429
        # an upload from that address is refused before a byte of its body is taken
        head = post_head("/admin/connectors/big", length=200 * MiB, method="PUT", headers={"x-forwarded-for": attacker})
        upload = stream_request(gateway.port, head, b" " * 65536, 200 * MiB)
        assert upload.status == 429 and b"RATE_LIMITED" in upload.body and upload.sent < 16 * MiB
    probe.assert_kept_answering()
    # accepted keys do not count; another address has its own count
    for _ in range(FAILURES * 3):
        listed = _list(gateway, operator, OPERATOR_KEY)
        assert listed.status_code == 200 and "connectors" in listed.json()
    assert _list(gateway, operator, "junk").status_code == 401


def test_the_limit_is_off_at_zero(edge_world):
    unlimited = _serve(edge_world, {"CITYGATE_ADMIN_AUTH_FAILURES": "0"})
    try:
        address = _address()
        answers = {_list(unlimited, address, f"junk-{n}").status_code for n in range(FAILURES * 3)}
        assert answers == {401}
    finally:
        unlimited.stop()


@pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")
def test_two_gateways_count_one_address_together_through_redis(edge_world):
    env = {"CITYGATE_REDIS_URL": REDIS_URL}
    first, second = _serve(edge_world, env), _serve(edge_world, env)
    try:
        address = _address()
        assert [_list(first, address, f"junk-{n}").status_code for n in range(FAILURES)] == [401] * FAILURES
        refused = _list(second, address, "junk-elsewhere")
        assert refused.status_code == 429 and _code(refused) == "RATE_LIMITED"
        assert _list(second, _address(), OPERATOR_KEY).status_code == 200
    finally:
        first.stop()
        second.stop()
