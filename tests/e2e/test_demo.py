"""`citygate demo`, the command behind `make demo`, as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.test_serve import wait_until_ready
from tests.world.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_demo_serves_the_connectors_behind_the_gateway(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--port", str(port), "--connectors", str(ROOT / "connectors")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,  # the demo keeps its store under ./.citygate
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/readyz", process)
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": '{ district(code: "75118") { name freeSpots openJobs { title } parkingSpots { street } } }'},
        )
        district = response.json()["data"]["district"]
        assert district["name"] == "Buttes-Montmartre"
        assert district["parkingSpots"] == [{"street": "Rue Lepic"}]
        assert [job["title"] for job in district["openJobs"]] == ["Water the balcony plants", "Bring groceries upstairs"]
        assert district["freeSpots"] == 1
        page = httpx.get(f"http://127.0.0.1:{port}/graphql", headers={"accept": "text/html"})
        assert "GraphiQL" in page.text
    finally:
        process.terminate()
        process.wait(timeout=10)
