"""Verifiable records: signed consent receipts (ISO/IEC TS 27560 in DPV JSON-LD, beside Kantara),
the JWKS that verifies them and the signed audit chain head, checked by a stock JOSE library
(joserfc) against the keys fetched over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from joserfc import jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import ECKey, KeySet

from gateway.consent import AuditLog
from gateway.consent._receipts import new_signing_key_pem
from gateway.store import Store
from tests.postgres import fresh_database
from tests.privacy import world
from tests.privacy.conftest import City, connectors_folder, policy_document
from tests.privacy.test_ledger_and_audit import _tamper
from tests.workers import worker_database

# this helper's own database: other suites reset theirs at the same time
POSTGRES_URL = f"postgresql://postgres@127.0.0.1:5432/{worker_database('citygate_t')}"
GRANT = (
    "mutation($r: String!, $p: String!, $c: [String!]!, $e: Int) { grantConsent(recipient: $r, purpose: $p, categories: $c, expiresInDays: $e) "
    "{ consent { id } receipt record signedReceipt } }"
)


async def _reset_own_postgres() -> None:
    await fresh_database(worker_database("citygate_t"))


def _start(store_url: str, tmp_path, privacy_world, signer) -> City:
    folder = connectors_folder(tmp_path / f"connectors-{uuid.uuid4().hex[:6]}", privacy_world)
    running = City(store_url, folder, policy_document(signer.jwks_file), signer)
    running.store_url = store_url  # type: ignore[attr-defined]
    return running


@pytest.fixture(params=["sqlite", "postgresql"])
async def city(request, tmp_path, privacy_world, signer):
    world.reset()
    if request.param == "sqlite":
        store_url = f"sqlite:///{tmp_path / 'city.db'}"
    else:
        await _reset_own_postgres()
        store_url = POSTGRES_URL
    running = _start(store_url, tmp_path, privacy_world, signer)
    yield running
    await running.close()


async def _published_keys(city: City) -> KeySet:
    response = await city.client.get("/.well-known/jwks.json")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    return KeySet.import_key_set(response.json())


def _verified(token: str, keys: KeySet) -> tuple[dict, dict]:
    """(header, payload) of a compact JWS verified by joserfc, ES256 only."""
    signature = jws.deserialize_compact(token, keys, algorithms=["ES256"])
    return signature.headers(), json.loads(signature.payload)


async def _grant(city: City, resident: str, categories: list[str]) -> dict:
    answer = await city.ask(GRANT, {"r": "parking-app", "p": "booking", "c": categories, "e": 30}, resident=resident)
    assert "errors" not in answer, answer
    return answer["data"]["grantConsent"]


async def test_a_receipt_verifies_with_a_stock_jose_library_against_the_published_jwks(city):
    granted = await _grant(city, "r3", ["user.contact.email", "user.name"])
    keys = await _published_keys(city)
    header, payload = _verified(granted["signedReceipt"], keys)

    (published,) = keys.keys
    assert header["alg"] == "ES256" and header["kid"] == published.kid == published.thumbprint()  # RFC 7638
    record = payload["iso27560"]
    assert record == granted["record"]  # what the resident reads is what is signed
    assert record["@context"]["dpv"] == "https://w3id.org/dpv#" and record["@type"] == "dpv:ConsentRecord"
    assert record["dct:identifier"] == granted["consent"]["id"] == payload["jti"]
    assert record["dpv:hasDataSubject"]["dct:identifier"] == "r3" == payload["sub"]
    assert record["dpv:hasRecipient"]["dct:identifier"] == "parking-app"
    assert record["dpv:hasPurpose"]["dct:identifier"] == "booking"
    assert [d["dct:identifier"] for d in record["dpv:hasPersonalData"]] == ["user.contact.email", "user.name"]
    assert record["dpv:hasConsentStatus"] == {"@id": "dpv:ConsentGiven"}
    assert record["dpv:hasLegalBasis"] == {"@id": "eu-gdpr:A6-1-a"}
    assert record["dpv:isIndicatedAtTime"] == record["dct:created"] and "dpv:hasExpiryTime" in record
    assert payload["kantara"] == granted["receipt"]  # the Kantara fields, as before, inside the same signature
    assert payload["kantara"]["consentReceiptID"] == granted["consent"]["id"]


async def test_a_receipt_altered_after_signing_fails_verification(city):
    granted = await _grant(city, "r3", ["user.contact"])
    keys = await _published_keys(city)
    header_part, _, signature_part = granted["signedReceipt"].split(".")
    _, payload = _verified(granted["signedReceipt"], keys)
    payload["iso27560"]["dpv:hasRecipient"]["dct:identifier"] = "someone-else"
    forged_payload = jws.serialize_compact({"alg": "ES256"}, json.dumps(payload), ECKey.generate_key("P-256")).split(
        "."
    )[1]
    with pytest.raises(BadSignatureError):
        jws.deserialize_compact(f"{header_part}.{forged_payload}.{signature_part}", keys, algorithms=["ES256"])
    # signed by another key under the gateway's kid: refused too
    impostor = jws.serialize_compact(
        {"alg": "ES256", "kid": keys.keys[0].kid}, json.dumps(payload), ECKey.generate_key("P-256")
    )
    with pytest.raises(BadSignatureError):
        jws.deserialize_compact(impostor, keys, algorithms=["ES256"])


async def test_a_withdrawn_consent_reads_and_signs_as_withdrawn(city):
    consent_id = (await _grant(city, "r3", ["user.contact"]))["consent"]["id"]
    await city.withdraw("r3", consent_id)
    answer = await city.ask("{ me { consents { id record signedReceipt } } }", resident="r3")
    assert "errors" not in answer, answer
    (consent,) = answer["data"]["me"]["consents"]
    _, payload = _verified(consent["signedReceipt"], await _published_keys(city))
    record = payload["iso27560"]
    assert record["dpv:hasConsentStatus"] == {"@id": "dpv:ConsentWithdrawn"}
    assert record["dpv:hasWithdrawalTime"] == record["dct:modified"] and record["dct:identifier"] == consent_id
    assert consent["record"]["dpv:hasConsentStatus"] == {"@id": "dpv:ConsentWithdrawn"}
    # another resident reads none of r3's receipts
    other = await city.ask("{ me { consents { id signedReceipt } } }", resident="r1")
    assert other["data"]["me"]["consents"] == []


async def test_the_signed_audit_head_is_the_chains_head(city):
    empty = (await city.client.get("/audit/head")).json()
    assert empty["seq"] == 0 and empty["at"] is None
    for resident in ("r1", "r3"):
        await city.grant(resident, "parking-app", "booking", ["user.contact"])
        await city.ask(f'{{ resident(id: "{resident}") {{ email }} }}', client="parking-app", purpose="booking")
    response = await city.client.get("/audit/head")
    assert response.status_code == 200, response.text
    head = response.json()
    header, payload = _verified(head["jws"], await _published_keys(city))
    assert header["typ"] == "citygate-audit-head+jwt"
    store = Store(city.store_url)
    try:
        rows = await store.audit_entries()
        verification = await AuditLog(store).verify()
    finally:
        await store.close()
    assert verification.intact and len(rows) == 2
    assert (
        (payload["seq"], payload["hash"], payload["at"])
        == (rows[-1]["seq"], rows[-1]["hash"], rows[-1]["at"])
        == (head["seq"], head["hash"], head["at"])
    )


async def test_a_truncated_chain_gets_no_signed_head(city):
    for resident in ("r1", "r2"):
        await city.grant(resident, "parking-app", "booking", ["user.contact"])
        await city.ask(f'{{ resident(id: "{resident}") {{ email }} }}', client="parking-app", purpose="booking")
    await _tamper(city.store_url, ["DELETE FROM audit_log WHERE seq = 2"])
    response = await city.client.get("/audit/head")
    assert response.status_code == 409
    assert response.json()["errors"][0]["extensions"]["code"] == "AUDIT_CHAIN_BROKEN"
    assert "jws" not in response.json()


async def test_the_key_outlives_a_restart_and_the_operator_may_give_it(tmp_path, privacy_world, signer, monkeypatch):
    store_url = f"sqlite:///{tmp_path / 'city.db'}"
    kids = []
    for _ in range(2):
        running = _start(store_url, tmp_path, privacy_world, signer)
        try:
            kids.append((await running.client.get("/.well-known/jwks.json")).json()["keys"][0]["kid"])
            if len(kids) == 1:
                granted = await _grant(running, "r3", ["user.contact"])
            else:  # a receipt signed before the restart still verifies against the keys published after it
                _verified(granted["signedReceipt"], await _published_keys(running))
        finally:
            await running.close()
    assert kids[0] == kids[1]

    operator_key = ECKey.import_key(new_signing_key_pem())
    key_file = tmp_path / "signing-key.pem"
    key_file.write_text(new_signing_key_pem())
    for given, expected in (
        (operator_key.as_pem(private=True).decode(), operator_key.thumbprint()),
        (str(key_file), ECKey.import_key(key_file.read_text()).thumbprint()),
    ):
        monkeypatch.setenv("CITYGATE_SIGNING_KEY", given)
        running = _start(f"sqlite:///{tmp_path / f'other-{uuid.uuid4().hex[:6]}.db'}", tmp_path, privacy_world, signer)
        try:
            keys = await _published_keys(running)
            assert [k.kid for k in keys.keys] == [expected] and expected != kids[0]
            header, _ = _verified((await _grant(running, "r3", ["user.contact"]))["signedReceipt"], keys)
            assert header["kid"] == expected
        finally:
            await running.close()


async def test_an_unusable_operator_key_fails_closed(tmp_path, privacy_world, signer, monkeypatch):
    monkeypatch.setenv("CITYGATE_SIGNING_KEY", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----")
    running = _start(f"sqlite:///{tmp_path / 'city.db'}", tmp_path, privacy_world, signer)
    try:
        jwks = await running.client.get("/.well-known/jwks.json")
        assert jwks.status_code == 503 and jwks.json()["errors"][0]["extensions"]["code"] == "SIGNING_KEY_UNAVAILABLE"
        head = await running.client.get("/audit/head")
        assert head.status_code == 503 and "jws" not in head.json()
        answer = await running.ask(
            GRANT, {"r": "parking-app", "p": "booking", "c": ["user.contact"], "e": 30}, resident="r3"
        )
        # the consent is recorded, its receipt unsigned: an error with its own code, and nothing of the key
        assert (
            answer["data"]["grantConsent"]["consent"]["id"] and answer["data"]["grantConsent"]["signedReceipt"] is None
        )
        (error,) = answer["errors"]
        assert error["extensions"]["code"] == "RECEIPT_UNAVAILABLE" and "BEGIN" not in json.dumps(answer)
    finally:
        await running.close()


async def test_jwks_over_a_plain_http_client_is_cacheable_json(sqlite_city):
    # the form a third party fetches: plain GET, no credentials
    async with httpx.AsyncClient(timeout=10) as stranger:
        response = await stranger.get(f"{sqlite_city.server.base_url}/.well-known/jwks.json")
    assert response.status_code == 200 and "max-age" in response.headers["cache-control"]
    (key,) = response.json()["keys"]
    assert (
        key["kty"] == "EC" and key["crv"] == "P-256" and key["alg"] == "ES256" and "d" not in key
    )  # never the private half
