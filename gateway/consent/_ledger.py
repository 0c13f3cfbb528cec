"""The consent ledger: append-only grant and withdraw events, folded into consent records.

A record carries what ISO/IEC TS 27560 and the Kantara consent receipt ask for: id, subject,
recipient, purpose, categories, legal basis, time granted, expiry, time withdrawn, how it was
collected, and the policy (notice) version. Granting returns a receipt. Active consents are
cached per subject and (recipient, purpose); every change through this ledger drops the subject's
entries, so a withdrawal takes effect on the very next request.

Several replicas (PostgreSQL): a change recorded through another replica never passes through
this ledger, so the caches follow the consent clock, the highest `seq` of the store's events.
Every request whose answer may depend on consent calls `sync()` before it uses a cache: it reads
the events after the last one this replica has seen (one indexed query, shared by the requests
that arrive while the previous read is in flight, never by one that arrived before the read
started), drops the cache entries of their subjects and bumps `generation`, which every
consent-dependent cache of the gateway is keyed on. A clock read that fails drops every cache:
the request then decides from the store itself, which withholds while the store does not answer.
SQLite is one process: every change passes through this ledger, no clock is read.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cachetools import LRUCache

from ..errors import ClientRefusal
from ..policy import Policy
from ..store import Store
from ..taxonomy import category_covers, fides_categories
from ._receipts import RecordSigner

logger = logging.getLogger("citygate.consent")

# more events than this since the last clock read: drop every cache rather than read them all
_CATCH_UP_LIMIT = 1_000
_NONE_CACHED: dict = {}


class LedgerUnavailable(Exception):
    """The ledger could not be read: every personal value is withheld (fail closed)."""


class ConsentError(ClientRefusal):
    """A consent refused (grant or withdrawal): `code` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    id: str
    subject: str
    recipient: str
    purpose: str
    categories: tuple[str, ...]
    legal_basis: str
    granted_at: datetime
    expires_at: datetime | None
    withdrawn_at: datetime | None
    collection_method: str
    notice_version: str

    def active(self, at: datetime | None = None) -> bool:
        at = at or datetime.now(UTC)
        return self.withdrawn_at is None and (self.expires_at is None or _aware(self.expires_at) > at)

    def valid_until(self) -> float | None:
        """When it expires (POSIX time), None if it does not."""
        return _aware(self.expires_at).timestamp() if self.expires_at is not None else None

    def covers(self, category: str) -> bool:
        return any(category_covers(granted, category) for granted in self.categories)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _fold(events: list[dict[str, Any]]) -> list[ConsentRecord]:
    records: dict[str, ConsentRecord] = {}
    for event in events:
        if event["kind"] == "grant":
            records[event["consent_id"]] = ConsentRecord(
                id=event["consent_id"],
                subject=event["subject"],
                recipient=event["recipient"],
                purpose=event["purpose"],
                categories=tuple(event["categories"]),
                legal_basis=event["legal_basis"],
                granted_at=_aware(event["granted_at"]),
                expires_at=_aware(event["expires_at"]) if event["expires_at"] else None,
                withdrawn_at=None,
                collection_method=event["collection_method"],
                notice_version=event["notice_version"],
            )
        elif event["kind"] == "withdraw" and event["consent_id"] in records:
            records[event["consent_id"]] = replace(
                records[event["consent_id"]], withdrawn_at=_aware(event["withdrawn_at"] or event["recorded_at"])
            )
    return list(records.values())


