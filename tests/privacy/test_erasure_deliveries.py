"""Erasure requests forwarded to partners that behave, fail, hang, answer garbage or too much,
over real HTTP on loopback, recorded in a real SQLite file that a restart reads again."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.consent._erasure import (
    DONE,
    FAILED,
    NOT_SUPPORTED,
    PENDING,
    ErasureDispatcher,
    ErasureSettings,
    ErasureStore,
    ErasureTarget,
)
from gateway.registry import ManifestError, parse_manifest
from gateway.store import Store
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
            return JSONResponse({"status": "done", "connector": "failing", "deliveries": [{"connector": "failing", "status": "done"}]})

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

        routes = [good, failing, refusing, garbage, huge, hanging, slow, redirecting]
        self.server = AppServer(Starlette(routes=[Route(f"/{r.__name__}", r, methods=["POST"]) for r in routes])).start()

    def target(self, name: str, **overrides) -> ErasureTarget:
        values = {
            "connector": name, "owner": f"{name}-inc", "url": f"{self.server.base_url}/{name}", "method": "POST",
            "headers": (("x-api-key", f"key-of-{name}"),), "timeout": 1.0, "guarded": False,
        }
        return ErasureTarget(**{**values, **overrides})


@pytest.fixture(scope="module")
def partners():
    server = Partners()
    yield server
    server.server.stop()


FAST = ErasureSettings(max_attempts=3, first_retry=0.05, max_retry=0.2, poll=0.05, concurrency=8)


async def _until_settled(store: ErasureStore, request_id: str, seconds: float = 20) -> dict[str, tuple[str, str | None, int]]:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        (request,) = [r for r in await store.requests_for(RESIDENT) if r.id == request_id]
        statuses = {d.connector: (d.status, d.reason, d.attempts) for d in request.deliveries}
        if all(status != PENDING for status, _, _ in statuses.values()) or asyncio.get_running_loop().time() > deadline:
            return statuses
        await asyncio.sleep(0.05)


async def test_each_partner_gets_its_own_status_and_a_bad_one_changes_no_other(partners, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'erasure.db'}")
    erasures = ErasureStore(store)
    names = ["good", "failing", "refusing", "garbage", "huge", "hanging", "slow", "redirecting"]
    targets = {name: partners.target(name) for name in names}
    targets["silent"] = ErasureTarget("silent", "silent-inc", None)  # holds data, declares no endpoint
    sessions: list[aiohttp.ClientSession] = []

    def session(guarded: bool) -> aiohttp.ClientSession:
        sessions.append(aiohttp.ClientSession())
        return sessions[-1]

    dispatcher = ErasureDispatcher(erasures, lambda: targets, session, FAST)
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
    finally:
        await dispatcher.stop()
        for opened in sessions:
            await opened.close()
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

    # what a partner receives: the request id, the resident's id, its own headers only
    sent = partners.received["good"][0]
    assert sent["body"]["requestId"] == request_id and sent["body"]["residentId"] == RESIDENT
    assert sent["headers"]["x-api-key"] == "key-of-good" and sent["headers"]["content-type"] == "application/json"
    assert all(r["headers"]["x-api-key"] == f"key-of-{name}" for name, got in partners.received.items() for r in got)
    assert {r["body"]["requestId"] for r in partners.received["slow"]} == {request_id}


async def test_a_request_survives_a_restart_and_is_delivered_by_the_next_process(partners, tmp_path):
    database = f"sqlite:///{tmp_path / 'erasure.db'}"
    before = partners.received.get("good", []).copy()
    first = Store(database)
    request_id = await ErasureStore(first).record(RESIDENT, "city-app", [partners.target("good")])
    await first.close()  # the gateway stops before any delivery

    second = Store(database)
    erasures = ErasureStore(second)
    (request,) = [r for r in await erasures.requests_for(RESIDENT) if r.id == request_id]
    assert [(d.connector, d.status) for d in request.deliveries] == [("good", PENDING)]
    sessions: list[aiohttp.ClientSession] = []

    def session(guarded: bool) -> aiohttp.ClientSession:
        sessions.append(aiohttp.ClientSession())
        return sessions[-1]

    dispatcher = ErasureDispatcher(erasures, lambda: {"good": partners.target("good")}, session, FAST)
    dispatcher.start()
    try:
        statuses = await _until_settled(erasures, request_id)
    finally:
        await dispatcher.stop()
        for opened in sessions:
            await opened.close()
        await second.close()
    assert statuses == {"good": (DONE, None, 1)}
    assert [r["body"]["requestId"] for r in partners.received["good"][len(before):]] == [request_id]


async def test_a_delivery_is_claimed_once_by_two_dispatchers(partners, tmp_path):
    """Two replicas on one store: the lease makes one of them send it."""
    store = Store(f"sqlite:///{tmp_path / 'erasure.db'}")
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
