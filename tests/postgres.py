"""A PostgreSQL database of a test module's own, created when missing and emptied for each use.

The suite runs on whatever server .ci/run finds or starts (127.0.0.1:5432, user postgres): a
database a module names must be made by the module, never assumed to be there."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg

from tests.workers import WORKER

SERVER = "postgresql://postgres@127.0.0.1:5432"


async def fresh_database(name: str) -> str:
    """`name` created if missing, its public schema dropped and made again; its URL."""
    admin = await asyncpg.connect(f"{SERVER}/postgres", timeout=10)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # another test process made it meanwhile
                await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    database = await asyncpg.connect(f"{SERVER}/{name}", timeout=10)
    try:
        await database.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await database.close()
    return f"{SERVER}/{name}"


@contextlib.asynccontextmanager
async def temporary_database(prefix: str) -> AsyncIterator[str]:
    """A new database named `prefix`_<worker>_<random> for one test (others use theirs meanwhile), dropped after."""
    name = f"{prefix}_{WORKER}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(f"{SERVER}/postgres", timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"{SERVER}/{name}"
    finally:
        admin = await asyncpg.connect(f"{SERVER}/postgres", timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
