"""Signing-key rotation: `citygate keys rotate` makes a new key current; the JWKS publishes it and
the previous keys within their verification window; receipts signed before the rotation still
verify with a stock JOSE library (PyJWT, fetching the JWKS over HTTP); new receipts name the new
kid. On a real SQLite file (the CLI against a gateway's store) and on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import jwt
import pytest
from typer.testing import CliRunner

from gateway.cli import app as citygate
from gateway.consent import RecordSigner, SigningKeyError, SigningKeyStore
from gateway.consent._receipts import RECEIPT_TYPE
from gateway.store import Store
from tests.postgres import temporary_database
from tests.privacy import world
from tests.privacy.conftest import City, connectors_folder, policy_document

GRANT = (
    "mutation($r: String!, $p: String!, $c: [String!]!) { grantConsent(recipient: $r, purpose: $p, categories: $c, expiresInDays: 30) "
    "{ consent { id } signedReceipt } }"
)


def _start(store_url: str, tmp_path, privacy_world, signer) -> City:
    folder = connectors_folder(tmp_path / f"connectors-{uuid.uuid4().hex[:6]}", privacy_world)
    return City(store_url, folder, policy_document(signer.jwks_file), signer)


async def _receipt(city: City, resident: str) -> str:
    answer = await city.ask(GRANT, {"r": "parking-app", "p": "booking", "c": ["user.contact"]}, resident=resident)
    assert "errors" not in answer, answer
    return answer["data"]["grantConsent"]["signedReceipt"]


async def _verified_over_http(city: City, token: str) -> tuple[str, dict]:
    """(kid, claims) of a receipt, checked by PyJWT against the JWKS it fetches from the gateway."""

    def verify() -> tuple[str, dict]:
        keys = jwt.PyJWKClient(f"{city.server.base_url}/.well-known/jwks.json", cache_jwk_set=False)
        key = keys.get_signing_key_from_jwt(token)
        return jwt.get_unverified_header(token)["kid"], jwt.decode(token, key.key, algorithms=["ES256"])

    return await asyncio.to_thread(verify)  # PyJWKClient blocks: not in the loop serving the test


async def test_receipts_signed_before_a_rotation_still_verify_and_new_ones_use_the_new_kid(
    tmp_path, privacy_world, signer, monkeypatch
):
    monkeypatch.delenv("CITYGATE_SIGNING_KEY", raising=False)
    world.reset()
    database = tmp_path / "city.db"
    store_url = f"sqlite:///{database}"
    running = _start(store_url, tmp_path, privacy_world, signer)
    try:
        before = await _receipt(running, "r3")
        old_kid, _ = await _verified_over_http(running, before)
        assert [k["kid"] for k in (await running.client.get("/.well-known/jwks.json")).json()["keys"]] == [old_kid]
    finally:
        await running.close()

    rotated = await asyncio.to_thread(CliRunner().invoke, citygate, ["keys", "rotate", "--store", store_url])
    assert rotated.exit_code == 0, rotated.output
    new_kid = rotated.output.strip().splitlines()[-1]
    assert new_kid != old_kid and "BEGIN" not in rotated.output
    listed = await asyncio.to_thread(CliRunner().invoke, citygate, ["keys", "list", "--store", store_url])
    assert listed.exit_code == 0, listed.output
    states = dict(line.split("\t")[:2] for line in listed.output.strip().splitlines())
    assert states == {new_kid: "current", old_kid: "published"} and "BEGIN" not in listed.output

    running = _start(store_url, tmp_path, privacy_world, signer)
    try:
        published = [k["kid"] for k in (await running.client.get("/.well-known/jwks.json")).json()["keys"]]
        assert published == [new_kid, old_kid]  # the current key first, then the previous one
        kid, claims = await _verified_over_http(running, before)  # signed before the rotation: still verifies
        assert kid == old_kid and claims["sub"] == "r3"
        after = await _receipt(running, "r3")
        assert jwt.get_unverified_header(after) == {"alg": "ES256", "kid": new_kid, "typ": RECEIPT_TYPE}
        kid, claims = await _verified_over_http(running, after)
        assert kid == new_kid and claims["iso27560"]["dpv:hasDataSubject"]["dct:identifier"] == "r3"
    finally:
        await running.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_running_signer_takes_a_rotation_and_drops_a_key_past_its_window(backend, tmp_path, monkeypatch):
    monkeypatch.delenv("CITYGATE_SIGNING_KEY", raising=False)
    if backend == "sqlite":
        await _rotations(f"sqlite:///{tmp_path / 'keys.db'}")
    else:
        async with temporary_database("citygate_rights") as url:
            await _rotations(url)


async def _rotations(url: str) -> None:
    store = Store(url)
    await store.create()
    try:
        # a store from before rotation: its key in the settings, taken over as the current key
        first = await RecordSigner(store, configured="").key()
        signer = RecordSigner(store, configured="", refresh=0)  # reads the store's keys at each use
        assert (await signer.key()).kid == first.kid
        token = await signer.sign({"sub": "r1"}, RECEIPT_TYPE)

        second, retired = await SigningKeyStore(store).rotate(verification_days=30)
        assert retired == first.kid and (await signer.key()).kid == second
        published = jwt.PyJWKSet.from_dict(await signer.jwks())
        assert [k.key_id for k in published.keys] == [second, first.kid]
        assert jwt.decode(token, published[first.kid].key, algorithms=["ES256"])["sub"] == "r1"

        # a rotation with no verification window: the key it replaces is published no more
        third, retired = await SigningKeyStore(store).rotate(verification_days=0)
        assert retired == second
        assert [k["kid"] for k in (await signer.jwks())["keys"]] == [third, first.kid]
        listed = {key.kid: key for key in await SigningKeyStore(store).listed()}
        assert listed[third].retired_at is None and listed[second].verify_until <= listed[second].retired_at

        with pytest.raises(SigningKeyError):
            await SigningKeyStore(store).rotate(verification_days=-1)
    finally:
        await store.close()


def test_the_cli_leaves_an_operator_given_key_to_the_operator(tmp_path, monkeypatch):
    monkeypatch.setenv("CITYGATE_SIGNING_KEY", str(tmp_path / "key.pem"))
    refused = CliRunner().invoke(citygate, ["keys", "rotate", "--store", f"sqlite:///{tmp_path / 'none.db'}"])
    assert refused.exit_code == 2 and "CITYGATE_SIGNING_KEY" in refused.output
    monkeypatch.delenv("CITYGATE_SIGNING_KEY")
    missing = CliRunner().invoke(citygate, ["keys", "list", "--store", f"sqlite:///{tmp_path / 'none.db'}"])
    assert missing.exit_code == 2 and not (tmp_path / "none.db").exists()  # never creates an empty store
