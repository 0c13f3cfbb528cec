"""Persisted documents: Apollo's automatic persisted queries (APQ) and trusted documents.

Which text a request runs, before the Engine sees it (gateway/http.py calls `resolve`):

- APQ (Apollo's protocol): `extensions.persistedQuery = {version: 1, sha256Hash}` with no query
  runs the text this process learnt under that hash (or the trusted document it names), else
  answers `PERSISTED_QUERY_NOT_FOUND`
  (message "PersistedQueryNotFound", HTTP 200 and `cache-control: private, no-cache,
  must-revalidate`, as Apollo Router answers: Apollo clients then send the text with the hash).
  With the text, the hash must be its SHA-256 (else `PERSISTED_QUERY_HASH_MISMATCH`, 400); the
  text is learnt only once the operation ran (`learn`), so a document any limit refuses is never
  kept. APQ documents live in this process only, in an LRU bounded in bytes: a client inventing
  hashes evicts older entries, it never grows the process or the store. Each requester (client,
  and resident when signed in) has its own hashes: a hash one learnt is unknown to any other, or
  anyone could test whether someone sent an exact document (ids, a report's text written inline)
  by asking for its hash alone. Another version than 1:
  `PERSISTED_QUERY_VERSION_NOT_SUPPORTED` (400); APQ turned off (`persisted_documents.apq`):
  `PERSISTED_QUERY_NOT_SUPPORTED` (200, as Apollo Router), unless the hash names a trusted
  document.
- Trusted documents: what the operator pushed for a client (`citygate documents push`, Apollo's
  persisted query manifest or a Relay/Hive `{id: text}` map), stored in the store and read
  through a memory LRU and Redis when configured. A request names one by `documentId` (the
  GraphQL-over-HTTP persisted documents style; `sha256:<hex>` also finds it by its text's hash)
  or by APQ's `sha256Hash` (the manifest's id, or its text's hash). Unknown `documentId`:
  `PERSISTED_DOCUMENT_NOT_FOUND` (404, as Apollo Router answers an unknown persisted query id).
- Per requester, the policy's mode (`persisted_documents: allow | safelist`, the public's under
  the policy's `persisted_documents.public`): `allow` runs any document; `safelist` runs only that
  requester's trusted documents, by id, by hash or by a text equal to one of them; anything else
  is `PERSISTED_DOCUMENT_REQUIRED` (403, as Apollo Router refuses a text off its safelist), and an
  APQ hash that is not one of them `PERSISTED_QUERY_NOT_FOUND` (so that an APQ client sends the
  text, which is then checked).

Trusted documents are never learnt from requests and a (client, id) never changes text, so what
was found is cached for good (memory LRU, Redis). What was not found is remembered too, in each
process's memory only (`TrustedDocuments` misses: bounded in entries, each for `miss_ttl` seconds),
so that a client repeating unknown ids or APQ hashes asks Redis and the store once, not at every
request. A push makes a missing id exist: the misses are forgotten when PostgreSQL notifies the
push (its trigger on `persisted_documents`, heard by every replica's change listener, and all of
them on the listener's reconnection); on SQLite (one gateway, pushes from the CLI's process) and
until a notification arrives, a miss is remembered `miss_ttl` seconds at most.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import sys
import time
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache, TTLCache

from . import telemetry
from .errors import ClientRefusal

logger = logging.getLogger("citygate.persisted")

APQ_VERSION = 1
DONT_CACHE = "private, no-cache, must-revalidate"  # a miss is answered differently once the text is learnt
MAX_ID_LENGTH = 200  # the store's column
_ENTRY_OVERHEAD = 200  # bytes an APQ entry costs beside its text (its key, the LRU's links), counted against the cap
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


class DocumentRefusal(ClientRefusal):
    """The request names no document it may run: a GraphQL error with a stable code."""

    def __init__(self, code: str, message: str, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.headers = headers


@dataclass(frozen=True, slots=True)
class DocumentAsk:
    """What a request says about its document: its text, a `documentId`, APQ's extension (as sent)."""

    query: str | None = None
    document_id: str | None = None
    persisted_query: Any = None  # extensions.persistedQuery; None: absent


@dataclass(frozen=True, slots=True)
class Resolved:
    query: str
    learn_as: tuple[str, str] | None = None  # (requester, APQ hash) to learn the text under once it ran


def text_hash(text: str) -> str:
    """The SHA-256 of a document's text (UTF-8), lowercase hex: APQ's hash and Apollo's manifest ids."""
    return hashlib.sha256(text.encode()).hexdigest()


