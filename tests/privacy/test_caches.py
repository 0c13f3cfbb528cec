"""What the consent caches may keep: never a read that overlapped a change, never past an expiry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import gateway.consent._ledger as ledger_module
import gateway.privacy._guard as guard_module
from gateway.consent import Ledger
from gateway.identity import Requester
from gateway.policy import parse_policy
from gateway.store import Store
from tests.privacy.conftest import hold_reads, policy_document, restore_reads, settle_email

QUERY = '{ resident(id: "r1") { id email } }'


async def test_a_read_that_overlaps_a_withdrawal_is_not_kept(tmp_path, signer):
    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    await store.create()
    ledger = Ledger(store, parse_policy(policy_document(signer.jwks_file)))
    record, _receipt = await ledger.grant(
        subject="r1",
        recipient="parking-app",
        purpose="booking",
        categories=["user.contact"],
        expires_in_days=None,
        collection_method="test",
    )
    read_done, release = hold_reads(store)
    reading = asyncio.create_task(ledger.active_for({"r1"}, "parking-app", "booking"))
    await read_done.wait()
    restore_reads(store)
    await ledger.withdraw(subject="r1", consent_id=record.id)
    release.set()
    overlapping = await reading
    assert [c.id for c in overlapping["r1"]] == [record.id]  # what it read, for the request that read it
    assert ledger.cached_active("r1", "parking-app", "booking") is None  # but not kept
    assert (await ledger.active_for({"r1"}, "parking-app", "booking")) == {"r1": []}
    await store.close()


async def test_a_cached_decision_ends_when_its_consent_expires(sqlite_city, monkeypatch):
    await sqlite_city.grant("r1", "parking-app", "booking", ["user.contact"], expires_in_days=1)
    before = await sqlite_city.ask(QUERY, client="parking-app", purpose="booking")
    assert before["data"]["resident"]["email"] == "amelie@example.org"
    again = await sqlite_city.ask(QUERY, client="parking-app", purpose="booking")  # from the caches now
    assert again["data"]["resident"]["email"] == "amelie@example.org"

    later = datetime.now(UTC) + timedelta(days=1, minutes=1)

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return later if tz is not None else later.replace(tzinfo=None)

    monkeypatch.setattr(ledger_module, "datetime", Later)
    monkeypatch.setattr(guard_module.time, "time", lambda: later.timestamp())
    expired = await sqlite_city.ask(QUERY, client="parking-app", purpose="booking")
    assert expired["data"]["resident"]["email"] == "a***@example.org"
    assert [w["reason"] for w in expired["extensions"]["privacy"]["withheld"]] == ["no-consent"]


async def test_a_subject_met_again_is_decided_the_same_and_audited_once(sqlite_city):
    # r2 has two bookings: the second is placed whole once every field of the first was allowed,
    # and withheld field by field again while any of them is not
    query = '{ resident(id: "r2") { bookings { plate amount } } }'
    await sqlite_city.grant("r2", "parking-app", "booking", ["user.unique_id"])
    partly = await sqlite_city.ask(query, client="parking-app", purpose="booking")
    assert [b["plate"] for b in partly["data"]["resident"]["bookings"]] == ["EF-456-GH", "EF-456-GH"]
    assert [b["amount"] for b in partly["data"]["resident"]["bookings"]] == [None, None]
    withheld = [tuple(w["path"]) for w in partly["extensions"]["privacy"]["withheld"]]
    assert withheld == [("resident", "bookings", 0, "amount"), ("resident", "bookings", 1, "amount")]

    await sqlite_city.grant("r2", "parking-app", "booking", ["user.financial"])
    whole = await sqlite_city.ask(query, client="parking-app", purpose="booking")
    assert whole["data"]["resident"]["bookings"] == [
        {"plate": "EF-456-GH", "amount": 2.0},
        {"plate": "EF-456-GH", "amount": 3.5},
    ]
    assert "extensions" not in whole
    mine = await sqlite_city.ask("{ me { disclosures { recipient fields } } }", resident="r2")
    assert mine["data"]["me"]["disclosures"] == [
        {
            "recipient": "parking-app",
            "fields": ["Booking.amount", "Booking.plate"],
        },  # newest first: one entry per request
        {"recipient": "parking-app", "fields": ["Booking.plate"]},
    ]


async def test_a_decision_made_on_a_read_that_overlaps_a_withdrawal_is_not_kept(bare_guard):
    # A request whose ledger read straddles a withdrawal may answer with what it read, but the
    # decision it made on it must not serve the requests that come after the withdrawal.
    guard, store = bare_guard
    ledger = guard.ledger
    requester = Requester(guard.policy.clients["parking-app"], "booking", frozenset({"partner"}))

    async def ask(request_id: str):
        data, _decided, _audited = await settle_email(guard, requester, guard.decisions(requester), request_id)
        return data["email"]

    record, _receipt = await ledger.grant(
        subject="r1",
        recipient="parking-app",
        purpose="booking",
        categories=["user.contact"],
        expires_in_days=None,
        collection_method="test",
    )
    read_done, release = hold_reads(store)
    overlapping = asyncio.create_task(ask("before"))
    await asyncio.wait_for(read_done.wait(), 10)
    restore_reads(store)
    await ledger.withdraw(subject="r1", consent_id=record.id)
    release.set()
    assert await overlapping == "amelie@example.org"  # what it read, for the request that read it
    assert await ask("after") == "a***@example.org"  # the next request: withdrawn


async def test_verdicts_kept_across_requests_still_audit_every_request(sqlite_city):
    # The second and third requests are decided from the requester's verdict table (no ledger
    # change in between): same answer, and each still writes its own audit entry.
    query = "{ residents { id email phone } }"
    await sqlite_city.grant("r1", "parking-app", "booking", ["user.contact"])
    answers = [await sqlite_city.ask(query, client="parking-app", purpose="booking") for _ in range(3)]
    assert answers[0] == answers[1] == answers[2]
    assert answers[0]["data"]["residents"][0]["email"] == "amelie@example.org"
    mine = await sqlite_city.ask("{ me { disclosures { recipient fields requestId } } }", resident="r1")
    disclosures = mine["data"]["me"]["disclosures"]
    assert [(d["recipient"], d["fields"]) for d in disclosures] == [
        ("parking-app", ["Resident.email", "Resident.phone"])
    ] * 3
    assert len({d["requestId"] for d in disclosures}) == 3
