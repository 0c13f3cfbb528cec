"""The HTTP edge under attack: `citygate serve` as a real process, attackers on raw sockets.

Each test sends one kind of hostile traffic while a probe client asks the gateway something small,
and asserts both the refusal (status and stable code) and that the probe kept being answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
import strawberry
import yaml

from tests.http.edge import (
    Probe,
    ServeProcess,
    chunk,
    deaf_reader,
    post_head,
    read_all,
    stream_request,
    trickle_request,
)
from tests.workers import REDIS_URL
from tests.world.server import AppServer, free_port

OPERATOR_KEY = "cgo_edge-tests-operator-key-not-a-secret"
PROBE_KEY = "ck_edge-probe-key"
LIMITED_KEY = "ck_edge-limited-key"
MiB = 1024 * 1024
LIMIT = 64 * 1024  # the body limit these gateways run with


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "hello"

    @strawberry.field
    def blob(self, size: int) -> str:
        return "x" * size

    @strawberry.field
    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "slow"


SCHEMA = strawberry.federation.Schema(query=Query, federation_version="2.5")


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture(scope="module")
def edge_world(tmp_path_factory):
    """A subgraph, a connectors folder naming it, and a policy with a probe and a limited client."""
    from starlette.applications import Starlette
    from starlette.routing import Route
    from strawberry.asgi import GraphQL

    server = AppServer(Starlette(routes=[Route("/graphql", GraphQL(SCHEMA), methods=["GET", "POST"])])).start()
    directory = tmp_path_factory.mktemp("edge")
    folder = directory / "connectors" / "edge"
    folder.mkdir(parents=True)
    (folder / "manifest.yaml").write_text(f"name: edge\nowner: city\nkind: subgraph\nurl: {server.base_url}/graphql\n")
    policy = directory / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "purposes": {"probing": {"description": "Ask the gateway whether it answers"}},
                "clients": {
                    "probe": {"name": "Probe", "purposes": ["probing"], "api_key_sha256": _sha(PROBE_KEY)},
                    "limited": {
                        "name": "Limited",
                        "purposes": ["probing"],
                        "api_key_sha256": _sha(LIMITED_KEY),
                        "rate_limit": 2,
                    },
                },
            }
        )
    )
    yield directory, folder.parent, policy
    server.stop()


EDGE_ENV = {
    "CITYGATE_OPERATOR_KEY": OPERATOR_KEY,
    "CITYGATE_MAX_BODY_BYTES": str(LIMIT),
    "CITYGATE_ADMIN_MAX_BODY_BYTES": str(LIMIT),
    "CITYGATE_HEADER_TIMEOUT": "1",
    "CITYGATE_BODY_TIMEOUT": "1",
    "CITYGATE_WRITE_TIMEOUT": "1",
    "CITYGATE_PUBLIC_RATE_LIMIT": "5",
    "CITYGATE_RATE_LIMIT": "1000",
    "CITYGATE_MAX_IN_FLIGHT": "2",
}


def _serve(edge_world, env: dict[str, str] | None = None) -> ServeProcess:
    directory, connectors, policy = edge_world
    store = directory / f"{uuid.uuid4().hex[:8]}.db"
    return ServeProcess(
        ["--connectors", str(connectors), "--policy", str(policy), "--store", f"sqlite:///{store}"],
        {**EDGE_ENV, **(env or {})},
    )


@pytest.fixture(scope="module")
def gateway(edge_world):
    running = _serve(edge_world)
    yield running
    running.stop()


def _probe(gateway: ServeProcess) -> Probe:
    return Probe(gateway.url, headers={"x-api-key": PROBE_KEY})


_ADDRESSES = itertools.count(uuid.uuid4().int % 200)


def _address() -> str:
    """A public client's address of its own (documentation ranges, sent as X-Forwarded-For from the
    loopback proxy uvicorn trusts): no two calls of a run give the same one."""
    n = next(_ADDRESSES) % 500
    return f"198.51.100.{n + 1}" if n < 250 else f"203.0.113.{n - 249}"


def _code(body: bytes, admin: bool = False) -> str:
    payload = orjson.loads(body)
    return payload["errors"][0]["code"] if admin else payload["errors"][0]["extensions"]["code"]


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(gateway):
    with _probe(gateway) as probe:
        answer = stream_request(gateway.port, post_head("/graphql", chunked=True), chunk(16 * 1024), 100 * MiB)
    assert answer.status == 413 and _code(answer.body) == "PAYLOAD_TOO_LARGE"
    assert answer.closed
    assert answer.sent < 16 * MiB, f"the gateway took {answer.sent / MiB:.0f} MiB of a body over {LIMIT} bytes"
    probe.assert_kept_answering()


def test_a_declared_length_over_the_limit_is_refused_before_the_body(gateway):
    answer = stream_request(gateway.port, post_head("/graphql", length=300 * MiB), b" " * 65536, 300 * MiB)
    assert answer.status == 413 and _code(answer.body) == "PAYLOAD_TOO_LARGE"
    assert answer.sent < 16 * MiB


def test_an_admin_upload_without_a_key_is_refused_before_its_body_is_read(gateway):
    with _probe(gateway) as probe:
        answer = stream_request(
            gateway.port, post_head("/admin/connectors/big", length=200 * MiB, method="PUT"), b" " * 65536, 200 * MiB
        )
    assert answer.status == 401 and _code(answer.body, admin=True) == "UNAUTHENTICATED"
    assert answer.header("connection") == "close" and answer.closed  # the rest of the body is never read
    assert answer.sent < 16 * MiB, f"the gateway took {answer.sent / MiB:.0f} MiB from a requester without a key"
    probe.assert_kept_answering()


def test_an_admin_upload_with_a_key_stops_at_the_admin_limit(gateway):
    head = post_head(
        "/admin/connectors/big", chunked=True, method="PUT", headers={"authorization": f"Bearer {OPERATOR_KEY}"}
    )
    answer = stream_request(gateway.port, head, chunk(16 * 1024), 200 * MiB)
    assert answer.status == 413 and _code(answer.body, admin=True) == "PAYLOAD_TOO_LARGE"
    assert answer.sent < 16 * MiB


def test_slow_senders_are_disconnected_after_the_body_and_header_timeouts(gateway):
    def body_parts() -> list[bytes]:  # each from an address of its own: one address has 2 requests in flight at most
        return [post_head("/graphql", length=1000, headers={"x-forwarded-for": _address()})] + [b" " * 10] * 40

    header_parts = [b"POST /graphql HTTP/1.1\r\n"] + [b"x-slow: %d\r\n" % i for i in range(40)]
    senders = [body_parts() for _ in range(20)] + [header_parts] * 20
    with _probe(gateway) as probe, ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda parts: trickle_request(gateway.port, parts, 0.2), senders))
    # each sender trickles a part every 0.2 s, 8 s in all (and its body or headers never end): the
    # gateway's timeouts (1 s) answer it while it is still sending; a gateway waiting for the rest
    # would let it send everything. The trickle cannot go faster on a loaded machine: 8x margin
    for parts, answer in zip(senders, answers, strict=True):
        assert answer.status == 408 and _code(answer.body) == "REQUEST_TIMEOUT", answer.head
        assert answer.closed and answer.sent < sum(map(len, parts)), (answer.sent, answer.seconds)
    seconds = sorted(answer.seconds for answer in answers)
    print(f"\nslow senders answered 408 after {seconds[0]:.2f}-{seconds[-1]:.2f} s")
    probe.assert_kept_answering()


def test_oversized_headers_are_refused(gateway):
    answer = stream_request(gateway.port, b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ", b"a" * 65536, 4 * MiB)
    assert answer.status == 431 and _code(answer.body) == "REQUEST_HEADER_FIELDS_TOO_LARGE"
    many = "".join(f"x-h{i}: 1\r\n" for i in range(150))
    answer = stream_request(gateway.port, f"GET /healthz HTTP/1.1\r\nhost: x\r\n{many}\r\n".encode(), b"", 0)
    assert answer.status == 431


def test_slow_readers_are_dropped_and_do_not_stall_others(gateway):
    size = 8 * MiB
    request = f"GET /graphql?query=%7Bblob(size:{size})%7D HTTP/1.1\r\nhost: x\r\napollo-require-preflight: 1\r\nx-forwarded-for: {{}}\r\n\r\n"
    with _probe(gateway) as probe:
        readers = [deaf_reader(gateway.port, request.format(_address()).encode()) for _ in range(10)]
        time.sleep(4)  # answers written, then write_timeout (1 s) twice over without a byte taken
        outcomes = [read_all(reader, seconds=5) for reader in readers]
    for reader in readers:
        reader.close()
    for received, reset in outcomes:
        assert reset and received < size, f"a deaf reader still got {received} bytes of {size}"
    probe.assert_kept_answering()


def test_the_public_is_rate_limited_per_address(gateway):
    attacker, bystander = _address(), _address()
    with (
        _probe(gateway) as probe,
        httpx.Client(base_url=gateway.url, timeout=5, headers={"apollo-require-preflight": "true"}) as client,
    ):
        answers = [
            client.get("/graphql", params={"query": "{ hello }"}, headers={"x-forwarded-for": attacker})
            for _ in range(15)
        ]
        other = client.get("/graphql", params={"query": "{ hello }"}, headers={"x-forwarded-for": bystander})
    refused = [a for a in answers if a.status_code == 429]
    assert len(refused) >= 8  # 5 per second: the first 5 at once, then one per 0.2 s
    assert refused[0].json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert int(refused[0].headers["retry-after"]) >= 1
    assert other.status_code == 200
    probe.assert_kept_answering()


@pytest.fixture(scope="module")
def sparing_gateway(edge_world):
    """The public may send one request per 100 s per address (a burst of one): what is counted is
    seen without racing the clock."""
    running = _serve(edge_world, {"CITYGATE_PUBLIC_RATE_LIMIT": "0.01"})
    yield running
    running.stop()


@pytest.mark.parametrize("path", ["/audit/head", "/.well-known/jwks.json"])
def test_the_public_records_routes_are_rate_limited_per_address(sparing_gateway, path):
    """The signed audit head (store reads and a signature each) and the JWKS count against the
    public's limits of their address, as an anonymous query does: a flood gets 429, another
    address and the probes are still answered."""
    attacker, bystander = _address(), _address()
    with _probe(sparing_gateway) as probe, httpx.Client(base_url=sparing_gateway.url, timeout=10) as client:
        answers = [client.get(path, headers={"x-forwarded-for": attacker}) for _ in range(20)]
        other = client.get(path, headers={"x-forwarded-for": bystander})
        probes = [client.get("/healthz", headers={"x-forwarded-for": attacker}).status_code for _ in range(10)]
    assert answers[0].status_code == 200, answers[0].text
    assert [a.status_code for a in answers[1:]] == [429] * 19
    refused = answers[1]
    assert (
        refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED" and int(refused.headers["retry-after"]) >= 1
    )
    assert other.status_code == 200, other.text  # one address's flood, not everyone's
    assert probes == [200] * 10  # a load balancer's probes are never limited
    probe.assert_kept_answering()


def test_an_address_has_one_public_budget_for_queries_and_records(sparing_gateway):
    headers = {"x-forwarded-for": _address(), "apollo-require-preflight": "true"}
    with httpx.Client(base_url=sparing_gateway.url, timeout=10, headers=headers) as client:
        query = client.get("/graphql", params={"query": "{ hello }"})
        head, keys = client.get("/audit/head"), client.get("/.well-known/jwks.json")
    assert query.status_code == 200 and query.json()["data"] == {"hello": "hello"}
    for refused in (head, keys):
        assert refused.status_code == 429 and refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


def test_a_client_is_held_to_the_rate_its_policy_sets(gateway):
    with httpx.Client(
        base_url=gateway.url, timeout=5, headers={"x-api-key": LIMITED_KEY, "apollo-require-preflight": "true"}
    ) as client:
        statuses = [client.get("/graphql", params={"query": "{ hello }"}).status_code for _ in range(4)]
    assert statuses[:2] == [200, 200] and 429 in statuses[2:]


def test_requests_in_flight_are_limited_per_address(gateway):
    address = _address()

    def slow() -> httpx.Response:
        return httpx.get(
            gateway.url + "/graphql",
            params={"query": "{ slow(seconds: 1) }"},
            headers={"x-forwarded-for": address, "apollo-require-preflight": "true"},
            timeout=10,
        )

    with _probe(gateway) as probe, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: slow(), range(4)))
    assert sorted(a.status_code for a in answers) == [200, 200, 429, 429]
    assert {a.json()["errors"][0]["extensions"]["code"] for a in answers if a.status_code == 429} == {"RATE_LIMITED"}
    probe.assert_kept_answering(worst=1.5)


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")
def test_two_gateways_count_one_client_together_through_redis(edge_world):
    env = {"CITYGATE_REDIS_URL": REDIS_URL, "CITYGATE_PUBLIC_RATE_LIMIT": "1"}
    first, second = _serve(edge_world, env), _serve(edge_world, env)
    try:
        address = _address()
        headers = {"x-forwarded-for": address, "apollo-require-preflight": "true"}
        one = httpx.get(first.url + "/graphql", params={"query": "{ hello }"}, headers=headers)
        other = httpx.get(second.url + "/graphql", params={"query": "{ hello }"}, headers=headers)
        assert one.status_code == 200
        assert other.status_code == 429 and other.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert (
            httpx.get(
                second.url + "/graphql",
                params={"query": "{ hello }"},
                headers={"x-forwarded-for": _address(), "apollo-require-preflight": "true"},
            ).status_code
            == 200
        )
    finally:
        first.stop()
        second.stop()


def test_rate_limits_stay_in_memory_when_redis_does_not_answer(edge_world):
    gateway = _serve(
        edge_world, {"CITYGATE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "CITYGATE_PUBLIC_RATE_LIMIT": "1"}
    )
    try:
        headers = {"x-forwarded-for": _address(), "apollo-require-preflight": "true"}
        started = time.monotonic()
        first = httpx.get(gateway.url + "/graphql", params={"query": "{ hello }"}, headers=headers)
        second = httpx.get(gateway.url + "/graphql", params={"query": "{ hello }"}, headers=headers)
        assert first.status_code == 200 and second.status_code == 429
        assert time.monotonic() - started < 2
    finally:
        gateway.stop()


def test_bad_limit_settings_are_refused_in_one_line(edge_world, tmp_path: Path):
    import subprocess

    from tests.http.edge import CITYGATE

    result = subprocess.run(
        [*CITYGATE, "serve", "--port", str(free_port()), "--store", f"sqlite:///{tmp_path / 'g.db'}"],
        env={**EDGE_ENV, "CITYGATE_BODY_TIMEOUT": "soon", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=30,
        text=True,
    )
    assert result.returncode == 1
    assert "CITYGATE_BODY_TIMEOUT" in result.stderr and "Traceback" not in result.stderr
