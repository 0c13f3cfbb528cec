"""The consent ledger and the audit log, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import orjson
import sqlalchemy
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.store import database_url

QUERY = '{ resident(id: "r3") { email } }'


async def test_a_grant_returns_a_receipt_and_me_lists_the_consent(city):
    granted = await city.grant("r3", "parking-app", "booking", ["user.contact.email"], expires_in_days=30)
    receipt = granted["receipt"]
    assert receipt["consentReceiptID"] == granted["consent"]["id"]
    assert receipt["piiPrincipalId"] == "r3"
    assert receipt["jurisdiction"] == "FR" and receipt["policyUrl"] == "https://paris.example/privacy"
    purpose = receipt["services"][0]["purposes"][0]
    assert purpose["purpose"] == "booking" and purpose["piiCategory"] == ["user.contact.email"]
    assert receipt["noticeVersion"] == "test-2026-11"
    me = await city.ask(
        "{ me { residentId consents { id recipient purpose categories legalBasis active expiresAt collectionMethod noticeVersion } } }",
        resident="r3",
    )
    (consent,) = me["data"]["me"]["consents"]
    assert consent["recipient"] == "parking-app" and consent["legalBasis"] == "consent" and consent["active"]
    assert consent["expiresAt"] is not None and consent["collectionMethod"] == "citygate-api via city-app"


async def test_withdrawal_takes_effect_on_the_next_request(city):
    consent_id = (await city.grant("r3", "parking-app", "booking", ["user.contact"]))["consent"]["id"]
    assert (await city.ask(QUERY, client="parking-app", purpose="booking"))["data"]["resident"][
        "email"
    ] == "cosette@example.org"
    withdrawn = await city.withdraw(
        "r3", consent_id, client="parking-app", purpose="booking"
    )  # any client may withdraw
    assert withdrawn["active"] is False and withdrawn["withdrawnAt"]
    assert (await city.ask(QUERY, client="parking-app", purpose="booking"))["data"]["resident"][
        "email"
    ] == "c***@example.org"


async def test_who_may_grant_and_withdraw(city):
    query = 'mutation { grantConsent(recipient: "parking-app", purpose: "booking", categories: ["user.contact"]) { consent { id } } }'
    anonymous = await city.ask(query)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    self_serving = await city.ask(query, client="parking-app", resident="r3", purpose="booking")
    assert self_serving["errors"][0]["extensions"]["code"] == "FORBIDDEN"  # parking-app may not collect consents
    bad = await city.ask(
        'mutation { grantConsent(recipient: "parking-app", purpose: "statistics", categories: ["user.contact"]) { consent { id } } }',
        resident="r3",
    )
    assert bad["errors"][0]["extensions"]["code"] == "PURPOSE_NOT_ALLOWED"
    unknown = await city.ask(
        'mutation { grantConsent(recipient: "parking-app", purpose: "booking", categories: ["user.soul"]) { consent { id } } }',
        resident="r3",
    )
    assert unknown["errors"][0]["extensions"]["code"] == "UNKNOWN_CATEGORY"
    consent_id = (await city.grant("r3", "parking-app", "booking", ["user.contact"]))["consent"]["id"]
    stranger = await city.ask(
        "mutation($id: ID!) { withdrawConsent(consentId: $id) { id } }", {"id": consent_id}, resident="r1"
    )
    assert stranger["errors"][0]["extensions"]["code"] == "CONSENT_NOT_FOUND"


async def test_disclosures_are_audited_and_residents_read_them(city):
    await city.grant("r3", "parking-app", "booking", ["user.contact"])
    await city.ask('{ resident(id: "r3") { email phone name } }', client="parking-app", purpose="booking")
    await city.ask("{ incidents { reporter { email } } }", client="technician-console")
    await city.ask(QUERY, resident="r3")  # the subject's own reading is not a disclosure
    answer = await city.ask("{ me { disclosures { recipient purpose fields basis requestId } } }", resident="r3")
    disclosures = answer["data"]["me"]["disclosures"]
    assert [(d["recipient"], d["fields"]) for d in disclosures] == [
        ("technician-console", ["Resident.email"]),
        ("parking-app", ["Resident.email", "Resident.phone"]),
    ]
    assert disclosures[0]["basis"] == ["policy:street-issues-public-task"]
    assert disclosures[1]["basis"][0].startswith("consent:")
    assert all(len(d["requestId"]) == 32 for d in disclosures)
    verified = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "verify", "--store", city.store_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stderr
    assert "intact" in verified.stderr


async def test_each_entry_is_hashed_as_documented(city):
    # docs/privacy.md: SHA-256 of the entry's columns as JSON with sorted keys, the previous
    # entry's hash among them; anyone can recompute the chain without Citygate's code
    await city.grant("r1", "parking-app", "booking", ["user.contact"])
    await city.grant("r2", "parking-app", "booking", ["user.contact"])
    await city.ask("{ residents { id email phone } }", client="parking-app", purpose="booking")
    engine = create_async_engine(database_url(city.store_url))
    async with engine.connect() as connection:
        rows = (await connection.execute(sqlalchemy.text("SELECT * FROM audit_log ORDER BY seq"))).mappings().all()
    await engine.dispose()
    assert len(rows) >= 2
    previous = "0" * 64
    for row in rows:
        hashed = ("seq", "at", "request_id", "recipient", "purpose", "subject", "fields", "basis", "prev_hash")
        canonical = orjson.dumps({name: row[name] for name in hashed}, option=orjson.OPT_SORT_KEYS)
        assert row["prev_hash"] == previous and row["hash"] == hashlib.sha256(canonical).hexdigest()
        previous = row["hash"]


async def _tamper(store_url: str, statements: list[str]) -> None:
    engine = create_async_engine(database_url(store_url))
    async with engine.begin() as connection:
        postgres = engine.dialect.name == "postgresql"
        await connection.execute(
            sqlalchemy.text(
                "ALTER TABLE audit_log DISABLE TRIGGER ALL"
                if postgres
                else "DROP TRIGGER IF EXISTS audit_log_no_update"
            )
        )
        if not postgres:
            await connection.execute(sqlalchemy.text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
        for statement in statements:
            await connection.execute(sqlalchemy.text(statement))
    await engine.dispose()


def _verify(store_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "verify", "--store", store_url],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _three_entries(city) -> None:
    for resident in ("r1", "r2", "r3"):
        await city.grant(resident, "parking-app", "booking", ["user.contact"])
    for resident in ("r1", "r2", "r3"):
        await city.ask(f'{{ resident(id: "{resident}") {{ email }} }}', client="parking-app", purpose="booking")
    assert _verify(city.store_url).returncode == 0


async def test_the_audit_log_refuses_updates_and_deletes(city):
    await _three_entries(city)
    engine = create_async_engine(database_url(city.store_url))
    for statement in (
        "UPDATE audit_log SET recipient = 'someone' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 2",
        "DELETE FROM consent_events",
    ):
        try:
            async with engine.begin() as connection:
                await connection.execute(sqlalchemy.text(statement))
            raise AssertionError(f"{statement} went through")
        except sqlalchemy.exc.DBAPIError as error:
            assert "append-only" in str(error)
    await engine.dispose()


async def test_an_edited_entry_is_found(city):
    await _three_entries(city)
    await _tamper(city.store_url, ["UPDATE audit_log SET recipient = 'someone-else' WHERE seq = 2"])
    result = _verify(city.store_url)
    assert result.returncode == 1
    assert "entry 2: its content does not match its hash (edited)" in result.stderr


async def test_a_deleted_entry_is_found(city):
    await _three_entries(city)
    await _tamper(city.store_url, ["DELETE FROM audit_log WHERE seq = 2"])
    result = _verify(city.store_url)
    assert result.returncode == 1 and "entry 3" in result.stderr and "deleted" in result.stderr


async def test_an_inserted_entry_is_found(city):
    await _three_entries(city)
    await _tamper(
        city.store_url,
        [
            "INSERT INTO audit_log (seq, at, request_id, recipient, purpose, subject, fields, basis, prev_hash, hash) "
            "VALUES (4, '2026-11-25T00:00:00+00:00', 'forged', 'parking-app', 'booking', 'r1', '[]', '[]', "
            "(SELECT hash FROM audit_head WHERE id = 1), 'f00d')"
        ],
    )
    result = _verify(city.store_url)
    assert result.returncode == 1
    assert "entry 4: its content does not match its hash" in result.stderr and "chain head" in result.stderr


async def test_a_truncated_log_is_found(city):
    await _three_entries(city)
    await _tamper(city.store_url, ["DELETE FROM audit_log WHERE seq = 3"])
    result = _verify(city.store_url)
    assert result.returncode == 1 and "chain head" in result.stderr
