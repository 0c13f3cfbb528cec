"""The store: what must survive a restart and be shared by replicas.

SQLite (a file on disk) by default, PostgreSQL when configured, through SQLAlchemy 2 async.
This module only reads and writes rows; it decides nothing. Tables: partners and their key
hashes, registered connectors and the upstream secrets their owners stored with them, the
consent ledger's events, the audit log and its chain head, a few settings (the
pseudonymisation key), and recorded usage (counts of operations per client and day, and the schema
coordinates each operation selects: never a document's text or a variable), and the trusted
documents operators pushed per client (gateway/persisted.py; queries in `_documents.py`). The ledger and the audit log are append-only: triggers refuse UPDATE and
DELETE on both databases. New tables appear in an existing database at start (`create_all` adds
what is missing, on SQLite and PostgreSQL alike); a new column would need a migration.

A store that hangs fails fast instead (`StoreTimeouts`): PostgreSQL connections are given up after
`connect` seconds and statements after `statement` seconds (asyncpg's timeouts and the server's
own `statement_timeout`); SQLite waits for another writer's lock at most `statement` seconds.
The caller gets the exception: the ledger and the audit log then withhold (gateway/consent).

Replicas (PostgreSQL): `create()` installs triggers that notify the channel `citygate_changes`
(`CHANGES_CHANNEL`) with a small JSON payload on every consent event (`{"kind": "consent", "seq"}`: no resident's
id, anyone who may LISTEN reads it; replicas read the subjects from the table) and every connector inserted, updated or deleted (`{"kind": "connector", "name",
"version", "op"}`), every push of trusted documents (`{"kind": "documents"}`, once per statement); the application sends `{"kind": "policy", "version"}` itself (`notify`).
`_changes.py` listens. Consent events are appended one after the other (a transaction-scoped
advisory lock), so their `seq` order is their commit order: a replica that has seen `seq` N has
seen every event up to N (`consent_changes_since` relies on it). SQLite is one process: `claim()`
takes an exclusive lock next to the database file for the gateway's life.

A connector's secrets are write-only: nothing here returns them but `connectors()`, for the
registry to send them to the connector's origin, and no statement's parameters reach a log or
an error message (`hide_parameters`, and values whose repr hides them from drivers' debug logs).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..errors import ConfigurationError
from ._changes import CHANGES_CHANNEL
from ._changes import ChangeListener as ChangeListener  # for the application (replicas)
from ._changes import Rerun as Rerun
from ._sqlite_audit import SQLiteAuditWriter, link

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

connector_secrets = Table(
    "connector_secrets",
    metadata,
    Column("connector", String(100), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("value", Text, nullable=False),  # write-only: read back only to be sent to the connector's origin
)

consent_events = Table(
    "consent_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("consent_id", String(36), nullable=False, index=True),
    Column("kind", String(10), nullable=False),  # grant | withdraw
    Column("subject", String(200), nullable=False, index=True),
    Column("recipient", String(100), nullable=False),
    Column("purpose", String(100), nullable=False),
    Column("categories", Text, nullable=False),  # JSON list
    Column("legal_basis", String(30), nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("withdrawn_at", DateTime(timezone=True)),
    Column("collection_method", String(100), nullable=False),
    Column("notice_version", String(100), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),  # ISO 8601, as hashed
    Column("request_id", String(64), nullable=False),
    Column("recipient", String(100), nullable=False),
    Column("purpose", String(100), nullable=False),
    Column("subject", String(200), nullable=False, index=True),
    Column("fields", Text, nullable=False),  # JSON list of coordinates
    Column("basis", Text, nullable=False),  # JSON list: "consent:<id>" or "policy:<rule>"
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("hash", String(64), nullable=False),
)

settings = Table(
    "settings",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

# recorded usage (gateway/usage.py): which operations each client sent a day, counts only, and the
# schema coordinates each operation selects; an operation is the hash of its document with every
# literal value blanked out, never its text, never a variable
usage_counts = Table(
    "usage_counts",
    metadata,
    Column("day", String(10), primary_key=True),  # ISO date, UTC
    Column("client", String(100), primary_key=True),
    Column("operation", String(64), primary_key=True),
    Column("count", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
)

usage_coordinates = Table(
    "usage_coordinates",
    metadata,
    Column("operation", String(64), primary_key=True),
    Column(
        "coordinate", String(400), primary_key=True, index=True
    ),  # Type.field, Type.field(arg:), Enum.VALUE, @directive
)

# open data under differential privacy (gateway/privacy/_noise.py): the epsilon each client (or the
# public) spent per period, and every value released to it, so that the same question is answered
# the same way on every replica for the rest of the period without being charged again
open_data_budgets = Table(
    "open_data_budgets",
    metadata,
    Column("recipient", String(100), primary_key=True),
    Column("period", String(10), primary_key=True),  # 2026-11-25, 2026-W48 or 2026-11 (UTC)
    Column("spent", Float, nullable=False),
)

open_data_releases = Table(
    "open_data_releases",
    metadata,
    Column("recipient", String(100), primary_key=True),
    Column("period", String(10), primary_key=True),
    Column("question", String(64), primary_key=True),  # SHA-256 of (coordinate, entity): never a value
    Column("value", Text, nullable=False),  # JSON: the released (noisy) value
    Column("epsilon", Float, nullable=False),
    Column("released_at", DateTime(timezone=True), nullable=False),
)

# trusted documents (gateway/persisted.py): what an operator pushed for a client from its
# manifest, by the manifest's id and by the SHA-256 of the text; a (client, id) never changes text
persisted_documents = Table(
    "persisted_documents",
    metadata,
    Column("client", String(100), primary_key=True),  # a policy client's id, or "public"
    Column("id", String(200), primary_key=True),
    Column("sha256", String(64), nullable=False),  # of the body, hex
    Column("name", String(200)),
    Column("type", String(20)),  # query | mutation | subscription, as the manifest says
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("persisted_documents_by_text", "client", "sha256"),
)

GENESIS_HASH = "0" * 64
_APPEND_ONLY = ("consent_events", "audit_log")
# transaction-scoped advisory locks (PostgreSQL): arbitrary constants, Citygate's own
_CREATE_LOCK = 0x43_47_00_01  # replicas starting at once create tables and triggers one after the other
_CONSENT_APPEND_LOCK = 0x43_47_00_02  # consent events commit in the order of their seq
# PostgreSQL: notifications of changes other replicas must hear of (see the module's docstring)
_NOTIFY_DDL = [
    "CREATE OR REPLACE FUNCTION citygate_notify_consent() RETURNS trigger AS $$ BEGIN "
    f"PERFORM pg_notify('{CHANGES_CHANNEL}', json_build_object('kind', 'consent', 'seq', NEW.seq)::text); "
    "RETURN NULL; END; $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS consent_events_notify ON consent_events",
    "CREATE TRIGGER consent_events_notify AFTER INSERT ON consent_events FOR EACH ROW EXECUTE FUNCTION citygate_notify_consent()",
    "CREATE OR REPLACE FUNCTION citygate_notify_connector() RETURNS trigger AS $$ BEGIN "
    "IF TG_OP = 'DELETE' THEN "
    f"PERFORM pg_notify('{CHANGES_CHANNEL}', json_build_object('kind', 'connector', 'op', 'delete', 'name', OLD.name, 'version', OLD.version)::text); "
    "ELSE "
    f"PERFORM pg_notify('{CHANGES_CHANNEL}', json_build_object('kind', 'connector', 'op', lower(TG_OP), 'name', NEW.name, 'version', NEW.version)::text); "
    "END IF; RETURN NULL; END; $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS connectors_notify ON connectors",
    "CREATE TRIGGER connectors_notify AFTER INSERT OR UPDATE OR DELETE ON connectors FOR EACH ROW EXECUTE FUNCTION citygate_notify_connector()",
    # a push of trusted documents (one statement per chunk): replicas forget the ids they knew missing
    "CREATE OR REPLACE FUNCTION citygate_notify_documents() RETURNS trigger AS $$ BEGIN "
    f"PERFORM pg_notify('{CHANGES_CHANNEL}', json_build_object('kind', 'documents')::text); "
    "RETURN NULL; END; $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS persisted_documents_notify ON persisted_documents",
    "CREATE TRIGGER persisted_documents_notify AFTER INSERT ON persisted_documents FOR EACH STATEMENT EXECUTE FUNCTION citygate_notify_documents()",
]
_CONSENT_CHANGES_SQL = "SELECT seq, subject FROM consent_events WHERE seq > $1 ORDER BY seq LIMIT $2"
_CONSENT_CLOCK = text("SELECT coalesce(max(seq), 0) FROM consent_events")


class _AnsweredMeanwhile(Exception):
    """Another writer released the same question first: roll back, read theirs."""


class _Exhausted(Exception):
    """The budget cannot pay: roll back (nothing released, nothing stored)."""


class StoreInUse(ConfigurationError):
    """Another gateway serves this SQLite store: SQLite is for one process."""

    code = "STORE_IN_USE"


def database_url(url: str) -> str:
    """Accept plain `sqlite:///file.db` and `postgresql://...` and pick the async drivers."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class _Unlogged(str):
    """A secret's value on its way into a statement: the same text for the database, a repr that
    hides it from whatever prints parameters (aiosqlite's debug log prints each call's)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<secret>'"


@dataclass(frozen=True, slots=True)
class StoreTimeouts:
    """How long the store may take before its caller gets an error (seconds)."""

    connect: float = 5.0  # PostgreSQL: a new connection, and waiting for a pooled one
    statement: float = 5.0  # PostgreSQL: one statement (client and server side); SQLite: another writer's lock

    @property
    def server_statement_timeout(self) -> str:
        """PostgreSQL's own `statement_timeout` setting for `statement` (milliseconds, at least 1)."""
        return str(max(1, round(self.statement * 1000)))


