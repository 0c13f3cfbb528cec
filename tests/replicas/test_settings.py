"""Replicas starting at once agree on the settings the first of them creates (the pseudonymisation
key above all: two keys would give one resident two pseudonyms)."""

from __future__ import annotations

import asyncio
import secrets

from gateway.store import Store


async def test_replicas_starting_at_once_share_one_pseudonym_key(replica_database):
    stores = [Store(replica_database) for _ in range(8)]
    try:
        await asyncio.gather(*(store.create() for store in stores))
        keys = await asyncio.gather(
            *(store.setting("pseudonym_key", lambda: secrets.token_hex(32)) for store in stores)
        )
        assert len(set(keys)) == 1, keys  # one winner, read back by every other replica
        assert await stores[0].setting("pseudonym_key", lambda: "never used") == keys[0]
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_a_setting_is_created_once_on_sqlite(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'one.db'}")
    try:
        await store.create()
        first = await store.setting("pseudonym_key", lambda: "first")
        assert first == "first"
        assert await store.setting("pseudonym_key", lambda: "second") == "first"
    finally:
        await store.close()
