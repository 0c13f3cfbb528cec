"""The partner SDK's half of erasure requests: how a partner checks that a request to erase a
resident really comes from the city's gateway (docs/partners.md, "Erasure requests").

Every delivery carries, in the `Citygate-Erasure-Token` header, a JWT (ES256) signed with the
gateway's signing key, whose public keys the gateway publishes at `/.well-known/jwks.json`:
header `typ: citygate-erasure-request+jwt` and `kid`; claims `iss: citygate`, `aud` (the
connector's name: a token for one connector is refused by every other), `sub` (the resident's id,
as in the body), `requestId` (as in the body), `iat`, `exp` (5 minutes later) and `jti`.

    verifier = ErasureRequestVerifier("parking", "https://city.example/.well-known/jwks.json")
    request = await verifier.verify(request.headers, await request.body())
    # ErasureRequestRefused: answer 401 (final for the gateway); GatewayKeysUnavailable: 503 (asked again)

This module never accepts a request on its body's word: only a token the gateway signed for this
audience, whose subject and request id are the body's. It depends on no other part of Citygate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt
import orjson

ERASURE_TOKEN_HEADER = "citygate-erasure-token"
ERASURE_TOKEN_TYPE = "citygate-erasure-request+jwt"
ERASURE_TOKEN_ISSUER = "citygate"
ERASURE_TOKEN_LIFETIME = 300  # seconds: a token is good for one attempt, signed again for the next
ALGORITHM = "ES256"


class ErasureRequestRefused(Exception):
    """Not an erasure request of the gateway's for this connector: answer 401, erase nothing."""


class GatewayKeysUnavailable(Exception):
    """The gateway's JWKS cannot be read now: answer 503 (the gateway asks again later)."""


class ErasureRequestVerifier:
    """Checks erasure deliveries for one connector (`audience`) against the gateway's JWKS, fetched
    from `jwks_url` (a string, or a callable read at each fetch): again for a `kid` it does not know
    (the gateway rotated its key), at most once per `refetch_after` seconds, and whenever the keys
    it holds are older than `max_age` seconds, so a key the gateway stopped publishing (rotated out,
    perhaps because it leaked) stops being trusted within that time.

    A `kid` still unknown after a fetch raises GatewayKeysUnavailable (answer 503: the gateway sends
    it again later), not a refusal: a replica may sign with a key rotated in a moment ago while the
    JWKS came from another replica that has not read it yet. A token is accepted once: its `jti` is
    remembered until it expires, so a captured request cannot be replayed."""

    def __init__(
        self,
        audience: str,
        jwks_url: str | Callable[[], str],
        *,
        leeway: float = 30.0,
        refetch_after: float = 5.0,
        max_age: float = 600.0,
    ) -> None:
        self.audience = audience
        self.jwks_url = jwks_url
        self.leeway = leeway
        self.refetch_after = refetch_after
        self.max_age = max_age
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._seen: dict[str, float] = {}  # jti -> when it expires (epoch seconds, leeway included)

    async def verify(self, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        """`{"requestId": ..., "residentId": ...}` of a request the gateway signed for this audience."""
        token = headers.get(ERASURE_TOKEN_HEADER)
        if not token:
            raise ErasureRequestRefused("no erasure token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise ErasureRequestRefused("the erasure token is not a JWT") from None
        if header.get("typ") != ERASURE_TOKEN_TYPE or header.get("alg") != ALGORITHM:
            raise ErasureRequestRefused("not an erasure token")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=ERASURE_TOKEN_ISSUER,
                leeway=self.leeway,
                options={"require": ["iss", "aud", "sub", "exp", "iat", "jti", "requestId"]},
            )
        except jwt.PyJWTError as error:
            raise ErasureRequestRefused(f"the erasure token does not verify ({type(error).__name__})") from None
        try:
            sent = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ErasureRequestRefused("the body is not JSON") from None
        if (
            not isinstance(sent, dict)
            or sent.get("residentId") != claims["sub"]
            or sent.get("requestId") != claims.get("requestId")
        ):
            raise ErasureRequestRefused("the body is not the request the token was signed for")
        now = time.time()
        self._seen = {jti: until for jti, until in self._seen.items() if until > now}
        jti = str(claims["jti"])
        if jti in self._seen:
            raise ErasureRequestRefused("this erasure token was used before")
        self._seen[jti] = float(claims["exp"]) + self.leeway
        return {"requestId": claims["requestId"], "residentId": claims["sub"]}

    async def subject_or_refusal(self, request: Any) -> Any:
        """For a Starlette request (anything with `headers` and `await body()`): the resident an
        erasure request names, once verified as the gateway's own for this connector; else the
        Starlette JSONResponse refusing it (401: final for the gateway; 503: sent again later)."""
        from starlette.responses import JSONResponse

        try:
            return (await self.verify(request.headers, await request.body()))["residentId"]
        except ErasureRequestRefused:
            return JSONResponse(
                {"error": "not an erasure request the city's gateway signed for this connector"}, status_code=401
            )
        except GatewayKeysUnavailable:
            return JSONResponse({"error": "the city's keys cannot be read now"}, status_code=503)

    async def _key(self, kid: str) -> Any:
        age = time.monotonic() - self._fetched_at
        if age >= self.max_age or (kid not in self._keys and age >= self.refetch_after):
            self._fetched_at = time.monotonic()
            url = self.jwks_url() if callable(self.jwks_url) else self.jwks_url
            try:
                async with httpx.AsyncClient(timeout=5, follow_redirects=False) as client:
                    response = await client.get(url)
                    response.raise_for_status()
                    published = jwt.PyJWKSet.from_dict(response.json())
            except (httpx.HTTPError, ValueError, jwt.PyJWTError):
                raise GatewayKeysUnavailable("the gateway's keys cannot be read now") from None
            self._keys = {k.key_id: k.key for k in published.keys if k.key_id}
        if kid not in self._keys:
            # perhaps a key rotated in on one replica before another publishes it: asked again later
            raise GatewayKeysUnavailable("signed with a key the gateway does not publish (yet)")
        return self._keys[kid]
