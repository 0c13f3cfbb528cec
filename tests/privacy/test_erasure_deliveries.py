"""Erasure requests forwarded to partners that behave, fail, hang, answer garbage or too much,
over real HTTP on loopback (through `HttpPool.post_guarded`), recorded in a real SQLite file that a
restart reads again; each delivery signed for its connector; refused endpoints final at once."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from datetime import timedelta

import jwt
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.consent import RecordSigner
from gateway.consent._erasure import (
    ADDRESS_REFUSED,
    DONE,
    ENDPOINT_REFUSED,
    FAILED,
    NOT_SUPPORTED,
    OWNER_CHANGED,
    PENDING,
    RETAINED,
    ErasureDispatcher,
    ErasureSettings,
    ErasureStore,
    ErasureTarget,
)
from gateway.executor import HttpPool
from gateway.registry import ManifestError, parse_manifest
from gateway.sdk_erasure import ERASURE_TOKEN_HEADER, ERASURE_TOKEN_TYPE
from gateway.store import Store
from tests.privacy import world
from tests.privacy.conftest import City, connectors_folder, policy_document
from tests.world.server import AppServer

RESIDENT = "r0042"


class Partners:
    """One loopback server, a path per partner behaviour; records what each received."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict]] = {}
        self.hang = asyncio.Event()  # never set: the hanging partner waits for ever
        self.pending_answers = 1  # the slow partner says "pending" this many times, then "done"

        async def record(request: Request, name: str) -> dict:
            body = json.loads(await request.body())
            self.received.setdefault(name, []).append({"body": body, "headers": dict(request.headers)})
            return body

        async def good(request: Request) -> Response:
            await record(request, "good")
            # an adversary's extras: another connector named, a status for it; they change nothing
            return JSONResponse(
                {"status": "done", "connector": "failing", "deliveries": [{"connector": "failing", "status": "done"}]}
            )

        async def failing(request: Request) -> Response:
            await record(request, "failing")
            return JSONResponse({"error": "boom, secret internal detail"}, status_code=503)

        async def refusing(request: Request) -> Response:
            await record(request, "refusing")
            return JSONResponse({"error": "who are you"}, status_code=403)

        async def garbage(request: Request) -> Response:
            await record(request, "garbage")
            return Response(b"\x00<html>not json at all", media_type="text/html")

        async def huge(request: Request) -> Response:
            await record(request, "huge")
            return Response(b'{"status": "done", "padding": "' + b"x" * 100_000 + b'"}', media_type="application/json")

        async def hanging(request: Request) -> Response:
            await record(request, "hanging")
            await asyncio.sleep(3600)
            return JSONResponse({"status": "done"})

        async def slow(request: Request) -> Response:
            await record(request, "slow")
            if len(self.received["slow"]) <= self.pending_answers:
                return JSONResponse({"status": "pending"}, status_code=202)
            return JSONResponse({"status": "done"})

        async def redirecting(request: Request) -> Response:
            await record(request, "redirecting")
            return Response(status_code=307, headers={"location": "http://169.254.169.254/"})

        async def deleting(request: Request) -> Response:  # a partner whose manifest says method: DELETE
            await record(request, "deleting")
            return JSONResponse(
                {"status": "done"} if request.method == "DELETE" else {"error": "DELETE only"},
                status_code=200 if request.method == "DELETE" else 405,
            )

        routes = [good, failing, refusing, garbage, huge, hanging, slow, redirecting, deleting]
        self.server = AppServer(
            Starlette(routes=[Route(f"/{r.__name__}", r, methods=["POST", "PUT", "DELETE"]) for r in routes])
        ).start()

    def target(self, name: str, **overrides) -> ErasureTarget:
        values = {
            "connector": name,
            "owner": f"{name}-inc",
            "url": f"{self.server.base_url}/{name}",
            "method": "POST",
            "headers": (("x-api-key", f"key-of-{name}"),),
            "timeout": 1.0,
            "guarded": False,
        }
        return ErasureTarget(**{**values, **overrides})


