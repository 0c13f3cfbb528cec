"""The identity stage: who asks, for whom, and why.

A Requester is a client (or the public), the purpose it declares, its roles, and the resident
signed in through it, if any. Credentials:

- `x-api-key: <key>`: a client's API key (the policy holds its SHA-256);
- `Authorization: Bearer <JWT>`: an OAuth2 client-credentials token (its subject is the client)
  or a resident's OIDC token (its subject is the resident, its `azp`/client claim the client),
  checked against the issuer's JWKS: RS256 or ES256 only, the algorithm must match the key,
  `iss`, `aud`, `exp` and `sub` required; `alg: none` and HMAC algorithms are refused;
- `x-citygate-purpose: <purpose>`: one of the client's registered purposes (a client with a
  single purpose may omit it).

No credentials at all: the public requester. Bad credentials are never downgraded to public:
they are refused with a stable code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from .errors import ClientRefusal
from .policy import Client, Issuer, Policy

_ALGORITHMS_BY_KEY = {"RSA": "RS256", "EC": "ES256"}
PURPOSE_HEADER = "x-citygate-purpose"


@dataclass(frozen=True, slots=True)
class Requester:
    client: Client | None
    purpose: str | None
    roles: frozenset[str]
    resident: str | None = None

    @property
    def recipient(self) -> str:
        return self.client.id if self.client is not None else "public"

    @property
    def is_public(self) -> bool:
        return self.client is None


PUBLIC = Requester(None, None, frozenset(), None)


class IdentityError(ClientRefusal):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _unauthenticated(message: str) -> IdentityError:
    return IdentityError("UNAUTHENTICATED", message, 401)


def signing_keys(document: Any) -> dict[str | None, jwt.PyJWK]:
    """The verification keys of a JWKS document, by key id: RSA and EC keys for signatures only
    (symmetric and encryption keys are never used to verify), parsed by PyJWT's `PyJWKSet`, which
    leaves out a key it cannot use. Anything that is not a JWKS holds no key."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return {}
    usable = [
        e
        for e in entries
        if isinstance(e, dict) and e.get("kty") in _ALGORITHMS_BY_KEY and e.get("use", "sig") == "sig"
    ]
    try:
        key_set = jwt.PyJWKSet(usable)
    except jwt.PyJWKSetError:  # not one usable key
        return {}
    return {key.key_id: key for key in key_set.keys}


class IssuerKeys:
    """One issuer's verification keys, from its JWKS file or URL.

    Read again when a token names a key id that is not held, at most once per `refresh_interval`
    (a flood of made-up key ids costs one read), and kept until then: a key rotated in is taken
    on its first token, one rotated out stays until the next read. A read that fails (unreachable,
    over `fetch_timeout`, an HTTP error, not JSON) keeps the keys held; the token is refused
    (UNAUTHENTICATED), never served as the public's.

    PyJWT's `PyJWKClient` is not used: it reads with urllib, synchronously, which on the event
    loop would hold every request for the read, and in a thread costs each token a thread hop
    while a hung endpoint holds a worker thread per waiting request behind its lock; it reads no
    file, keeps no key without a key id (a token without `kid` is verified here when the JWKS holds
    one key), and honours the environment's proxies (the gateway's control client does not). The
    read is this client's (async httpx); the parsing is PyJWT's (`PyJWKSet`, `signing_keys`)."""

    refresh_interval = 30.0  # seconds between two reads on unknown key ids
    fetch_timeout = 5.0  # seconds for one read of a JWKS URL

    def __init__(self, issuer: Issuer, http_client: httpx.AsyncClient | None) -> None:
        self.issuer = issuer
        self.http_client = http_client
        self.keys: dict[str | None, jwt.PyJWK] = {}
        self.read_at = -float("inf")

    async def _read(self) -> dict[str | None, jwt.PyJWK] | None:
        """The issuer's keys now; None when they cannot be read."""
        try:
            if self.issuer.jwks_file:
                document = json.loads(Path(self.issuer.jwks_file).read_text(encoding="utf-8"))
            elif self.issuer.jwks_url and self.http_client is not None:
                response = await self.http_client.get(self.issuer.jwks_url, timeout=self.fetch_timeout)
                if response.status_code != 200:
                    return None
                document = response.json()
            else:
                return None
        except (OSError, ValueError, httpx.HTTPError, httpx.InvalidURL):
            return None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            return None  # not a JWKS (an error page's JSON, say): the keys held stay
        return signing_keys(document)

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        now = time.monotonic()
        if kid not in self.keys and now - self.read_at > self.refresh_interval:
            self.read_at = now
            keys = await self._read()
            if keys is None:
                return None
            self.keys = keys
        if kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))
        return self.keys.get(kid)


