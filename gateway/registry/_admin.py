"""The admin HTTP API under /admin: partners manage their connectors, the operator everything.

Authentication: `Authorization: Bearer <key>`. The operator's key is compared in constant time
with its hash; partner keys are looked up by hash in the store on every request (never cached:
a partner revoked or given a new key through any replica is refused by every replica at once). Keys are never stored or logged
in clear. A key accepted marks its request (`AUTHENTICATED`): the edge counts the others per
address and refuses an address that sends too many (gateway/http_limits.py, AdminAuthLimit). Answers are JSON; every refusal has a stable `code`.

A manifest sent here never reads the gateway's environment (`${NAME}` is refused with
`SECRET_REFERENCE_REFUSED`); the upstream secrets a connector's owner sends with it are stored
and never returned: not by the listing, a report or an error.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ..http_limits import AUTHENTICATED
from ..store import Store, key_hash
from ._manifest import NAME
from ._registry import OPERATOR, Actor, Refusal, Registry, Report

logger = logging.getLogger("citygate.admin")


def new_key(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


class Keys:
    def __init__(self, operator_key: str, store: Store | None) -> None:
        self._operator_hash = key_hash(operator_key)
        self.store = store

    async def actor(self, request: Request) -> Actor | None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        key = key.strip()
        if hmac.compare_digest(key_hash(key), self._operator_hash):
            request.scope[AUTHENTICATED] = True
            return OPERATOR
        if self.store is not None:
            partner = await self.store.partner_for_key(key)
            if partner is not None:
                request.scope[AUTHENTICATED] = True
                return Actor(partner)
        return None


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _refusal(code: str, message: str, status: int) -> Response:
    return _json({"ok": False, "errors": [{"code": code, "message": message}]}, status)


# the HTTP status of each kind of refusal (None: nothing refused the change)
_STATUS_OF = {None: 200, Refusal.INVALID: 422, Refusal.FORBIDDEN: 403, Refusal.NOT_FOUND: 404, Refusal.CONFLICT: 409}


def _answer(report: Report) -> Response:
    """A validation's, registration's or removal's report, with the status its refusal (if any) has."""
    return _json(report.to_dict(), _STATUS_OF[report.refusal])


class _Refused(Exception):
    """A refusal raised from inside a handler; the route answers with its response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def _body(request: Request) -> Any:
    try:
        # read while it streams, after the key was checked, never past the admin body limit or its
        # deadline (gateway/http_limits.py): the edge has answered 413 or 408 when this raises
        raw = await request.body()
    except ClientDisconnect:
        raise _Refused(_refusal("PAYLOAD_TOO_LARGE", "the body was refused", 413)) from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _Refused(_refusal("BAD_REQUEST", "the body is not valid JSON", 400)) from None


Handler = Callable[[Request, Actor], Awaitable[Response]]


def admin_routes(registry: Registry, keys: Keys) -> list[Route]:
    def endpoint(handler: Handler, *, operator_only: str | None = None) -> Callable[[Request], Awaitable[Response]]:
        """The handler behind authentication (and the operator check when `operator_only` says what only they do)."""

        async def guarded(request: Request) -> Response:
            try:
                actor = await keys.actor(request)
                if actor is None:
                    return _refusal(
                        "UNAUTHENTICATED", "send a partner or operator key as 'Authorization: Bearer <key>'", 401
                    )
                if operator_only is not None and not actor.is_operator:
                    return _refusal("FORBIDDEN", f"only the operator {operator_only}", 403)
                return await handler(request, actor)
            except _Refused as refused:
                return refused.response
            except Exception:  # a fault of ours: a stable code, the details in the log only
                logger.exception("admin request failed")
                return _refusal("INTERNAL_ERROR", "internal error while handling the request", 500)

        return guarded

    async def list_connectors(request: Request, actor: Actor) -> Response:
        return _json({"connectors": registry.list(actor)})

    async def validate(request: Request, actor: Actor) -> Response:
        data = await _body(request)
        return _answer(await registry.validate(data, actor))

    async def put_connector(request: Request, actor: Actor) -> Response:
        data = await _body(request)
        name = request.path_params["name"]
        if not isinstance(data, dict):
            return _refusal("INVALID_MANIFEST", "the body must be a manifest object", 400)
        if data.setdefault("name", name) != name:
            return _refusal("INVALID_MANIFEST", "the manifest's name differs from the URL's", 400)
        return _answer(await registry.register(data, actor))

    async def delete_connector(request: Request, actor: Actor) -> Response:
        return _answer(await registry.remove(request.path_params["name"], actor))

    async def add_partner(request: Request, actor: Actor) -> Response:
        if keys.store is None:
            return _refusal("NO_STORE", "partners need a store", 409)
        data = await _body(request)
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str) or not NAME.match(name):
            return _refusal("BAD_REQUEST", "name must be lowercase letters, digits and dashes", 400)
        if name in await keys.store.partner_names():
            return _refusal("PARTNER_EXISTS", f"partner {name!r} exists already", 409)
        key = new_key("cgp")
        await keys.store.add_partner(name, key)
        return _json({"name": name, "key": key}, 201)

    def owned(partner: str) -> list[str]:
        """The connectors a partner owns, as this replica serves them."""
        return sorted(name for name, connector in registry.connectors.items() if connector.manifest.owner == partner)

    async def list_partners(request: Request, actor: Actor) -> Response:
        if keys.store is None:
            return _json({"partners": []})
        listing = [
            {"name": name, "created_at": created_at.isoformat(), "connectors": owned(name)}
            for name, created_at in await keys.store.partner_list()
        ]
        return _json({"partners": listing})

    async def revoke_partner(request: Request, actor: Actor) -> Response:
        name = request.path_params["name"]
        if keys.store is None or not await keys.store.revoke_partner(name):
            return _refusal("PARTNER_NOT_FOUND", f"there is no partner {name!r}", 404)
        # its connectors keep serving the city's clients until the operator removes them
        logger.info("partner %s revoked", name)
        return _json({"ok": True, "name": name, "connectors": owned(name)})

    async def rotate_partner_key(request: Request, actor: Actor) -> Response:
        name = request.path_params["name"]
        key = new_key("cgp")
        if keys.store is None or not await keys.store.rotate_partner_key(name, key):
            return _refusal("PARTNER_NOT_FOUND", f"there is no partner {name!r}", 404)
        logger.info("partner %s was given a new key", name)
        return _json({"name": name, "key": key})

    async def supergraph(request: Request, actor: Actor) -> Response:
        return Response(registry.supergraph or "", media_type="text/plain; charset=utf-8")

    return [
        Route("/admin/connectors", endpoint(list_connectors), methods=["GET"]),
        Route("/admin/connectors/validate", endpoint(validate), methods=["POST"]),
        Route("/admin/connectors/{name}", endpoint(put_connector), methods=["PUT"]),
        Route("/admin/connectors/{name}", endpoint(delete_connector), methods=["DELETE"]),
        Route("/admin/partners", endpoint(add_partner, operator_only="creates partners"), methods=["POST"]),
        Route("/admin/partners", endpoint(list_partners, operator_only="lists partners"), methods=["GET"]),
        Route("/admin/partners/{name}", endpoint(revoke_partner, operator_only="revokes partners"), methods=["DELETE"]),
        Route(
            "/admin/partners/{name}/key",
            endpoint(rotate_partner_key, operator_only="gives partners new keys"),
            methods=["POST"],
        ),
        Route("/admin/supergraph", endpoint(supergraph, operator_only="reads the whole supergraph"), methods=["GET"]),
    ]