@dataclass(frozen=True, slots=True)
class ConnectorRow:
    name: str
    owner: str
    manifest: dict[str, Any]
    sdl: str
    version: int
    updated_at: datetime
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # name -> value, write-only


class Store:
    def __init__(self, url: str, timeouts: StoreTimeouts | None = None) -> None:
        self.url = database_url(url)
        self.timeouts = timeouts = timeouts or StoreTimeouts()
        options: dict[str, Any] = {}
        if self.url.startswith("postgresql+asyncpg"):
            options = {
                "pool_timeout": timeouts.connect,  # all pooled connections stuck: fail, do not queue for 30 s
                "connect_args": {
                    "timeout": timeouts.connect,
                    "command_timeout": timeouts.statement,
                    "server_settings": {"statement_timeout": timeouts.server_statement_timeout},
                },
            }
        elif self.url.startswith("sqlite"):
            options = {"connect_args": {"timeout": timeouts.statement}}  # SQLite's busy timeout
        # hide_parameters: a failed statement's error (logged) never carries a secret or a subject's value
        self.engine: AsyncEngine = create_async_engine(self.url, hide_parameters=True, **options)
        database = self.engine.url.database
        # a file database: the audit log's own writer (an in-memory one exists once per connection)
        self._sqlite_file = database if self.kind == "sqlite" and database not in (None, "", ":memory:") else None
        self._sqlite_audit = SQLiteAuditWriter(database, busy_timeout=timeouts.statement) if self._sqlite_file else None
        self._claim: int | None = None  # the SQLite lock file's descriptor while this gateway holds it
        # PostgreSQL: the consent clock's own connection (read before every guarded request: no pool
        # checkout, no statement handling on the way), opened at its first read
        self._clock_connection: Any = None
        self._clock_lock = asyncio.Lock()

    @property
    def kind(self) -> str:
        return self.engine.dialect.name

    @property
    def lock_path(self) -> str | None:
        """The lock file next to a SQLite database file (None for PostgreSQL and in-memory SQLite)."""
        return f"{self._sqlite_file}.gateway-lock" if self._sqlite_file else None

    def claim(self) -> None:
        """Make this gateway the only one on a SQLite file, for as long as the store is open; raises
        StoreInUse when another gateway (any process) holds it. PostgreSQL: nothing to claim.

        An exclusive `flock` on a lock file next to the database: the kernel drops it when the
        process ends, however it ends, so a crashed gateway never leaves a stale lock behind."""
        path = self.lock_path
        if path is None or self._claim is not None:
            return
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise StoreInUse(
                f"another Citygate gateway already serves the SQLite store {self._sqlite_file} (it holds {path}): "
                "SQLite is for one gateway process; use PostgreSQL for several replicas"
            ) from None
        except OSError:
            os.close(descriptor)
            raise
        self._claim = descriptor

    def release(self) -> None:
        """Let another gateway claim the SQLite file (closing the store does it too)."""
        if self._claim is not None:
            os.close(self._claim)  # closing the descriptor drops the flock
            self._claim = None

    async def create_tables(self, tables: MetaData) -> None:
        """Create the tables of `tables` (a stage's own, beside the store's) where missing. On
        PostgreSQL under `create`'s advisory lock: replicas, or the worker processes of one
        `serve --workers N`, starting together must not race to CREATE TABLE (the loser's start
        failed with a unique violation in pg_type)."""
        async with self.engine.begin() as connection:
            await self._lock_creation(connection)
            await connection.run_sync(tables.create_all)

    async def _lock_creation(self, connection: Any) -> None:
        """On PostgreSQL, hold the creation lock until `connection`'s transaction ends."""
        if self.kind == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK})

    async def create(self) -> None:
        if self.kind == "sqlite":
            # WAL: readers never wait for the audit log's writer; every commit is still synced
            async with self.engine.connect() as connection:
                await connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        async with self.engine.begin() as connection:
            # replicas starting together: one creates, the others then find everything there
            await self._lock_creation(connection)
            await connection.run_sync(metadata.create_all)
            for table in _APPEND_ONLY:
                for statement in self._append_only_ddl(table):
                    await connection.execute(text(statement))
            if self.kind == "postgresql":
                for statement in _NOTIFY_DDL:
                    await connection.execute(text(statement))
            head = (await connection.execute(select(audit_head.c.seq).where(audit_head.c.id == 1))).first()
            if head is None:
                await connection.execute(insert(audit_head).values(id=1, seq=0, hash=GENESIS_HASH))

    def _append_only_ddl(self, table: str) -> list[str]:
        if self.kind == "sqlite":
            return [
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
            ]
        if self.kind == "postgresql":
            return [
                "CREATE OR REPLACE FUNCTION citygate_append_only() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END; $$ LANGUAGE plpgsql",
                f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION citygate_append_only()",
            ]
        return []

    async def ping(self) -> None:
        """A cheap query; raises when the store does not answer (within its timeouts)."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self._sqlite_audit is not None:
            await self._sqlite_audit.close()
        if self._clock_connection is not None:
            self._clock_connection.terminate()
            self._clock_connection = None
        await self.engine.dispose()
        self.release()

    # -- replicas (PostgreSQL) -------------------------------------------------------------------

    def listen_dsn(self) -> str:
        """The URL for a plain asyncpg connection of its own (the change listener's)."""
        return self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def notify(self, payload: dict[str, Any]) -> None:
        """Tell every replica listening on CHANGES_CHANNEL (PostgreSQL; nothing on SQLite)."""
        if self.kind != "postgresql":
            return
        async with self.engine.begin() as connection:
            await connection.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANGES_CHANNEL, "payload": orjson.dumps(payload).decode()},
            )

    # -- partners --------------------------------------------------------------------------------

    async def add_partner(self, name: str, key: str) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                insert(partners).values(name=name, key_hash=key_hash(key), created_at=datetime.now(UTC))
            )

    async def partner_for_key(self, key: str) -> str | None:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(select(partners.c.name).where(partners.c.key_hash == key_hash(key)))
            ).first()
        return row[0] if row else None

    async def partner_names(self) -> list[str]:
        async with self.engine.connect() as connection:
            return [r[0] for r in await connection.execute(select(partners.c.name).order_by(partners.c.name))]

    async def partner_list(self) -> list[tuple[str, datetime]]:
        """(name, created_at) of every partner, by name; never their key hashes."""
        async with self.engine.connect() as connection:
            return [
                (r.name, r.created_at)
                for r in await connection.execute(
                    select(partners.c.name, partners.c.created_at).order_by(partners.c.name)
                )
            ]

    async def revoke_partner(self, name: str) -> bool:
        """Forget a partner and its key (False when there was none): its next admin request is
        refused, on every replica, as keys are looked up here on each request. Its connectors stay."""
        async with self.engine.begin() as connection:
            result = await connection.execute(delete(partners).where(partners.c.name == name))
        return bool(result.rowcount)

    async def rotate_partner_key(self, name: str, key: str) -> bool:
        """Replace a partner's key (False when there is no such partner): the old one is refused from now on."""
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(partners).where(partners.c.name == name).values(key_hash=key_hash(key))
            )
        return bool(result.rowcount)

    # -- connectors ------------------------------------------------------------------------------

    async def connectors(self) -> list[ConnectorRow]:
        async with self.engine.connect() as connection:
            rows = (await connection.execute(select(connectors).order_by(connectors.c.name))).all()
            secrets: dict[str, dict[str, str]] = {}
            for secret in await connection.execute(select(connector_secrets)):
                secrets.setdefault(secret.connector, {})[secret.name] = secret.value
            return [
                ConnectorRow(
                    r.name, r.owner, orjson.loads(r.manifest), r.sdl, r.version, r.updated_at, secrets.get(r.name, {})
                )
                for r in rows
            ]

    async def put_connector(
        self, name: str, owner: str, manifest: dict[str, Any], sdl: str, *, secrets: Mapping[str, str] | None = None
    ) -> int:
        """Store a connector; `secrets` (name -> value), when given, replace all of its stored ones
        in the same transaction (None keeps them)."""
        now = datetime.now(UTC)
        async with self.engine.begin() as connection:
            if secrets is not None:
                await connection.execute(delete(connector_secrets).where(connector_secrets.c.connector == name))
                if secrets:
                    await connection.execute(
                        insert(connector_secrets),
                        [{"connector": name, "name": key, "value": _Unlogged(value)} for key, value in secrets.items()],
                    )
            current = (await connection.execute(select(connectors.c.version).where(connectors.c.name == name))).first()
            if current is None:
                version = 1
                await connection.execute(
                    insert(connectors).values(
                        name=name,
                        owner=owner,
                        manifest=orjson.dumps(manifest).decode(),
                        sdl=sdl,
                        version=version,
                        updated_at=now,
                    )
                )
            else:
                version = current[0] + 1
                await connection.execute(
                    update(connectors)
                    .where(connectors.c.name == name)
                    .values(
                        owner=owner, manifest=orjson.dumps(manifest).decode(), sdl=sdl, version=version, updated_at=now
                    )
                )
        return version

    async def delete_connector(self, name: str) -> bool:
        async with self.engine.begin() as connection:
            await connection.execute(delete(connector_secrets).where(connector_secrets.c.connector == name))
            result = await connection.execute(delete(connectors).where(connectors.c.name == name))
        return bool(result.rowcount)

    # -- recorded usage ---------------------------------------------------------------------------

    async def add_usage(
        self, counts: Mapping[tuple[str, str, str], int], coordinates: Mapping[str, Iterable[str]]
    ) -> None:
        """Add `counts` ((day, client, operation) -> requests) to the stored ones and record the
        `coordinates` of operations (operation -> coordinates; an operation's are written once)."""
        dialect_insert = postgresql_insert if self.kind == "postgresql" else sqlite_insert
        async with self.engine.begin() as connection:
            rows = [
                {"operation": operation, "coordinate": coordinate}
                for operation, used in coordinates.items()
                for coordinate in used
            ]
            for start in range(0, len(rows), 1000):
                await connection.execute(
                    dialect_insert(usage_coordinates).on_conflict_do_nothing(), rows[start : start + 1000]
                )
            if counts:
                statement = dialect_insert(usage_counts)
                statement = statement.on_conflict_do_update(
                    index_elements=[usage_counts.c.day, usage_counts.c.client, usage_counts.c.operation],
                    set_={"count": usage_counts.c.count + statement.excluded.count},
                )
                # one order for every writer (replicas flushing at once take row locks alike)
                await connection.execute(
                    statement,
                    [
                        {"day": day, "client": client, "operation": operation, "count": count}
                        for (day, client, operation), count in sorted(counts.items())
                    ],
                )

    async def usage_of(self, coordinates: Iterable[str], since: str) -> list[tuple[str, str, str, int]]:
        """(coordinate, client, operation, requests) for every operation recorded on or after the
        day `since` (ISO date) that selects one of `coordinates`."""
        wanted = sorted(set(coordinates))
        found: list[tuple[str, str, str, int]] = []
        async with self.engine.connect() as connection:
            for start in range(0, len(wanted), 500):
                query = (
                    select(
                        usage_coordinates.c.coordinate,
                        usage_counts.c.client,
                        usage_counts.c.operation,
                        func.sum(usage_counts.c.count),
                    )
                    .join(usage_counts, usage_counts.c.operation == usage_coordinates.c.operation)
                    .where(usage_coordinates.c.coordinate.in_(wanted[start : start + 500]), usage_counts.c.day >= since)
                    .group_by(usage_coordinates.c.coordinate, usage_counts.c.client, usage_counts.c.operation)
                )
                found += [(r[0], r[1], r[2], int(r[3])) for r in await connection.execute(query)]
        return found

    async def purge_usage(self, before: str) -> None:
        """Forget the counts of days before `before` (ISO date), and the coordinates of operations no count names any more."""
        async with self.engine.begin() as connection:
            await connection.execute(delete(usage_counts).where(usage_counts.c.day < before))
            await connection.execute(
                delete(usage_coordinates).where(usage_coordinates.c.operation.not_in(select(usage_counts.c.operation)))
            )

    # -- settings ------------------------------------------------------------------------------------

    async def setting(self, name: str, default_factory) -> str:
        """A stored setting, created once with `default_factory()` (first writer wins, also when
        several replicas start at once: the losers' inserts do nothing and they read the winner's)."""
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(settings.c.value).where(settings.c.name == name))).first()
        if row is not None:
            return row[0]
        dialect_insert = postgresql_insert if self.kind == "postgresql" else sqlite_insert
        statement = (
            dialect_insert(settings)
            .values(name=name, value=default_factory())
            .on_conflict_do_nothing(index_elements=[settings.c.name])
        )
        async with self.engine.begin() as connection:
            await connection.execute(statement)
            return (await connection.execute(select(settings.c.value).where(settings.c.name == name))).scalar_one()

    # -- open data: privacy budgets and released values ----------------------------------------------

    async def open_data_release(
        self, recipient: str, period: str, question: str | None, epsilon: float, limit: float, value: Any
    ) -> tuple[str, Any, float | None]:
        """Release `value` (already noisy) to `recipient` for `question` in `period`, charging
        `epsilon` to its budget of `limit`, in one transaction: ("released", value, spent);
        ("cached", the value released before, None) when the question was answered in the period
        (nothing charged; also when another replica answers it at the same moment: the unique key
        makes the second writer wait and then find the first's row); ("exhausted", None, spent)
        when the budget cannot pay (nothing stored). A None question is never cached."""
        dialect_insert = postgresql_insert if self.kind == "postgresql" else sqlite_insert
        released = open_data_releases.c
        wanted = (released.recipient == recipient, released.period == period, released.question == question)
        if question is not None:
            async with self.engine.connect() as connection:
                row = (await connection.execute(select(released.value).where(*wanted))).first()
            if row is not None:
                return "cached", orjson.loads(row[0]), None
        try:
            async with self.engine.begin() as connection:
                if question is not None:
                    stored = await connection.execute(
                        dialect_insert(open_data_releases)
                        .values(
                            recipient=recipient,
                            period=period,
                            question=question,
                            value=orjson.dumps(value).decode(),
                            epsilon=epsilon,
                            released_at=datetime.now(UTC),
                        )
                        .on_conflict_do_nothing()
                    )
                    if not stored.rowcount:
                        raise _AnsweredMeanwhile
                await connection.execute(
                    dialect_insert(open_data_budgets)
                    .values(recipient=recipient, period=period, spent=0.0)
                    .on_conflict_do_nothing()
                )
                budgets = open_data_budgets.c
                # the check and the charge in one statement: concurrent charges queue on the row
                # and each sees the others' spending (PostgreSQL re-reads the row it waited for)
                charged = await connection.execute(
                    update(open_data_budgets)
                    .where(
                        budgets.recipient == recipient,
                        budgets.period == period,
                        budgets.spent + epsilon <= limit + 1e-9,
                    )
                    .values(spent=budgets.spent + epsilon)
                    .returning(budgets.spent)
                )
                spent = charged.scalar_one_or_none()
                if spent is None:
                    raise _Exhausted
        except _AnsweredMeanwhile:
            async with self.engine.connect() as connection:
                return (
                    "cached",
                    orjson.loads((await connection.execute(select(released.value).where(*wanted))).scalar_one()),
                    None,
                )
        except _Exhausted:
            return "exhausted", None, await self.open_data_spent(recipient, period)
        return "released", value, float(spent)

    async def open_data_spent(self, recipient: str, period: str) -> float:
        """The epsilon `recipient` spent in `period` (0 when nothing)."""
        budgets = open_data_budgets.c
        async with self.engine.connect() as connection:
            spent = (
                await connection.execute(
                    select(budgets.spent).where(budgets.recipient == recipient, budgets.period == period)
                )
            ).scalar()
        return float(spent or 0.0)

    # -- the consent ledger -----------------------------------------------------------------------

    async def append_consent_event(self, event: dict[str, Any]) -> None:
        row = {**event, "categories": orjson.dumps(list(event["categories"])).decode()}
        async with self.engine.begin() as connection:
            if self.kind == "postgresql":
                # one appender at a time, until its commit: seq order is commit order, so a replica
                # that has seen seq N never misses an event numbered below N committing later
                await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CONSENT_APPEND_LOCK})
            await connection.execute(insert(consent_events).values(**row))

    async def consent_clock(self) -> int:
        """The consent clock: the highest seq of the ledger's events (0 when there is none)."""
        async with self.engine.connect() as connection:
            return int((await connection.execute(_CONSENT_CLOCK)).scalar_one())

    async def consent_changes_since(self, seen: int, limit: int) -> list[tuple[int, str]]:
        """(seq, subject) of the events after `seen`, oldest first, at most `limit`: one query on
        the primary key's index, the per-request read of the consent clock on PostgreSQL."""
        if self.kind != "postgresql":
            raise NotImplementedError(
                "the consent clock is PostgreSQL's: a SQLite store has one gateway, whose ledger sees every change"
            )
        # a connection of its own, the driver's own call: this runs before every guarded request,
        # where a pool checkout and SQLAlchemy's statement handling cost 2.5 times the CPU of the
        # query itself (docs/benchmarks.md, "Replicas")
        async with self._clock_lock:
            connection = self._clock_connection
            try:
                if connection is None or connection.is_closed():
                    connection = self._clock_connection = await self._connect_clock()
                rows = await connection.fetch(_CONSENT_CHANGES_SQL, seen, limit, timeout=self.timeouts.statement)
            except BaseException:
                if connection is not None:
                    connection.terminate()  # in an unknown state: the next read opens another
                self._clock_connection = None
                raise
        return [(row[0], row[1]) for row in rows]

    async def _connect_clock(self):
        import asyncpg

        timeouts = self.timeouts
        return await asyncpg.connect(
            self.listen_dsn(),
            timeout=timeouts.connect,
            command_timeout=timeouts.statement,
            server_settings={
                "application_name": "citygate-clock",
                "statement_timeout": timeouts.server_statement_timeout,
            },
        )

    async def consent_events_for(
        self, subjects: list[str], recipient: str | None, purpose: str | None
    ) -> list[dict[str, Any]]:
        """Events for these subjects (and recipient and purpose when given), oldest first."""
        query = select(consent_events).where(consent_events.c.subject.in_(subjects)).order_by(consent_events.c.seq)
        if recipient is not None:
            query = query.where(consent_events.c.recipient == recipient)
        if purpose is not None:
            query = query.where(consent_events.c.purpose == purpose)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [{**row, "categories": orjson.loads(row["categories"])} for row in rows]

    # -- the audit log ----------------------------------------------------------------------------

    async def append_audit(self, entries: list[dict[str, Any]], chain) -> None:
        """Append entries after the chain head, in one transaction; `chain(row)` hashes a row. The
        entries are completed in place (seq, prev_hash, hash)."""
        if self._sqlite_audit is not None:
            await self._sqlite_audit.append(entries, chain)
            return
        async with self.engine.begin() as connection:
            query = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
            if self.kind == "postgresql":
                query = query.with_for_update()  # replicas append one after the other
            seq, previous = link(entries, *(await connection.execute(query)).one(), chain)
            await connection.execute(insert(audit_log), entries)
            await connection.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=previous))

    async def audit_entries(self, subject: str | None = None, limit: int | None = None, newest_first: bool = False):
        query = select(audit_log).order_by(audit_log.c.seq.desc() if newest_first else audit_log.c.seq)
        if subject is not None:
            query = query.where(audit_log.c.subject == subject)
        if limit is not None:
            query = query.limit(limit)
        async with self.engine.connect() as connection:
            return [dict(row) for row in (await connection.execute(query)).mappings().all()]

    async def audit_chain_head(self) -> tuple[int, str]:
        async with self.engine.connect() as connection:
            seq, head = (
                await connection.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1))
            ).one()
        return seq, head


# The trusted documents' queries, for the gateway and the CLI (they need Store, defined above).
from ._documents import DocumentConflict as DocumentConflict  # noqa: E402
from ._documents import StoredDocument as StoredDocument  # noqa: E402
from ._documents import TrustedDocument as TrustedDocument  # noqa: E402
from ._documents import document_by_id as document_by_id  # noqa: E402
from ._documents import document_by_text_hash as document_by_text_hash  # noqa: E402
from ._documents import documents_of as documents_of  # noqa: E402
from ._documents import put_documents as put_documents  # noqa: E402
