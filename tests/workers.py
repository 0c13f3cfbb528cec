"""Which pytest process this is, so that tests run in parallel (`pytest -n 2`, pytest-xdist) never share
a database or a Redis database with another worker.

xdist names its workers gw0, gw1, ... in PYTEST_XDIST_WORKER (set before any test module is imported);
a run without xdist is "main". Anything a test names itself (a PostgreSQL database, a Redis database
number) takes the worker's part, so two workers running at once use different ones; a fixed name would
let one worker's reset wipe what the other is reading."""

from __future__ import annotations

import os

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
WORKER_INDEX = int(WORKER[2:]) if WORKER.startswith("gw") and WORKER[2:].isdigit() else 0

# Redis databases 8-15 are the suite's: one per worker (the first eight workers; more share them round).
REDIS_URL = f"redis://127.0.0.1:6379/{8 + WORKER_INDEX % 8}"


def worker_database(name: str) -> str:
    """`name` as this worker's own PostgreSQL database: `name`_gw0, `name`_gw1, ... or `name`_main."""
    return f"{name}_{WORKER}"