class Ledger:
    def __init__(self, store: Store, policy: Policy, cache_size: int = 100_000) -> None:
        self.store = store
        self.policy = policy
        self.signer = RecordSigner(store)  # receipts and the audit head: docs/privacy.md "Verifiable records"
        # subject -> {(recipient, purpose): records}: a change drops one subject's entry at once
        self._active: LRUCache = LRUCache(maxsize=cache_size)
        # bumped by every change: a request that arrives after a change never shares the
        # execution of one that arrived before it (Engine's in-flight sharing keys on it)
        self.generation = 0
        # the consent clock (PostgreSQL): the highest seq whose subject's entries this replica has
        # dropped; None: not read yet (the next sync reads it and drops everything)
        self.clocked = store.kind == "postgresql"
        self.seen: int | None = None
        self._reader: asyncio.Task | None = None  # the clock read in flight, and the ones queued behind it
        self._queued: asyncio.Future | None = None  # the next read's answer, for requests arriving meanwhile
        self._clock_failing = False

    def invalidate(self, subject: str) -> None:
        self.invalidate_subjects({subject})

    def invalidate_subjects(self, subjects: set[str]) -> None:
        self.generation += 1
        for subject in subjects:
            self._active.pop(subject, None)

    def invalidate_all(self) -> None:
        self.generation += 1
        self._active.clear()

    # -- the consent clock (PostgreSQL) -----------------------------------------------------------

    async def start_clock(self) -> None:
        """Read the clock once, with every cache still empty (a failure leaves it to the first sync)."""
        if self.clocked:
            try:
                self.seen = await self.store.consent_clock()
            except Exception:
                logger.exception("the consent clock cannot be read: the first request reads it")

    async def sync(self) -> bool:
        """Catch up with changes recorded through any replica, before a request uses a cache.

        The request is served by a clock read that started after it arrived: a read already in
        flight may predate the change it must see, so the requests arriving meanwhile all wait for
        the next one, which starts as soon as it ends (group commit). False when the clock could
        not be read: every cache was dropped, the request decides from the store (fail closed)."""
        if not self.clocked:
            return True
        if self._reader is None:
            waiting: asyncio.Future = asyncio.get_running_loop().create_future()
            self._reader = asyncio.ensure_future(self._read_clock(waiting))
        else:
            if self._queued is None:
                self._queued = asyncio.get_running_loop().create_future()
            waiting = self._queued
        return await asyncio.shield(waiting)  # a cancelled request never cancels the others' read

    async def _read_clock(self, waiting: asyncio.Future | None) -> None:
        try:
            while waiting is not None:
                caught_up = await self._catch_up()
                if not waiting.done():
                    waiting.set_result(caught_up)
                # those who arrived during this read: the next read, starting now
                waiting, self._queued = self._queued, None
        finally:
            self._reader = None
            for left in (waiting, self._queued):  # cancelled (shutting down): nobody waits forever
                if left is not None and not left.done():
                    self.invalidate_all()  # unread clock: nothing cached answers those who waited
                    left.set_result(False)
            if waiting is not None:
                self._queued = None

    async def _catch_up(self) -> bool:
        try:
            if self.seen is None:
                clock = await self.store.consent_clock()
                self.invalidate_all()
                self.seen = clock
            else:
                changes = await self.store.consent_changes_since(self.seen, _CATCH_UP_LIMIT + 1)
                if len(changes) > _CATCH_UP_LIMIT:
                    clock = await self.store.consent_clock()  # before the drop: later events stay after `seen`
                    self.invalidate_all()
                    self.seen = clock
                elif changes:
                    self.invalidate_subjects({subject for _, subject in changes})
                    self.seen = changes[-1][0]
        except Exception as error:
            # nothing cached may answer now: the request reads the store itself, or withholds
            self.invalidate_all()
            if not self._clock_failing:
                logger.error(
                    "the consent clock cannot be read (%s): consent is decided without caches", type(error).__name__
                )
            self._clock_failing = True
            return False
        if self._clock_failing:
            logger.warning("the consent clock answers again")
            self._clock_failing = False
        return True

    def cached_active(self, subject: str, recipient: str, purpose: str) -> list[ConsentRecord] | None:
        """The subject's active consents for (recipient, purpose) if cached; None means: ask `active_for`."""
        records = self._active.get(subject, _NONE_CACHED).get((recipient, purpose))
        if records is None:
            return None
        now = datetime.now(UTC)
        return [r for r in records if r.active(now)]

    async def active_for(self, subjects: set[str], recipient: str, purpose: str) -> dict[str, list[ConsentRecord]]:
        """Active consents per subject for (recipient, purpose): one store query for the misses."""
        result: dict[str, list[ConsentRecord]] = {}
        missing = []
        for subject in subjects:
            cached = self._active.get(subject, _NONE_CACHED).get((recipient, purpose))
            if cached is None:
                missing.append(subject)
            else:
                result[subject] = cached
        if missing:
            generation = self.generation
            try:
                events = await self.store.consent_events_for(missing, recipient, purpose)
            except Exception as error:  # any store failure: nothing can be disclosed on consent
                raise LedgerUnavailable(str(error)) from None
            by_subject: dict[str, list[dict]] = {s: [] for s in missing}
            for event in events:
                by_subject[event["subject"]].append(event)
            for subject, subject_events in by_subject.items():
                records = _fold(subject_events)
                # a change while the store was read may not be in what was read: answer this
                # request with it, but do not keep it for the next ones
                if self.generation == generation:
                    kept = self._active.get(subject)
                    if kept is None:
                        kept = self._active[subject] = {}
                    kept[(recipient, purpose)] = records
                result[subject] = records
        now = datetime.now(UTC)
        return {s: [r for r in records if r.active(now)] for s, records in result.items()}

    async def consents(self, subject: str) -> list[ConsentRecord]:
        return _fold(await self.store.consent_events_for([subject], None, None))

    async def grant(
        self,
        *,
        subject: str,
        recipient: str,
        purpose: str,
        categories: list[str],
        expires_in_days: int | None,
        collection_method: str,
    ) -> tuple[ConsentRecord, dict[str, Any]]:
        client = self.policy.clients.get(recipient)
        if client is None:
            raise ConsentError("UNKNOWN_RECIPIENT", f"{recipient!r} is not a registered client")
        if purpose not in client.purposes:
            raise ConsentError("PURPOSE_NOT_ALLOWED", f"{recipient} does not ask for the purpose {purpose!r}")
        known = fides_categories()
        unknown = [c for c in categories if c not in known]
        if not categories or unknown:
            raise ConsentError(
                "UNKNOWN_CATEGORY",
                f"categories must be Fides data categories; unknown: {', '.join(unknown) or '(none given)'}",
            )
        if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
            raise ConsentError("BAD_USER_INPUT", "expiresInDays must be between 1 and 3650")
        now = datetime.now(UTC)
        consent_id = str(uuid.uuid4())
        event = {
            "event_id": str(uuid.uuid4()),
            "consent_id": consent_id,
            "kind": "grant",
            "subject": subject,
            "recipient": recipient,
            "purpose": purpose,
            "categories": sorted(set(categories)),
            "legal_basis": "consent",
            "granted_at": now,
            "expires_at": now + timedelta(days=expires_in_days) if expires_in_days else None,
            "withdrawn_at": None,
            "collection_method": collection_method,
            "notice_version": self.policy.version,
            "recorded_at": now,
        }
        await self.store.append_consent_event(event)
        self.invalidate(subject)
        record = _fold([event])[0]
        return record, self.receipt(record)

    async def withdraw(self, *, subject: str, consent_id: str) -> ConsentRecord:
        records = {r.id: r for r in await self.consents(subject)}
        record = records.get(consent_id)
        if record is None:
            raise ConsentError("CONSENT_NOT_FOUND", "no consent with this id is yours")
        if record.withdrawn_at is not None:
            return record
        now = datetime.now(UTC)
        await self.store.append_consent_event(
            {
                "event_id": str(uuid.uuid4()),
                "consent_id": consent_id,
                "kind": "withdraw",
                "subject": subject,
                "recipient": record.recipient,
                "purpose": record.purpose,
                "categories": list(record.categories),
                "legal_basis": record.legal_basis,
                "granted_at": record.granted_at,
                "expires_at": record.expires_at,
                "withdrawn_at": now,
                "collection_method": record.collection_method,
                "notice_version": self.policy.version,
                "recorded_at": now,
            }
        )
        self.invalidate(subject)
        return replace(record, withdrawn_at=now)

    def receipt(self, record: ConsentRecord) -> dict[str, Any]:
        """A Kantara consent receipt (v1.1 fields) for a granted consent."""
        client = self.policy.clients.get(record.recipient)
        controller = self.policy.controller
        return {
            "version": "KI-CR-v1.1.0",
            "jurisdiction": controller.jurisdiction,
            "consentTimestamp": int(record.granted_at.timestamp()),
            "collectionMethod": record.collection_method,
            "consentReceiptID": record.id,
            "language": "fr",
            "piiPrincipalId": record.subject,
            "piiControllers": [{"piiController": controller.name, "onBehalf": False}],
            "policyUrl": controller.policy_url,
            "noticeVersion": record.notice_version,
            "services": [
                {
                    "service": client.name if client else record.recipient,
                    "purposes": [
                        {
                            "purpose": record.purpose,
                            "purposeCategory": [self.policy.purposes.get(record.purpose, "")],
                            "consentType": "EXPLICIT",
                            "piiCategory": list(record.categories),
                            "primaryPurpose": True,
                            "termination": record.expires_at.isoformat() if record.expires_at else "until withdrawn",
                            "thirdPartyDisclosure": True,
                            "thirdPartyName": record.recipient,
                        }
                    ],
                }
            ],
            "sensitive": False,
        }
