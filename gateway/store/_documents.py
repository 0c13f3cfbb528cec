"""The store's trusted documents (the `persisted_documents` table): written by `citygate documents
push`, read by the gateway (gateway/persisted.py) on a cache miss.

A (client, id) is written once: pushing it again with the same text changes nothing, with another
text is refused (every cache of every replica may hold the first text: an id never changes
meaning). Nothing here decides who may run what.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from . import Store, persisted_documents

_CHUNK = 500  # ids per statement


@dataclass(frozen=True, slots=True)
class TrustedDocument:
    id: str
    sha256: str
    body: str
    name: str | None = None
    type: str | None = None


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A trusted document as `documents list` shows it: never its text."""

    client: str
    id: str
    sha256: str
    name: str | None
    type: str | None
    created_at: datetime


class DocumentConflict(Exception):
    """Some ids are stored for the client with another text: nothing was written."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(", ".join(ids))
        self.ids = ids


async def put_documents(store: Store, client: str, documents: list[TrustedDocument]) -> tuple[int, int]:
    """Store `documents` for `client` in one transaction: (added, already stored). Raises
    DocumentConflict, writing nothing, when an id is stored with another text."""
    table = persisted_documents.c
    dialect_insert = postgresql_insert if store.kind == "postgresql" else sqlite_insert
    now = datetime.now(UTC)
    async with store.engine.begin() as connection:
        stored: dict[str, str] = {}
        ids = [document.id for document in documents]
        for start in range(0, len(ids), _CHUNK):
            query = select(table.id, table.sha256).where(
                table.client == client, table.id.in_(ids[start : start + _CHUNK])
            )
            stored.update((row[0], row[1]) for row in await connection.execute(query))
        conflicts = sorted(d.id for d in documents if d.id in stored and stored[d.id] != d.sha256)
        if conflicts:
            raise DocumentConflict(conflicts)
        new = [d for d in documents if d.id not in stored]
        rows = [
            {
                "client": client,
                "id": d.id,
                "sha256": d.sha256,
                "name": d.name,
                "type": d.type,
                "body": d.body,
                "created_at": now,
            }
            for d in new
        ]
        added = 0
        for start in range(0, len(rows), _CHUNK):
            # another push of the same documents at the same moment: its rows win, ours do nothing
            result = await connection.execute(
                dialect_insert(persisted_documents).on_conflict_do_nothing(), rows[start : start + _CHUNK]
            )
            added += max(result.rowcount or 0, 0)
    return added, len(documents) - len(new)


async def document_by_id(store: Store, client: str, document_id: str) -> str | None:
    """The text of `client`'s document `document_id`, or None."""
    table = persisted_documents.c
    async with store.engine.connect() as connection:
        row = (
            await connection.execute(select(table.body).where(table.client == client, table.id == document_id))
        ).first()
    return row[0] if row else None


async def document_by_text_hash(store: Store, client: str, sha256: str) -> str | None:
    """The text of `client`'s document whose text hashes to `sha256` (hex), or None."""
    table = persisted_documents.c
    async with store.engine.connect() as connection:
        row = (
            await connection.execute(select(table.body).where(table.client == client, table.sha256 == sha256).limit(1))
        ).first()
    return row[0] if row else None


async def documents_of(store: Store, client: str | None = None) -> list[StoredDocument]:
    """Every trusted document (of `client` when given), by client and id; without their text."""
    table = persisted_documents.c
    query = select(table.client, table.id, table.sha256, table.name, table.type, table.created_at).order_by(
        table.client, table.id
    )
    if client is not None:
        query = query.where(table.client == client)
    async with store.engine.connect() as connection:
        return [StoredDocument(*row) for row in await connection.execute(query)]
