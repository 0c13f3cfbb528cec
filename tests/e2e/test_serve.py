"""`citygate serve` and `citygate plan` as real processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.world.server import free_port

CITYGATE = [sys.executable, "-m", "gateway.cli"]


@pytest.fixture
def supergraph_file(world, tmp_path: Path) -> Path:
    path = tmp_path / "supergraph.graphql"
    path.write_text(world.supergraph())
    return path


def wait_until_ready(url: str, process: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"citygate exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("citygate did not become ready")


def test_serve_answers_over_http(supergraph_file, world):
    port = free_port()
    process = subprocess.Popen(
        [
            *CITYGATE,
            "serve",
            "--supergraph",
            str(supergraph_file),
            "--port",
            str(port),
            "--store",
            f"sqlite:///{supergraph_file.parent / 'g.db'}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/readyz", process)
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": '{ resident(id: "r2") { name district { name } bookings { cost } } }'},
            headers={"accept": "application/graphql-response+json"},
        )
        assert response.status_code == 200
        assert response.json() == {
            "data": {
                "resident": {"name": "Jean Valjean", "district": {"name": "Panthéon"}, "bookings": [{"cost": 2.5}]}
            }
        }
        assert world.traffic.counts["residents"] == 1 and world.traffic.counts["districts"] == 1
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_refuses_a_broken_supergraph(tmp_path):
    path = tmp_path / "broken.graphql"
    path.write_text("type Query { hello: String }")
    result = subprocess.run(
        [*CITYGATE, "serve", "--supergraph", str(path), "--port", str(free_port())], capture_output=True, timeout=30
    )
    assert result.returncode == 1
    assert b"no join spec" in result.stderr


def test_plan_prints_the_fetches(supergraph_file):
    result = subprocess.run(
        [*CITYGATE, "plan", "--supergraph", str(supergraph_file), "{ jobs { title postedBy { email } } }"],
        capture_output=True,
        timeout=30,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert lines == ["[0] jobs (query)", "[1] residents (entities) at jobs.@.postedBy after [0]"]