@pytest.fixture(scope="module")
def partners():
    server = Partners()
    yield server
    server.server.stop()


FAST = ErasureSettings(max_attempts=3, first_retry=0.05, max_retry=0.2, poll=0.05, concurrency=12)
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


def _pool(allow=LOOPBACK, resolver: AbstractResolver | None = None) -> HttpPool:
    pool = HttpPool(resolver=resolver)
    pool.allow_upstreams = lambda: allow
    return pool


async def _until_settled(
    store: ErasureStore, request_id: str, seconds: float = 20
) -> dict[str, tuple[str, str | None, int]]:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        (request,) = [r for r in await store.requests_for(RESIDENT) if r.id == request_id]
        statuses = {d.connector: (d.status, d.reason, d.attempts) for d in request.deliveries}
        if all(status != PENDING for status, _, _ in statuses.values()) or asyncio.get_running_loop().time() > deadline:
            return statuses
        await asyncio.sleep(0.05)


async def test_each_partner_gets_its_own_status_and_a_bad_one_changes_no_other(partners, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'erasure.db'}")
    await store.create()  # the settings table, where the signing key is first kept
    erasures = ErasureStore(store)
    names = ["good", "failing", "refusing", "garbage", "huge", "hanging", "slow", "redirecting"]
    targets = {name: partners.target(name) for name in names}
    targets["deleting"] = partners.target("deleting", method="DELETE")
    targets["silent"] = ErasureTarget("silent", "silent-inc", None)  # holds data, declares no endpoint
    pool, signer = _pool(), RecordSigner(store, configured="")
    dispatcher = ErasureDispatcher(erasures, lambda: targets, pool, signer, FAST)
    try:
        request_id = await erasures.record(RESIDENT, "city-app", targets.values())
        await dispatcher.run_once()  # starts every delivery in the background and returns
        # the good partner's answer is recorded while the hanging one still holds its request
        for _ in range(1000):  # bounded: a broken dispatcher fails the test, never hangs it
            (request,) = await erasures.requests_for(RESIDENT)
            now = {d.connector: d.status for d in request.deliveries}
            if now["good"] == DONE and "hanging" in partners.received:  # both sent: the hanging one still holds its
                break
            await asyncio.sleep(0.02)
        assert now["hanging"] == PENDING and "hanging" in partners.received
        dispatcher.start()
        statuses = await _until_settled(erasures, request_id)
        jwks = jwt.PyJWKSet.from_dict(await signer.jwks())
    finally:
        await dispatcher.stop()
        await pool.close()
        await store.close()

    assert statuses["good"] == (DONE, None, 1)  # its answer naming "failing" changed nothing else
    assert statuses["failing"] == (FAILED, "http-error", 3)  # retried, bounded
    assert statuses["refusing"] == (FAILED, "rejected", 1)  # a 4xx is final
    assert statuses["garbage"] == (FAILED, "invalid-response", 3)
    assert statuses["huge"] == (FAILED, "invalid-response", 3)  # read up to 4 KiB, never whole
    assert statuses["hanging"] == (FAILED, "timeout", 3)
    assert statuses["slow"] == (DONE, None, 2)  # "pending", asked again with the same request id, then "done"
    assert statuses["redirecting"] == (FAILED, "rejected", 1)  # no redirect followed
    assert statuses["silent"] == (NOT_SUPPORTED, "no-endpoint", 0)
    assert statuses["deleting"] == (DONE, None, 1)  # the manifest's method, through post_guarded

    # what a partner receives: the request id, the resident's id, its own headers only
    sent = partners.received["good"][0]
    assert sent["body"]["requestId"] == request_id and sent["body"]["residentId"] == RESIDENT
    assert sent["headers"]["x-api-key"] == "key-of-good" and sent["headers"]["content-type"] == "application/json"
    assert all(r["headers"]["x-api-key"] == f"key-of-{name}" for name, got in partners.received.items() for r in got)
    assert {r["body"]["requestId"] for r in partners.received["slow"]} == {request_id}

    # each delivery carries a token the gateway signed for that connector, that resident, that request
    for name, got in partners.received.items():
        for received in got:
            token = received["headers"][ERASURE_TOKEN_HEADER]
            header = jwt.get_unverified_header(token)
            assert header["typ"] == ERASURE_TOKEN_TYPE
            claims = jwt.decode(token, jwks[header["kid"]].key, algorithms=["ES256"], audience=name, issuer="citygate")
            assert (
                claims["sub"] == RESIDENT == received["body"]["residentId"]
                and claims["requestId"] == received["body"]["requestId"]
            )
            assert claims["exp"] - claims["iat"] == 300
            with pytest.raises(jwt.InvalidAudienceError):  # a token for one connector is refused by another
                jwt.decode(token, jwks[header["kid"]].key, algorithms=["ES256"], audience="someone-else")


