"""An issuer's JWKS read over HTTP (`jwks_url`): a real server on loopback that counts its reads,
rotates keys and misbehaves. Whatever it does, a token is verified or refused (UNAUTHENTICATED),
never served as the public's, and made-up key ids cost at most one read per interval."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway.identity import Authenticator, IdentityError, IssuerKeys, signing_keys
from gateway.policy import parse_policy
from tests.privacy.conftest import ISSUER, policy_document
from tests.world.server import AppServer, free_port


def _public_jwk(key: rsa.RSAPrivateKey, kid: str | None) -> dict:
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(use="sig", alg="RS256")
    if kid is not None:
        jwk["kid"] = kid
    return jwk


class JwksServer(AppServer):
    """Serves `document` at /jwks, or misbehaves as `mode` says; counts the reads."""

    def __init__(self) -> None:
        self.document: dict = {"keys": []}
        self.mode = "ok"
        self.reads = 0

        async def jwks(_request: Request) -> Response:
            self.reads += 1
            if self.mode == "error":
                return JSONResponse({"keys": []}, status_code=500)
            if self.mode == "not json":
                return PlainTextResponse("<html>sign-in</html>")
            if self.mode == "a list":
                return JSONResponse([self.document])
            if self.mode == "hang":
                await asyncio.sleep(5)
            return JSONResponse(self.document)

        super().__init__(Starlette(routes=[Route("/jwks", jwks)]))

    @property
    def url(self) -> str:
        return f"{self.base_url}/jwks"


@pytest.fixture(scope="module")
def jwks_server():
    server = JwksServer().start()
    yield server
    server.stop()


@pytest.fixture
def keys(jwks_server):
    """Two RSA keys; the server's JWKS holds the first (kid rsa-1) and is read afresh."""
    first, second = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    jwks_server.document = {"keys": [_public_jwk(first, "rsa-1")]}
    jwks_server.mode = "ok"
    jwks_server.reads = 0
    return first, second


def _authenticator(url: str, client: httpx.AsyncClient) -> Authenticator:
    document = policy_document(Path("unused-jwks.json"))
    document["identity"]["issuers"][0].pop("jwks_file")
    document["identity"]["issuers"][0]["jwks_url"] = url
    return Authenticator(parse_policy(document), client)


def _token(key: rsa.RSAPrivateKey, kid: str | None, sub: str = "r1") -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "citygate", "sub": sub, "azp": "city-app", "iat": now, "exp": now + 600}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid} if kid is not None else None)


async def _identify(authenticator: Authenticator, token: str):
    return await authenticator.identify({"authorization": f"Bearer {token}"})


async def _refused(authenticator: Authenticator, token: str) -> IdentityError:
    with pytest.raises(IdentityError) as refusal:
        await _identify(authenticator, token)
    assert refusal.value.code == "UNAUTHENTICATED" and refusal.value.status == 401
    return refusal.value


async def test_a_token_is_verified_against_the_jwks_url_and_made_up_key_ids_cost_one_read(jwks_server, keys):
    first, _ = keys
    async with httpx.AsyncClient(trust_env=False) as client:
        authenticator = _authenticator(jwks_server.url, client)
        requester = await _identify(authenticator, _token(first, "rsa-1"))
        assert requester.resident == "r1" and requester.client is not None and requester.client.id == "city-app"
        for attempt in range(5):
            refusal = await _refused(authenticator, _token(first, f"made-up-{attempt}"))
            assert "not in the issuer's JWKS" in refusal.message
        assert (await _identify(authenticator, _token(first, "rsa-1", sub="r2"))).resident == "r2"
    assert jwks_server.reads == 1  # the held key served the rest; the made-up ids waited for the interval


async def test_a_key_rotated_in_is_taken_on_its_first_token(jwks_server, keys, monkeypatch):
    first, second = keys
    monkeypatch.setattr(IssuerKeys, "refresh_interval", 0.0)  # every unknown key id may read
    async with httpx.AsyncClient(trust_env=False) as client:
        authenticator = _authenticator(jwks_server.url, client)
        assert (await _identify(authenticator, _token(first, "rsa-1"))).resident == "r1"
        await _refused(authenticator, _token(second, "rsa-2"))  # not published yet
        jwks_server.document = {"keys": [_public_jwk(second, "rsa-2")]}
        assert (await _identify(authenticator, _token(second, "rsa-2"))).resident == "r1"
        # a key signed with the other key under the new id is refused
        await _refused(authenticator, _token(first, "rsa-2"))
    assert jwks_server.reads == 3


@pytest.mark.parametrize("mode", ["error", "not json", "a list", "hang", "unreachable"])
async def test_a_jwks_url_that_fails_refuses_the_token_and_keeps_the_keys_held(jwks_server, keys, mode, monkeypatch):
    first, second = keys
    monkeypatch.setattr(IssuerKeys, "refresh_interval", 0.0)
    monkeypatch.setattr(IssuerKeys, "fetch_timeout", 0.5)
    async with httpx.AsyncClient(trust_env=False) as client:
        authenticator = _authenticator(jwks_server.url, client)
        assert (await _identify(authenticator, _token(first, "rsa-1"))).resident == "r1"
        jwks_server.document = {"keys": [_public_jwk(first, "rsa-1"), _public_jwk(second, "rsa-2")]}
        jwks_server.mode = mode
        if mode == "unreachable":
            authenticator = _authenticator(f"http://127.0.0.1:{free_port()}/jwks", client)
        await _refused(authenticator, _token(second, "rsa-2"))
        if mode != "unreachable":
            # the failed read replaced nothing: the key held before still verifies
            assert (await _identify(authenticator, _token(first, "rsa-1"))).resident == "r1"
        else:
            await _refused(authenticator, _token(first, "rsa-1"))  # never read: nothing verifies


async def test_a_token_without_a_key_id_is_verified_only_when_the_jwks_holds_one_key(jwks_server, keys):
    first, second = keys
    jwks_server.document = {"keys": [_public_jwk(first, None)]}
    async with httpx.AsyncClient(trust_env=False) as client:
        assert (await _identify(_authenticator(jwks_server.url, client), _token(first, None))).resident == "r1"
        jwks_server.document = {"keys": [_public_jwk(first, "rsa-1"), _public_jwk(second, "rsa-2")]}
        await _refused(_authenticator(jwks_server.url, client), _token(first, None))  # which key? none is guessed


def test_only_rsa_and_ec_signature_keys_are_kept():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing = _public_jwk(key, "rsa-1")
    document = {
        "keys": [
            signing,
            {**_public_jwk(key, "enc-1"), "use": "enc"},
            {"kty": "oct", "kid": "hmac-1", "k": "c2VjcmV0", "alg": "HS256"},
            {"kty": "RSA", "kid": "broken", "n": "AQAB"},
            "not a key",
        ]
    }
    assert list(signing_keys(document)) == ["rsa-1"]
    assert signing_keys({"keys": []}) == {} and signing_keys([signing]) == {} and signing_keys({"keys": "x"}) == {}
