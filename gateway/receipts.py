"""The gateway's public keys and the signed head of its audit chain, over HTTP.

`GET /.well-known/jwks.json`: the keys that verify consent receipts and audit heads (JWKS).
`GET /audit/head`: the audit chain's head (seq, hash, time of its newest entry) and the same as
a JWS. Both are public: whoever keeps a head can later check that the log still extends it.
Never signs a head that is not the newest entry's (a truncated or edited chain): that answers
409, as `citygate audit head` exits 1. Failures are JSON errors with a stable `extensions.code`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .consent import RecordSigner, signed_audit_head
from .store import Store

logger = logging.getLogger("citygate.receipts")

JWKS_PATH = "/.well-known/jwks.json"
AUDIT_HEAD_PATH = "/audit/head"
# an append commits its entries and the head together; a read of one then the other may fall
# between two appends: read again, this many times at most
_HEAD_READS = 5


def _error(message: str, code: str, status: int) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]}, status, headers={"cache-control": "no-store"}
    )


def verifiable_record_routes(signer: Callable[[], RecordSigner | None], store: Store) -> list[Route]:
    """`signer()`: the serving runtime's signer (None before the gateway has started)."""

    async def jwks(_request: Request) -> JSONResponse:
        current = signer()
        if current is None:
            return _error("the gateway is starting", "SERVICE_UNAVAILABLE", 503)
        try:
            keys = await current.jwks()
        except Exception as error:
            logger.error("the signing key cannot be read (%s)", type(error).__name__)
            return _error("the signing key cannot be read now", "SIGNING_KEY_UNAVAILABLE", 503)
        return JSONResponse(keys, headers={"cache-control": "public, max-age=300"})

    async def audit_head(_request: Request) -> JSONResponse:
        current = signer()
        if current is None:
            return _error("the gateway is starting", "SERVICE_UNAVAILABLE", 503)
        try:
            for _ in range(_HEAD_READS):
                seq, head = await store.audit_chain_head()
                newest_rows = await store.audit_entries(limit=1, newest_first=True)
                newest = newest_rows[0] if newest_rows else None
                if newest is None or newest["seq"] <= seq:
                    break  # else entries were appended between the two reads
            else:
                return _error(
                    "the audit log is being written faster than it can be read: ask again", "AUDIT_HEAD_BUSY", 503
                )
        except Exception as error:
            logger.error("the audit chain head cannot be read (%s)", type(error).__name__)
            return _error("the audit log cannot be read now", "STORE_UNAVAILABLE", 503)
        if (newest is None and seq != 0) or (newest is not None and (newest["seq"], newest["hash"]) != (seq, head)):
            logger.error("the audit chain head (seq %s) is not the newest entry's: not signed", seq)
            return _error(
                "the audit chain head is not the newest entry's: the operator must run `citygate audit verify`",
                "AUDIT_CHAIN_BROKEN",
                409,
            )
        at = newest["at"] if newest is not None else None
        try:
            jws = await signed_audit_head(current, seq, head, at)
        except Exception as error:
            logger.error("the audit head could not be signed (%s)", type(error).__name__)
            return _error("the signing key cannot be read now", "SIGNING_KEY_UNAVAILABLE", 503)
        return JSONResponse(
            {"seq": seq, "hash": head, "at": at, "jws": jws, "jwks": JWKS_PATH}, headers={"cache-control": "no-store"}
        )

    return [Route(JWKS_PATH, jwks, methods=["GET"]), Route(AUDIT_HEAD_PATH, audit_head, methods=["GET"])]