async def test_a_request_survives_a_restart_and_is_delivered_by_the_next_process(partners, tmp_path):
    database = f"sqlite:///{tmp_path / 'erasure.db'}"
    before = partners.received.get("good", []).copy()
    first = Store(database)
    request_id = await ErasureStore(first).record(RESIDENT, "city-app", [partners.target("good")])
    await first.close()  # the gateway stops before any delivery

    second = Store(database)
    await second.create()
    erasures = ErasureStore(second)
    (request,) = [r for r in await erasures.requests_for(RESIDENT) if r.id == request_id]
    assert [(d.connector, d.status) for d in request.deliveries] == [("good", PENDING)]
    pool = _pool()
    dispatcher = ErasureDispatcher(
        erasures, lambda: {"good": partners.target("good")}, pool, RecordSigner(second, configured=""), FAST
    )
    dispatcher.start()
    try:
        statuses = await _until_settled(erasures, request_id)
    finally:
        await dispatcher.stop()
        await pool.close()
        await second.close()
    assert statuses == {"good": (DONE, None, 1)}
    assert [r["body"]["requestId"] for r in partners.received["good"][len(before) :]] == [request_id]


async def test_a_connector_name_taken_over_by_another_owner_receives_nothing(partners, tmp_path):
    """Pending for partner A's connector "good", then A's connector is removed and B registers the
    name: the next attempt must not hand the resident's id (with a token B's SDK would accept) to
    B, who was never audited as holding it: final, owner-changed, nothing sent."""
    store = Store(f"sqlite:///{tmp_path / 'erasure.db'}")
    await store.create()
    erasures = ErasureStore(store)
    before = len(partners.received.get("good", []))
    request_id = await erasures.record(RESIDENT, "city-app", [partners.target("good", owner="a-inc")])
    pool = _pool()
    taken_over = {"good": partners.target("good", owner="b-inc")}  # same name and endpoint, another owner
    dispatcher = ErasureDispatcher(erasures, lambda: taken_over, pool, RecordSigner(store, configured=""), FAST)
    dispatcher.start()
    try:
        statuses = await _until_settled(erasures, request_id)
    finally:
        await dispatcher.stop()
        await pool.close()
        await store.close()
    assert statuses == {"good": (FAILED, OWNER_CHANGED, 1)}
    assert len(partners.received.get("good", [])) == before


