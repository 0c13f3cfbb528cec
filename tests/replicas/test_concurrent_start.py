"""Processes starting together on one PostgreSQL database (the worker processes of `citygate serve
--workers N`, or replicas): each creates the tables it needs where missing, and none of them fails
because another was creating the same table at the same moment."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import inspect

from gateway.consent._erasure import ErasureStore
from gateway.consent._receipts import SigningKeyStore
from gateway.store import Store
from tests.postgres import temporary_database

STARTS = 4  # processes starting at once, each with a store (a connection pool) of its own


@pytest.mark.parametrize("trial", range(3))
async def test_stores_starting_together_create_every_table_once_and_all_start(trial):
    async with temporary_database("citygate_start") as url:
        stores = [Store(url) for _ in range(STARTS)]
        try:
            # what a gateway's start does with its store, each step at the same moment in every
            # process: the store's own tables, then the stages' (erasure requests, signing keys)
            for starts in (
                [store.create() for store in stores],
                [ErasureStore(store).create() for store in stores]
                + [SigningKeyStore(store).rows() for store in stores],
            ):
                outcomes = await asyncio.gather(*starts, return_exceptions=True)
                assert [o for o in outcomes if isinstance(o, BaseException)] == []
            async with stores[0].engine.connect() as connection:
                tables = set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
            assert {"erasure_requests", "erasure_deliveries", "signing_keys", "audit_log"} <= tables
            keys = await SigningKeyStore(stores[0]).rows()
            assert len(keys) == 1  # one signing key, whoever created it first
        finally:
            for store in stores:
                await store.close()
