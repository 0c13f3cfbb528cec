"""A gateway whose start fails closes what it opened: its composition worker, its HTTP client and
pool, the usage recorder, the store (a SQLite file is free for another gateway at once)."""

from __future__ import annotations

import multiprocessing

import pytest

from gateway import usage
from gateway.app import Gateway, registry_app
from gateway.store import Store
from tests.registry.conftest import LOOPBACK, OPERATOR_KEY


class StartRefused(Exception):
    pass


async def test_a_start_that_fails_after_the_worker_started_leaves_nothing_open(tmp_path):
    store_url = f"sqlite:///{tmp_path / 'failed-start.db'}"
    children_before = {process.pid for process in multiprocessing.active_children()}
    spawned: list[int] = []

    async def start_then_fail(gateway: Gateway) -> None:
        assert gateway.registry is not None
        await gateway.registry.warm_worker_soon()  # the composition worker process, spawned
        spawned.extend(p.pid for p in multiprocessing.active_children() if p.pid not in children_before)
        raise StartRefused("refused on purpose, once everything is open")

    gateway = registry_app(
        folder=None, store_url=store_url, policy=LOOPBACK, operator_key=OPERATOR_KEY, on_start=start_then_fail
    )
    with pytest.raises(StartRefused):
        async with gateway.app.router.lifespan_context(gateway.app):
            pytest.fail("the gateway served")
    assert spawned, "the worker was not spawned: the test proves nothing"
    alive = {process.pid for process in multiprocessing.active_children()}
    assert not alive & set(spawned)
    assert gateway.http_client.is_closed
    assert usage.current() is None
    another = Store(store_url)
    try:
        another.claim()  # refused (StoreInUse) if the failed gateway still held the file
    finally:
        await another.close()