class PartnerDns(AbstractResolver):
    """A partner's DNS: its name answers the address the test gives (loopback here)."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {"hostname": host, "host": self.names[host], "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}
        ]

    async def close(self) -> None:
        return None


async def test_what_cannot_be_sent_is_final_when_recorded_never_pending_nor_audited(partners, tmp_path):
    """An endpoint refused (off the connector's origin, or at an address the policy refuses), a
    connector the operator declares retained, one without an endpoint: recorded with their final
    status and reason, never due, never sent, and not counted as a disclosure."""
    store = Store(f"sqlite:///{tmp_path / 'erasure.db'}")
    await store.create()  # the settings table, where the signing key is first kept
    erasures = ErasureStore(store)
    sent_before = {name: len(got) for name, got in partners.received.items()}
    targets = {
        "moved": partners.target("good", connector="moved", problem=ENDPOINT_REFUSED),
        "refused": partners.target("good", connector="refused", problem=ADDRESS_REFUSED, guarded=True),
        "city": ErasureTarget("city", "city", None, retained="legal-obligation"),
        "silent": ErasureTarget("silent", "silent-inc", None),
    }
    assert not any(target.deliverable for target in targets.values())  # nobody is audited as receiving the id
    pool = _pool()
    dispatcher = ErasureDispatcher(erasures, lambda: targets, pool, RecordSigner(store, configured=""), FAST)
    try:
        request_id = await erasures.record(RESIDENT, "city-app", targets.values())
        (request,) = [r for r in await erasures.requests_for(RESIDENT) if r.id == request_id]
        assert {d.connector: (d.status, d.reason, d.attempts) for d in request.deliveries} == {
            "moved": (FAILED, "endpoint-refused", 0),
            "refused": (FAILED, "address-refused", 0),
            "city": (RETAINED, "legal-obligation", 0),
            "silent": (NOT_SUPPORTED, "no-endpoint", 0),
        }
        assert await erasures.due(10) == []  # nothing to send, now or after a restart
        await dispatcher.run_once()
    finally:
        await dispatcher.stop()
        await pool.close()
        await store.close()
    assert {name: len(got) for name, got in partners.received.items()} == sent_before


async def test_an_address_the_policy_refuses_at_connection_is_final_and_receives_nothing(partners, tmp_path):
    """Deliveries recorded while the endpoint was allowed, then refused when sent (the policy
    changed, or the partner's name now resolves to a private address): failed, address-refused,
    after one attempt, not retried; the partner receives nothing."""
    store = Store(f"sqlite:///{tmp_path / 'erasure.db'}")
    await store.create()  # the settings table, where the signing key is first kept
    erasures = ErasureStore(store)
    port = partners.server.base_url.rsplit(":", 1)[1]
    targets = {
        "literal": partners.target("good", connector="literal", guarded=True),  # http://127.0.0.1:port
        "named": partners.target("good", connector="named", url=f"http://partner.example:{port}/good", guarded=True),
    }
    sent_before = len(partners.received.get("good", []))
    pool = _pool(allow=(), resolver=PartnerDns({"partner.example": "127.0.0.1"}))  # loopback not allowed
    dispatcher = ErasureDispatcher(erasures, lambda: targets, pool, RecordSigner(store, configured=""), FAST)
    dispatcher.start()
    try:
        request_id = await erasures.record(RESIDENT, "city-app", targets.values())
        dispatcher.wake()
        statuses = await _until_settled(erasures, request_id)
    finally:
        await dispatcher.stop()
        await pool.close()
        await store.close()
    assert statuses == {"literal": (FAILED, "address-refused", 1), "named": (FAILED, "address-refused", 1)}
    assert len(partners.received.get("good", [])) == sent_before


async def test_a_delivery_is_claimed_once_by_two_dispatchers(partners, tmp_path):
    """Two replicas on one store: the lease makes one of them send it."""
    store = Store(f"sqlite:///{tmp_path / 'erasure.db'}")
    await store.create()  # the settings table, where the signing key is first kept
    erasures = ErasureStore(store)
    sent_before = len(partners.received.get("good", []))
    request_id = await erasures.record(RESIDENT, "city-app", [partners.target("good")])
    assert await erasures.claim(request_id, "good", 0, lease=30)
    assert not await erasures.claim(request_id, "good", 0, lease=30)  # held: the other replica skips it
    assert await erasures.due(10) == []
    await store.close()
    assert len(partners.received.get("good", [])) == sent_before


def test_the_manifest_erasure_endpoint_is_on_the_connectors_origin():
    base = {"name": "parking", "owner": "parkr", "url": "https://api.parkr.example/graphql"}
    manifest = parse_manifest({**base, "erasure": {"url": "https://api.parkr.example/erasure", "method": "post"}})
    assert manifest.erasure is not None and manifest.erasure.method == "POST"
    assert manifest.to_dict()["erasure"] == {"url": "https://api.parkr.example/erasure", "method": "POST"}
    refused = [
        {"url": "https://elsewhere.example/erasure"},  # another host: the connector's headers would go there
        {"url": "http://api.parkr.example/erasure"},  # another scheme
        {"url": "https://api.parkr.example:8443/erasure"},  # another port
        {"url": "https://user:pw@api.parkr.example/erasure"},
        {"url": "https://api.parkr.example/erasure", "method": "GET"},
        {"url": "https://api.parkr.example/erasure", "extra": 1},
        "https://api.parkr.example/erasure",
    ]
    for erasure in refused:
        with pytest.raises(ManifestError) as error:
            parse_manifest({**base, "erasure": erasure})
        assert error.value.codes == ["INVALID_MANIFEST"]
    with pytest.raises(ManifestError) as error:  # the gateway's environment is never a partner's
        parse_manifest({**base, "erasure": {"url": "${CITYGATE_OPERATOR_KEY}/erasure"}})
    assert "SECRET_REFERENCE_REFUSED" in error.value.codes


async def test_through_the_gateway_a_refused_endpoint_is_final_and_not_audited(
    tmp_path, privacy_world, signer, monkeypatch
):
    """A connector folder whose erasure url (read from the environment) is off its origin: the
    resident's request shows it failed (endpoint-refused) at once, and the audit log records no
    disclosure of the resident's id to its owner, since nothing is sent."""
    monkeypatch.setenv("CG_RIGHTS_ERASURE_URL", "http://169.254.169.254/latest/erasure")
    world.reset()
    folder = connectors_folder(tmp_path / "connectors", privacy_world)
    with (folder / "parking" / "manifest.yaml").open("a") as manifest:
        manifest.write("erasure:\n  url: ${CG_RIGHTS_ERASURE_URL}\n")
    city = City(f"sqlite:///{tmp_path / 'city.db'}", folder, policy_document(signer.jwks_file), signer)
    try:
        answer = await city.ask(
            "mutation { requestErasure { id deliveries { connector owner status reason attempts } } }", resident="r3"
        )
        assert "errors" not in answer, answer
        deliveries = {d["connector"]: d for d in answer["data"]["requestErasure"]["deliveries"]}
        assert deliveries["parking"] == {
            "connector": "parking",
            "owner": "parking",
            "status": "failed",
            "reason": "endpoint-refused",
            "attempts": 0,
        }
        assert all(d["status"] == "not-supported" for name, d in deliveries.items() if name != "parking")
        # a repeat within the repeat window is answered by this request, still final: nothing
        # was queued for the dispatcher to try again
        again = await city.ask(
            "mutation { requestErasure { id deliveries { connector status reason attempts } } }", resident="r3"
        )
        assert again["data"]["requestErasure"]["id"] == answer["data"]["requestErasure"]["id"]
        repeated = {d["connector"]: d for d in again["data"]["requestErasure"]["deliveries"]}
        assert repeated["parking"] == {
            "connector": "parking",
            "status": "failed",
            "reason": "endpoint-refused",
            "attempts": 0,
        }
        # past the window, with nothing pending, the next request is a new one
        monkeypatch.setattr("gateway.consent._rights.ERASURE_REPEAT_WINDOW", timedelta(0))
        later = await city.ask("mutation { requestErasure { id } }", resident="r3")
        assert later["data"]["requestErasure"]["id"] != answer["data"]["requestErasure"]["id"]
        disclosures = await city.ask("{ me { disclosures(limit: 50) { recipient purpose } } }", resident="r3")
        assert [d for d in disclosures["data"]["me"]["disclosures"] if d["purpose"] == "erasure"] == []
    finally:
        await city.close()