class Authenticator:
    def __init__(self, policy: Policy, http_client: httpx.AsyncClient | None = None) -> None:
        self.policy = policy
        self._keys = {issuer.issuer: IssuerKeys(issuer, http_client) for issuer in policy.issuers}

    async def identify(self, headers: Mapping[str, str]) -> Requester:
        api_key = headers.get("x-api-key")
        authorization = headers.get("authorization")
        if not api_key and not authorization:
            return PUBLIC
        client: Client | None = None
        if api_key:
            client = self.policy.client_for_key(api_key)
            if client is None:
                raise _unauthenticated("the API key is not a registered client's")
        resident = None
        roles: set[str] = set()
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _unauthenticated("use 'Authorization: Bearer <token>'")
            claims, issuer = await self._verify(token.strip())
            token_client_id = claims.get(issuer.client_claim) or claims.get("client_id")
            token_client = self.policy.clients.get(str(token_client_id)) if token_client_id else None
            if token_client is None:
                raise _unauthenticated("the token was issued to no registered client")
            if client is not None and client.id != token_client.id:
                raise _unauthenticated("the token was issued to another client than the API key's")
            client = token_client
            if str(claims["sub"]) != token_client.id:
                resident = str(claims["sub"])
            if issuer.roles_claim and isinstance(claims.get(issuer.roles_claim), list):
                roles |= {str(r) for r in claims[issuer.roles_claim]}
        assert client is not None
        purpose = headers.get(PURPOSE_HEADER)
        if purpose is None:
            if len(client.purposes) != 1:
                raise IdentityError(
                    "PURPOSE_REQUIRED",
                    f"declare one of {', '.join(client.purposes) or '(none)'} in {PURPOSE_HEADER}",
                    400,
                )
            purpose = client.purposes[0]
        elif purpose not in client.purposes:
            raise IdentityError(
                "PURPOSE_NOT_ALLOWED", f"{client.id} is not registered for the purpose {purpose!r}", 403
            )
        return Requester(client, purpose, frozenset(client.roles) | roles, resident)

    async def _verify(self, token: str) -> tuple[dict, Issuer]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _unauthenticated("the token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in _ALGORITHMS_BY_KEY.values():
            raise _unauthenticated(f"tokens signed with {algorithm!r} are refused: RS256 or ES256 only")
        issuer_name = unverified.get("iss")
        keys = self._keys.get(str(issuer_name))
        if keys is None:
            raise _unauthenticated("the token's issuer is not trusted")
        key = await keys.key(header.get("kid"))
        if key is None:
            raise _unauthenticated("the token's key is not in the issuer's JWKS")
        if _ALGORITHMS_BY_KEY.get(key.key_type) != algorithm:
            raise _unauthenticated("the token's algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=keys.issuer.audience,
                issuer=keys.issuer.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
                leeway=30,
            )
        except jwt.ExpiredSignatureError:
            raise _unauthenticated("the token has expired") from None
        except jwt.PyJWTError as error:
            raise _unauthenticated(f"the token is invalid: {error}") from None
        return claims, keys.issuer
