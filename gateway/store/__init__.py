"""The store: what must survive a restart and be shared by replicas.

SQLite (a file on disk) by default, PostgreSQL when configured, through SQLAlchemy 2 async.
This module only reads and writes rows; it decides nothing. Tables: partners and their key
hashes, registered connectors. (The consent ledger and the audit log join them later.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

metadata = MetaData()

partners = Table(
    "partners",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

connectors = Table(
    "connectors",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("owner", String(100), nullable=False),
    Column("manifest", Text, nullable=False),  # JSON, as submitted (header values are templates)
    Column("sdl", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def database_url(url: str) -> str:
    """Accept plain `sqlite:///file.db` and `postgresql://...` and pick the async drivers."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ConnectorRow:
    name: str
    owner: str
    manifest: dict[str, Any]
    sdl: str
    version: int
    updated_at: datetime


class Store:
    def __init__(self, url: str) -> None:
        self.url = database_url(url)
        self.engine: AsyncEngine = create_async_engine(self.url)

    @property
    def kind(self) -> str:
        return self.engine.dialect.name

    async def create(self) -> None:
        async with self.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)

    async def close(self) -> None:
        await self.engine.dispose()

    # -- partners --------------------------------------------------------------------------------

    async def add_partner(self, name: str, key: str) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(insert(partners).values(name=name, key_hash=key_hash(key), created_at=datetime.now(UTC)))

    async def partner_for_key(self, key: str) -> str | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(partners.c.name).where(partners.c.key_hash == key_hash(key)))).first()
        return row[0] if row else None

    async def partner_names(self) -> list[str]:
        async with self.engine.connect() as connection:
            return [r[0] for r in await connection.execute(select(partners.c.name).order_by(partners.c.name))]

    # -- connectors ------------------------------------------------------------------------------

    async def connectors(self) -> list[ConnectorRow]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(connectors).order_by(connectors.c.name))
            return [
                ConnectorRow(r.name, r.owner, orjson.loads(r.manifest), r.sdl, r.version, r.updated_at) for r in rows
            ]

    async def put_connector(self, name: str, owner: str, manifest: dict[str, Any], sdl: str) -> int:
        now = datetime.now(UTC)
        async with self.engine.begin() as connection:
            current = (await connection.execute(select(connectors.c.version).where(connectors.c.name == name))).first()
            if current is None:
                version = 1
                await connection.execute(
                    insert(connectors).values(name=name, owner=owner, manifest=orjson.dumps(manifest).decode(), sdl=sdl, version=version, updated_at=now)
                )
            else:
                version = current[0] + 1
                await connection.execute(
                    update(connectors)
                    .where(connectors.c.name == name)
                    .values(owner=owner, manifest=orjson.dumps(manifest).decode(), sdl=sdl, version=version, updated_at=now)
                )
        return version

    async def delete_connector(self, name: str) -> bool:
        async with self.engine.begin() as connection:
            result = await connection.execute(delete(connectors).where(connectors.c.name == name))
        return bool(result.rowcount)
