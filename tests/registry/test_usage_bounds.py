"""Recorded usage stays bounded when a client invents a new document per request."""

from __future__ import annotations

import sqlalchemy

from gateway import usage
from gateway.store import Store


async def test_new_operations_past_the_window_are_not_recorded(engine, tmp_path, monkeypatch):
    monkeypatch.setattr(usage, "_NEW_OPERATIONS_PER_FLUSH", 3)
    store = Store(f"sqlite:///{tmp_path / 'usage.db'}")
    await store.create()
    recorder = usage.UsageRecorder(store)
    try:
        schema = engine.model.api_schema
        for n in range(10):  # ten different documents: a new alias each
            recorder.record("public", engine.planner.prepare(f"{{ a{n}: __typename }}", None), schema)
        known = engine.planner.prepare("{ a0: __typename }", None)
        recorder.record("public", known, schema)  # an operation already taken is still counted
        await recorder.flush()
        async with store.engine.connect() as connection:
            counts = (await connection.execute(sqlalchemy.text("SELECT operation, count FROM usage_counts"))).all()
        assert len(counts) == 3 and sorted(count for _, count in counts) == [1, 1, 2]
        # the next window takes new operations again
        recorder.record("public", engine.planner.prepare("{ b: __typename }", None), schema)
        await recorder.flush()
        async with store.engine.connect() as connection:
            assert (await connection.execute(sqlalchemy.text("SELECT count(*) FROM usage_counts"))).scalar() == 4
    finally:
        await recorder.close()
        await store.close()
