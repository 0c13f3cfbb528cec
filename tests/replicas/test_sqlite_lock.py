"""SQLite is one process: a second gateway on the same SQLite file refuses to start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.app import registry_app
from gateway.policy import parse_policy
from gateway.store import Store, StoreInUse
from tests.world.server import AppServer, free_port

REFUSAL = "SQLite is for one gateway process; use PostgreSQL for several replicas"


def test_a_second_citygate_serve_on_the_same_sqlite_file_refuses_to_start(tmp_path):
    database = tmp_path / "city.db"
    first = registry_app(
        folder=None, store_url=f"sqlite:///{database}", policy=parse_policy({}), operator_key="cgo_lock-test-key"
    )
    server = AppServer(first.app, lifespan="on").start()
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "--store",
                f"sqlite:///{database}",
                "--port",
                str(free_port()),
            ],
            capture_output=True,
            timeout=60,
            env={"CITYGATE_OPERATOR_KEY": "cgo_lock-test-key", "PATH": "/usr/bin:/bin", "COLUMNS": "400"},
        )
    finally:
        server.stop()
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 1, output
    assert REFUSAL in output
    assert f"another Citygate gateway already serves the SQLite store {database}" in output
    assert "Traceback" not in output
    # the first one gone, the file can be served again
    again = Store(f"sqlite:///{database}")
    again.claim()
    again.release()


async def test_two_gateways_in_one_process_cannot_share_a_sqlite_file_and_the_lock_goes_with_the_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'city.db'}"
    first, second = Store(url), Store(url)
    first.claim()
    with pytest.raises(StoreInUse, match="use PostgreSQL for several replicas"):
        second.claim()
    await first.close()  # closing the store lets the file go
    second.claim()
    await second.close()
    # in-memory SQLite and PostgreSQL have nothing to claim
    Store("sqlite:///:memory:").claim()