class ApqCache:
    """APQ's documents in this process: (requester, hash) -> text, least recently used dropped past
    `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._texts: LRUCache | None = LRUCache(maxsize=max_bytes, getsizeof=_apq_size) if max_bytes > 0 else None

    def get(self, requester: str, digest: str) -> str | None:
        text = self._texts.get((requester, digest)) if self._texts is not None else None
        telemetry.cache_lookup("apq", text is not None)
        return text

    def put(self, requester: str, digest: str, text: str) -> None:
        if self._texts is None or _apq_size(text) > self.max_bytes:
            return
        self._texts[(requester, digest)] = text

    @property
    def bytes(self) -> int:
        return int(self._texts.currsize) if self._texts is not None else 0

    def __len__(self) -> int:
        return len(self._texts) if self._texts is not None else 0


def _apq_size(text: str) -> int:
    return sys.getsizeof(text) + _ENTRY_OVERHEAD


class TrustedDocuments:
    """The trusted documents of the store, read through a memory LRU and Redis (when configured).
    What was found is cached for good (a (client, id) never changes text); what was not, in memory
    for `miss_ttl` seconds at most, until `forget_misses` (a push was notified)."""

    REDIS_BACKOFF = 5.0  # seconds without asking Redis after it failed (the store answers meanwhile)

    def __init__(
        self,
        store: Any,
        *,
        cache_entries: int = 10_000,
        redis_url: str | None = None,
        redis_ttl: int = 86_400,
        redis_prefix: str = "citygate:documents:",
        miss_ttl: float = 10.0,
    ) -> None:
        self.store = store
        self._memory: LRUCache | None = LRUCache(maxsize=cache_entries) if cache_entries > 0 else None
        # (client, kind, key) known missing: as many entries as found ones at most, so that a client
        # inventing ids evicts only other misses; never in Redis (nothing there hears of a push)
        self._misses: TTLCache | None = (
            TTLCache(maxsize=cache_entries, ttl=miss_ttl) if cache_entries > 0 and miss_ttl > 0 else None
        )
        self._generation = 0  # bumped by forget_misses: a lookup begun before it records no miss
        self._redis: Any = None
        self._redis_ttl = redis_ttl
        self._redis_prefix = redis_prefix
        self._redis_down_until = 0.0
        if redis_url:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.25, socket_connect_timeout=0.25)

    async def find(self, client: str, *, document_id: str | None = None, sha256: str | None = None) -> str | None:
        """The text of `client`'s trusted document with this id, or whose text hashes to `sha256`."""
        from . import store as documents

        kind, key = ("id", document_id) if document_id is not None else ("sha256", sha256)
        assert key is not None
        entry = (client, kind, key)
        cached = self._memory.get(entry) if self._memory is not None else None
        if cached is not None:
            telemetry.cache_lookup("trusted_document", True)
            return cached
        if self._misses is not None and entry in self._misses:
            telemetry.cache_lookup("trusted_document", True)  # known missing: neither Redis nor the store is asked
            return None
        telemetry.cache_lookup("trusted_document", False)
        generation = self._generation
        redis_key = f"{self._redis_prefix}{client}:{kind}:{key}"
        text = await self._redis_get(redis_key)
        if text is None:
            if kind == "id":
                text = await documents.document_by_id(self.store, client, key)
            else:
                text = await documents.document_by_text_hash(self.store, client, key)
            if text is not None:
                await self._redis_set(redis_key, text)
        if text is not None and self._memory is not None:
            self._memory[entry] = text
        elif text is None and self._misses is not None and generation == self._generation:
            self._misses[entry] = True  # (a push notified while the store was read: the miss may be stale, not kept)
        return text

    def forget_misses(self) -> None:
        """A document was pushed (or may have been, unheard): every id known missing is asked again."""
        self._generation += 1
        if self._misses is not None:
            self._misses.clear()

    @property
    def misses(self) -> int:
        """Ids known missing now (their entries in memory)."""
        return len(self._misses) if self._misses is not None else 0

    def _use_redis(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, error: Exception) -> None:
        self._redis_down_until = time.monotonic() + self.REDIS_BACKOFF
        logger.warning(
            "trusted documents read from the store for %g s: Redis failed (%s)",
            self.REDIS_BACKOFF,
            type(error).__name__,
        )

    async def _redis_get(self, key: str) -> str | None:
        if not self._use_redis():
            return None
        try:
            found = await self._redis.get(key)
        except Exception as error:  # Redis down or slow: the store answers, never fail the request
            self._redis_failed(error)
            return None
        return found.decode() if found is not None else None

    async def _redis_set(self, key: str, text: str) -> None:
        if not self._use_redis():
            return
        try:
            await self._redis.set(key, text.encode(), ex=self._redis_ttl)
        except Exception as error:
            self._redis_failed(error)

    async def close(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()


class PersistedDocuments:
    """Resolves what a request asks to run (APQ, trusted documents, the requester's mode)."""

    def __init__(
        self, *, apq: bool = True, apq_cache_bytes: int = 16 * 1024 * 1024, trusted: TrustedDocuments | None = None
    ) -> None:
        self.apq_enabled = apq
        self.apq = ApqCache(apq_cache_bytes if apq else 0)
        self.trusted = trusted

    @classmethod
    def from_settings(
        cls, settings: Any, store: Any = None, *, redis_prefix: str = "citygate:documents:"
    ) -> PersistedDocuments:
        """From `Settings` (its `persisted_documents` and `redis` sections); trusted documents need a store."""
        section = settings.persisted_documents
        trusted = None
        if store is not None:
            trusted = TrustedDocuments(
                store,
                cache_entries=section.cache_entries,
                redis_url=settings.redis.url,
                redis_ttl=section.redis_ttl,
                redis_prefix=redis_prefix,
                miss_ttl=section.miss_ttl,
            )
        return cls(apq=section.apq, apq_cache_bytes=section.apq_cache_bytes, trusted=trusted)

    def forget_misses(self) -> None:
        """Trusted documents were pushed (PostgreSQL notified it, or notifications may have been lost)."""
        if self.trusted is not None:
            self.trusted.forget_misses()

    async def resolve(self, ask: DocumentAsk, client: str, mode: str, resident: str | None = None) -> Resolved:
        """The text to run for `client` (a policy client's id, or "public") in `mode` (allow |
        safelist), for `resident` when one is signed in (APQ hashes are the requester's own).
        Raises DocumentRefusal."""
        if ask.document_id is not None:
            if ask.query is not None or ask.persisted_query is not None:
                raise DocumentRefusal(
                    "BAD_REQUEST", "send a documentId alone, without a query or extensions.persistedQuery", 400
                )
            return Resolved(await self._by_document_id(ask.document_id, client))
        if ask.persisted_query is not None:
            return await self._apq(ask, client, mode, f"{client}\x00{resident or ''}")
        assert ask.query is not None
        if mode == "safelist" and await self._trusted(client, sha256=text_hash(ask.query)) is None:
            raise _required()
        return Resolved(ask.query)

    def learn(self, resolved: Resolved) -> None:
        """The operation of an APQ registration ran (every limit passed): its text is kept under its hash."""
        if resolved.learn_as is not None:
            self.apq.put(*resolved.learn_as, resolved.query)

    async def _by_document_id(self, document_id: str, client: str) -> str:
        if not document_id or len(document_id) > MAX_ID_LENGTH + len("sha256:"):
            raise DocumentRefusal(
                "BAD_REQUEST", f"'documentId' must be a string of 1 to {MAX_ID_LENGTH} characters", 400
            )
        text = await self._trusted(client, document_id=document_id)
        if text is None and document_id.startswith("sha256:") and _SHA256_HEX.fullmatch(document_id[7:]):
            text = await self._trusted(client, sha256=document_id[7:].lower())
        if text is None:
            raise DocumentRefusal(
                "PERSISTED_DOCUMENT_NOT_FOUND", f"no trusted document {document_id!r} for this client", 404
            )
        return text

    async def _apq(self, ask: DocumentAsk, client: str, mode: str, requester: str) -> Resolved:
        extension = ask.persisted_query
        if not isinstance(extension, dict):
            raise DocumentRefusal(
                "BAD_REQUEST", "extensions.persistedQuery must be an object {version, sha256Hash}", 400
            )
        version = extension.get("version")
        if version != APQ_VERSION or isinstance(version, bool):
            raise DocumentRefusal(
                "PERSISTED_QUERY_VERSION_NOT_SUPPORTED",
                f"unsupported persisted query version: only {APQ_VERSION} is",
                400,
            )
        digest = extension.get("sha256Hash")
        if not isinstance(digest, str) or not 0 < len(digest) <= MAX_ID_LENGTH:
            raise DocumentRefusal(
                "BAD_REQUEST",
                f"extensions.persistedQuery.sha256Hash must be a string of 1 to {MAX_ID_LENGTH} characters",
                400,
            )
        if _SHA256_HEX.fullmatch(digest):
            digest = digest.lower()
        if ask.query is not None:  # a registration: the text with its hash
            if text_hash(ask.query) != digest:
                raise DocumentRefusal("PERSISTED_QUERY_HASH_MISMATCH", "provided sha does not match query", 400)
            if mode == "safelist":
                if await self._trusted(client, sha256=digest) is None:
                    raise _required()
                return Resolved(ask.query)
            if not self.apq_enabled:
                raise _not_supported()
            return Resolved(ask.query, learn_as=(requester, digest))
        # the hash alone: what this process learnt (allow), else a trusted document (by the
        # manifest's id, then by its text's hash)
        if mode == "allow" and self.apq_enabled:
            text = self.apq.get(requester, digest)
            if text is not None:
                return Resolved(text)
        text = await self._trusted(client, document_id=digest)
        if text is None and _SHA256_HEX.fullmatch(digest):
            text = await self._trusted(client, sha256=digest)
        if text is not None:
            return Resolved(text)
        if mode == "allow" and not self.apq_enabled:
            raise _not_supported()
        raise _not_found()  # safelist: an APQ client sends the text next, checked against the safelist then

    async def _trusted(self, client: str, *, document_id: str | None = None, sha256: str | None = None) -> str | None:
        if self.trusted is None:
            return None
        try:
            return await self.trusted.find(client, document_id=document_id, sha256=sha256)
        except Exception as error:  # the store cannot be read: nothing runs that may have needed it (fail closed)
            logger.error("trusted documents cannot be read (%s)", type(error).__name__)
            raise DocumentRefusal(
                "STORE_UNAVAILABLE", "the trusted documents cannot be read now: retry later", 503
            ) from None

    async def close(self) -> None:
        if self.trusted is not None:
            await self.trusted.close()


def _not_found() -> DocumentRefusal:
    # Apollo's clients recognise the message, not the code: it is exactly theirs
    return DocumentRefusal("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound", 200, {"cache-control": DONT_CACHE})


def _not_supported() -> DocumentRefusal:
    return DocumentRefusal("PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported", 200)


def _required() -> DocumentRefusal:
    return DocumentRefusal(
        "PERSISTED_DOCUMENT_REQUIRED",
        "this client may only run its trusted documents: send a documentId (or the text of one of them)",
        403,
    )


# -- manifests ------------------------------------------------------------------------------------

APOLLO_MANIFEST_FORMAT = "apollo-persisted-query-manifest"
_OPERATION_TYPES = ("query", "mutation", "subscription")


class ManifestError(Exception):
    """The manifest cannot be pushed; `problems`: one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def read_manifest(data: Any) -> list[Any]:
    """The trusted documents of a manifest: Apollo's persisted query manifest (`{"format":
    "apollo-persisted-query-manifest", "version": 1, "operations": [{id, name, type, body}]}`) or a
    Relay/Hive map `{id: body}`. Every body must parse (graphql-core, within the default token
    limit); ids must be unique. Raises ManifestError listing every problem."""
    from graphql import GraphQLError, parse

    from .planner import DocumentLimits
    from .store import TrustedDocument

    problems: list[str] = []
    entries: list[tuple[str, Any, Any, Any]] = []  # (where, id, body, name, type)
    if isinstance(data, dict) and "format" in data:
        if data.get("format") != APOLLO_MANIFEST_FORMAT or data.get("version") != 1:
            raise ManifestError(
                [f'a manifest with a format must be {{"format": "{APOLLO_MANIFEST_FORMAT}", "version": 1, ...}}']
            )
        operations = data.get("operations")
        if not isinstance(operations, list):
            raise ManifestError(["operations must be a list of {id, name, type, body}"])
        for index, operation in enumerate(operations):
            if not isinstance(operation, dict):
                problems.append(f"operations[{index}] must be an object {{id, name, type, body}}")
                continue
            entries.append(
                (
                    f"operations[{index}]",
                    operation.get("id"),
                    operation.get("body"),
                    operation.get("name"),
                    operation.get("type"),
                )
            )
    elif isinstance(data, dict):
        entries = [(f"{key!r}", key, value, None, None) for key, value in data.items()]
    else:
        raise ManifestError(
            [f"a manifest is Apollo's persisted query manifest or a map {{id: document}}, not a {type(data).__name__}"]
        )
    documents: list[TrustedDocument] = []
    seen: set[str] = set()
    max_tokens = DocumentLimits().max_tokens
    for where, document_id, body, name, kind in entries:
        if not isinstance(document_id, str) or not 0 < len(document_id) <= MAX_ID_LENGTH:
            problems.append(f"{where}: the id must be a string of 1 to {MAX_ID_LENGTH} characters")
            continue
        if document_id in seen:
            problems.append(f"{where}: the id {document_id!r} is there twice")
            continue
        seen.add(document_id)
        if not isinstance(body, str) or not body.strip():
            problems.append(f"{where}: the body must be a GraphQL document")
            continue
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            problems.append(f"{where}: the name must be a string of at most 200 characters")
            continue
        if kind is not None and kind not in _OPERATION_TYPES:
            problems.append(f"{where}: the type must be one of {', '.join(_OPERATION_TYPES)}")
            continue
        try:
            parse(body, max_tokens=max_tokens)
        except GraphQLError as error:
            problems.append(f"{where}: the body does not parse: {error.message}")
            continue
        except RecursionError:
            problems.append(f"{where}: the body is nested too deeply")
            continue
        documents.append(TrustedDocument(document_id, text_hash(body), body, name, kind))
    if problems:
        raise ManifestError(problems)
    if not documents:
        raise ManifestError(["the manifest holds no document"])
    return documents
