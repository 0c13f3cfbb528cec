"""The audit log: every allowed disclosure to anyone but the subject, hash-chained.

One entry per (request, subject, recipient), with the fields disclosed and the basis of each
(consent id or policy rule). Each entry's hash covers its content and the previous entry's hash;
the chain head is stored apart. `verify` recomputes the chain and names the first entry edited,
inserted or deleted, and a head that does not match the last entry.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from .. import telemetry
from ..store import GENESIS_HASH, Store


def entry_hash(row: dict) -> str:
    """SHA-256 of the entry's hashed columns as JSON with sorted keys (written out in that order:
    no sorting per entry, tests/privacy/test_ledger_and_audit.py holds it to the sorted form)."""
    canonical = {
        "at": row["at"],
        "basis": row["basis"],
        "fields": row["fields"],
        "prev_hash": row["prev_hash"],
        "purpose": row["purpose"],
        "recipient": row["recipient"],
        "request_id": row["request_id"],
        "seq": row["seq"],
        "subject": row["subject"],
    }
    return hashlib.sha256(orjson.dumps(canonical)).hexdigest()


@dataclass(slots=True)
class Disclosure:
    """What one request disclosed about one subject."""

    subject: str
    fields: set[str] = field(default_factory=set)
    basis: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Verification:
    entries: int
    problems: list[str]

    @property
    def intact(self) -> bool:
        return not self.problems


class AuditLog:
    """Appends disclosures with group commit: requests arriving while a transaction commits are
    written together by the next one, and each waits until its own entries are committed."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: list[tuple[list[dict], asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def record(self, request_id: str, recipient: str, purpose: str, disclosures: list[Disclosure]) -> None:
        """Write before the response leaves; raises when the store refuses (the caller withholds)."""
        if not disclosures:
            return
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.append((self._entries(request_id, recipient, purpose, disclosures), future))
        telemetry.audit_queued(len(self._queue))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._drain())
        await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            entries = [entry for batch_entries, _ in batch for entry in batch_entries]
            telemetry.audit_queued(0)
            commit = telemetry.audit_commit_started(len(entries))
            try:
                await self.store.append_audit(entries, entry_hash)
            except Exception as error:
                telemetry.audit_committed(commit, False)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                        future.exception()
            else:
                telemetry.audit_committed(commit, True)
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    @staticmethod
    def _entries(request_id: str, recipient: str, purpose: str, disclosures: list[Disclosure]) -> list[dict]:
        at = datetime.now(UTC).isoformat()
        entries = [
            {
                "at": at,
                "request_id": request_id,
                "recipient": recipient,
                "purpose": purpose,
                "subject": disclosure.subject,
                "fields": orjson.dumps(sorted(disclosure.fields)).decode(),
                "basis": orjson.dumps(sorted(disclosure.basis)).decode(),
            }
            for disclosure in sorted(disclosures, key=lambda d: d.subject)
        ]
        return entries

    async def entries_for(self, subject: str, limit: int = 50) -> list[dict]:
        rows = await self.store.audit_entries(subject=subject, limit=limit, newest_first=True)
        for row in rows:
            row["fields"] = orjson.loads(row["fields"])
            row["basis"] = orjson.loads(row["basis"])
        return rows

    async def verify(self) -> Verification:
        rows = await self.store.audit_entries()
        problems: list[str] = []
        previous = GENESIS_HASH
        expected_seq = 1
        for row in rows:
            if row["seq"] != expected_seq:
                problems.append(
                    f"entry {row['seq']}: expected entry {expected_seq} here (an entry was deleted or inserted)"
                )
            if row["prev_hash"] != previous:
                problems.append(
                    f"entry {row['seq']}: does not follow the entry before it (deleted, inserted or reordered)"
                )
            if entry_hash(row) != row["hash"]:
                problems.append(f"entry {row['seq']}: its content does not match its hash (edited)")
            previous = row["hash"]
            expected_seq = row["seq"] + 1
        head_seq, head_hash = await self.store.audit_chain_head()
        last_seq = rows[-1]["seq"] if rows else 0
        if head_seq != last_seq or head_hash != previous:
            problems.append(
                f"the chain head says entry {head_seq}, the log ends at entry {last_seq} (entries removed at the end or head edited)"
            )
        return Verification(len(rows), problems)
