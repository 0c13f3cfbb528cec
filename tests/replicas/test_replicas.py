"""Many replicas, one truth: what one gateway records or changes, the other serves at once.

Two gateways on one PostgreSQL database. A consent change answered through one is in force on
the other's very next request (the consent clock, no waiting for a notification); registrations
and policy reloads reach the other through LISTEN/NOTIFY; a listener cut off reports not ready,
reconnects and catches up with what it missed, and consent stays right meanwhile.
"""

from __future__ import annotations

import asyncio
import inspect
import time

import asyncpg
import httpx
import yaml

from tests.privacy.conftest import OPERATOR_KEY
from tests.replicas.conftest import ADMIN_URL, replica_policy

QUERY = '{ resident(id: "r1") { id email } }'
DISCLOSED = "amelie@example.org"
MASKED = "a***@example.org"


async def email_seen_by(city) -> str:
    answer = await city.ask(QUERY, client="parking-app", purpose="booking")
    assert answer["_status"] == 200 and "errors" not in answer, answer
    return answer["data"]["resident"]["email"]


async def operator(city, method: str, path: str, json=None) -> httpx.Response:
    return await city.client.request(method, path, json=json, headers={"authorization": f"Bearer {OPERATOR_KEY}"})


async def until(check, seconds: float = 1.0, step: float = 0.02):
    """Poll `check()` (async or not) until it returns something true, for at most `seconds`; return its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(step)


async def test_a_withdrawal_through_one_replica_holds_on_the_other_at_once_under_load(replicas):
    a, b = replicas
    assert await email_seen_by(b) == MASKED  # no consent yet, on either
    stop = asyncio.Event()
    # (sent, answered, email) of every reader request, to check against the writers' timeline
    seen: list[tuple[float, float, str]] = []

    async def reader(city) -> None:
        while not stop.is_set():
            sent = time.monotonic()
            email = await email_seen_by(city)
            seen.append((sent, time.monotonic(), email))

    readers = [asyncio.create_task(reader(city)) for city in (a, b, b, a)]
    # (from, to, the email every request sent and answered within it must see)
    windows: list[tuple[float, float, str]] = []
    cycles = 50
    try:
        for cycle in range(cycles):
            writer, other = (a, b) if cycle % 2 == 0 else (b, a)
            granted_at = time.monotonic()
            consent = (await writer.grant("r1", "parking-app", "booking", ["user.contact"]))["consent"]
            granted = time.monotonic()
            assert await email_seen_by(other) == DISCLOSED, (
                f"cycle {cycle}: a grant answered is not in force on the other replica"
            )
            withdrawing = time.monotonic()
            await writer.withdraw("r1", consent["id"])
            withdrawn = time.monotonic()
            assert await email_seen_by(other) == MASKED, (
                f"cycle {cycle}: disclosed on the other replica after the withdrawal answered"
            )
            windows.append((granted, withdrawing, DISCLOSED))
            windows.append((withdrawn, time.monotonic() if cycle == cycles - 1 else float("inf"), MASKED))
            if cycle:
                # the previous withheld window ends when this cycle's grant was sent
                start, _, email = windows[-3]
                windows[-3] = (start, granted_at, email)
    finally:
        stop.set()
        await asyncio.gather(*readers)
    checked = 0
    wrong = []
    for sent, answered, email in seen:
        for start, end, expected in windows:
            if start <= sent and answered <= end:
                checked += 1
                if email != expected:
                    wrong.append((expected, email))
    assert wrong == []
    assert checked > 0, "no reader request fell within a window: the readers did not run alongside"
    print(f"\n{cycles} grant/withdraw cycles; {len(seen)} concurrent reads, {checked} within a settled window, 0 wrong")


async def warm(city) -> None:
    """The replica's composition worker spawned (at start, in the background): what a change heard
    of costs is then composing it, not a process's start (a slow one on a loaded machine)."""
    warming = city.gateway.registry.warming
    assert warming is not None
    await until(warming.done, seconds=120, step=0.1)


