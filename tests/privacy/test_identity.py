"""Identity: API keys, JWTs against the JWKS, purposes, and every way a token can lie."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.privacy.conftest import ISSUER

ME = "{ me { residentId } }"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_valid_rs256_and_es256_resident_tokens(sqlite_city):
    for alg in ("RS256", "ES256"):
        answer = await sqlite_city.ask(ME, token=sqlite_city.signer.token("r2", alg=alg))
        assert answer["data"] == {"me": {"residentId": "r2"}}, alg


async def test_client_credentials_tokens_act_for_no_resident(sqlite_city):
    token = sqlite_city.signer.token("stats-portal", azp="stats-portal")
    answer = await sqlite_city.ask('{ me { residentId } resident(id: "r1") { email } }', token=token)
    assert answer["data"] == {"me": None, "resident": {"email": "a***@example.org"}}


def _hs256(claims: dict, secret: bytes) -> str:
    """Algorithm confusion, forged by hand (PyJWT itself refuses to sign it)."""
    signing_input = _b64({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}) + "." + _b64(claims)
    digest = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _attacks(signer) -> dict[str, str]:
    now = int(time.time())
    valid = {"iss": ISSUER, "aud": "citygate", "sub": "r1", "azp": "city-app", "exp": now + 600}
    public_pem = signer.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = signer.token("r1")
    header, payload, signature = good.split(".")
    forged_payload = _b64({**valid, "sub": "r2"})
    return {
        "alg none": _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(valid) + ".",
        "alg none, kid": _b64({"alg": "none", "kid": "rsa-1"}) + "." + _b64(valid) + ".",
        "HS256 with the public key as secret": _hs256(valid, public_pem),
        "RS256 key announced as ES256": _b64({"alg": "ES256", "kid": "rsa-1"}) + "." + payload + "." + signature,
        "expired": signer.token("r1", exp=now - 120),
        "wrong audience": signer.token("r1", aud="someone-else"),
        "wrong issuer": signer.token("r1", iss="https://evil.example"),
        "no exp": signer.token("r1", exp=None),
        "unknown kid": jwt.encode(valid, signer.rsa, algorithm="RS256", headers={"kid": "rsa-9"}),
        "another key, known kid": jwt.encode(valid, stranger, algorithm="RS256", headers={"kid": "rsa-1"}),
        "payload changed after signing": header + "." + forged_payload + "." + signature,
        "unknown client": signer.token("r1", azp="nobody-app"),
        "not a JWT": "definitely.not.a-jwt",
    }


@pytest.mark.parametrize(
    "attack",
    [
        "alg none",
        "alg none, kid",
        "HS256 with the public key as secret",
        "RS256 key announced as ES256",
        "expired",
        "wrong audience",
        "wrong issuer",
        "no exp",
        "unknown kid",
        "another key, known kid",
        "payload changed after signing",
        "unknown client",
        "not a JWT",
    ],
)
async def test_token_attacks_are_refused(sqlite_city, attack):
    token = _attacks(sqlite_city.signer)[attack]
    answer = await sqlite_city.ask('{ resident(id: "r1") { email } }', token=token)
    assert answer["_status"] == 401, answer
    assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" not in answer  # never downgraded to the public


async def test_api_keys_and_purposes(sqlite_city):
    bad_key = await sqlite_city.client.post("/graphql", json={"query": ME}, headers={"x-api-key": "ck_guess"})
    assert bad_key.status_code == 401 and bad_key.headers["www-authenticate"].startswith("Bearer")
    needs_purpose = await sqlite_city.ask(ME, client="parking-app")
    assert needs_purpose["_status"] == 400 and needs_purpose["errors"][0]["extensions"]["code"] == "PURPOSE_REQUIRED"
    wrong_purpose = await sqlite_city.ask(ME, client="parking-app", purpose="street-maintenance")
    assert wrong_purpose["_status"] == 403 and wrong_purpose["errors"][0]["extensions"]["code"] == "PURPOSE_NOT_ALLOWED"
    single = await sqlite_city.ask('{ resident(id: "r1") { email } }', client="technician-console")
    assert single["_status"] == 200  # one purpose: declaring it is optional
    # an API key and a resident token issued to another client do not mix
    mixed = await sqlite_city.client.post(
        "/graphql",
        json={"query": ME},
        headers={
            "x-api-key": "ck_stats-portal-test-key",
            "authorization": f"Bearer {sqlite_city.signer.token('r1', azp='city-app')}",
        },
    )
    assert mixed.status_code == 401