async def test_a_registration_through_one_replica_is_served_by_the_other(replicas, notices_world):
    a, b = replicas
    await warm(b)
    registered = time.monotonic()
    response = await operator(
        a,
        "PUT",
        "/admin/connectors/notices",
        {"owner": "city", "kind": "subgraph", "url": notices_world.url("notices")},
    )
    assert response.status_code == 200, response.text

    async def served_by_b():
        answer = await b.ask("{ cityNotice }")
        return answer.get("data") or None

    # within 1 s on a quiet machine (measured: see the print); polled longer so that a loaded one
    # does not fail the test
    assert await until(served_by_b, seconds=10) == {"cityNotice": "Fermeture du pont Neuf samedi"}
    print(f"\nregistered through A, served by B {time.monotonic() - registered:.2f} s after the registration was sent")
    listed = (await operator(b, "GET", "/admin/connectors")).json()
    assert any(c["name"] == "notices" and c["version"] == 1 for c in listed["connectors"]), listed
    # and removed through B: gone from A
    assert (await operator(b, "DELETE", "/admin/connectors/notices")).status_code == 200

    async def gone_from_a():
        return "errors" in await a.ask("{ cityNotice }")

    assert await until(gone_from_a, seconds=10)


async def test_a_policy_reload_through_one_replica_applies_on_the_other(replicas, signer):
    a, b = replicas
    assert await email_seen_by(b) == MASKED
    policy = replica_policy(signer.jwks_file)
    policy["version"] = "test-2026-12"
    policy["legal_bases"].append(
        {
            "name": "parking-contact",
            "basis": "contract",
            "roles": ["partner"],
            "purposes": ["booking"],
            "categories": ["user.contact"],
            "sources": ["city"],
        }
    )
    a.policy_path.write_text(yaml.safe_dump(policy))  # the replicas' common policy file
    response = await operator(a, "POST", "/admin/policy/reload")
    assert response.json() == {"ok": True, "errors": []}
    assert await email_seen_by(a) == DISCLOSED

    async def disclosed_by_b():
        return await email_seen_by(b) == DISCLOSED

    assert await until(disclosed_by_b, seconds=10)
    assert b.gateway.runtime.policy.version == "test-2026-12"


async def readiness(city) -> tuple[int, str]:
    response = await city.client.get("/readyz")
    return response.status_code, response.text


async def test_a_listener_cut_off_reports_not_ready_withholds_nothing_stale_and_catches_up(replicas, notices_world):
    a, b = replicas
    await warm(b)
    assert await readiness(b) == (200, "ready")
    consent = (await a.grant("r1", "parking-app", "booking", ["user.contact"]))["consent"]
    assert await email_seen_by(b) == DISCLOSED
    listener = b.gateway.listener
    pid = listener.backend_pid
    dsn = listener.dsn
    # the listener cannot reconnect for a while: notifications sent meanwhile are lost to it
    listener.dsn = "postgresql://postgres@127.0.0.1:1/nowhere"
    admin = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()

    async def not_ready():
        status, text = await readiness(b)
        return (status, text) if status == 503 else None

    _status, text = await until(not_ready, seconds=20, step=0.05)
    assert "change listener" in text and "citygate_changes" in text
    # while B hears nothing: a withdrawal through A holds on B's next request all the same
    await a.withdraw("r1", consent["id"])
    assert await email_seen_by(b) == MASKED
    # a registration through A, whose notification B misses
    response = await operator(
        a,
        "PUT",
        "/admin/connectors/notices",
        {"owner": "city", "kind": "subgraph", "url": notices_world.url("notices")},
    )
    assert response.status_code == 200, response.text
    assert (await readiness(b))[0] == 503
    listener.dsn = dsn

    async def ready():
        return await readiness(b) == (200, "ready")

    assert await until(ready, seconds=20, step=0.05)
    # caught up on reconnection, before it said ready
    assert (await b.ask("{ cityNotice }"))["data"] == {"cityNotice": "Fermeture du pont Neuf samedi"}
    assert listener.backend_pid not in (None, pid)
    consent = (await a.grant("r1", "parking-app", "booking", ["user.contact"]))["consent"]
    assert await email_seen_by(b) == DISCLOSED
