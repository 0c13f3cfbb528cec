"""`citygate serve --connectors` and the `citygate connector` / `partner` commands, as processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_serve import wait_until_ready
from tests.e2e.weather import schema as weather_schema
from tests.world.server import WorldServer, free_port

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_KEY = "cgo_cli-test-operator-key-not-a-secret"


def citygate(*args: str, key: str | None = None, url: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "CITYGATE_URL": url}
    if key is not None:
        env["CITYGATE_KEY"] = key
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture
def weather():
    server = WorldServer({"weather": weather_schema}).start()
    yield server
    server.stop()


@pytest.fixture
def gateway(tmp_path):
    connectors = tmp_path / "connectors"
    shutil.copytree(ROOT / "connectors" / "city", connectors / "city")  # one in-process connector to start with
    policy = tmp_path / "policy.yaml"
    policy.write_text("registry:\n  allow_upstreams: ['127.0.0.0/8']\n")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--connectors", str(connectors), "--store", f"sqlite:///{tmp_path / 'g.db'}", "--policy", str(policy), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "CITYGATE_OPERATOR_KEY": OPERATOR_KEY},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/readyz", process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_partners_register_list_and_remove_connectors_with_the_cli(gateway, weather, tmp_path):
    added = citygate("partner", "add", "meteo", key=OPERATOR_KEY, url=gateway)
    assert added.returncode == 0, added.stderr
    meteo_key = added.stdout.strip()
    assert meteo_key.startswith("cgp_")

    folder = tmp_path / "weather"
    folder.mkdir()
    (folder / "manifest.yaml").write_text(f"name: weather\nowner: meteo\nkind: subgraph\nurl: {weather.url('weather')}\ntimeout: 5\n")
    validated = citygate("connector", "validate", str(folder), key=meteo_key, url=gateway)
    assert validated.returncode == 0, validated.stderr
    assert "valid" in validated.stderr

    registered = citygate("connector", "register", str(folder), key=meteo_key, url=gateway)
    assert registered.returncode == 0, registered.stderr
    answer = httpx.post(f"{gateway}/graphql", json={"query": '{ district(code: "75105") { name temperature population } }'}).json()
    assert answer == {"data": {"district": {"name": "Panthéon", "temperature": 14.5, "population": 56841}}}

    listed = citygate("connector", "list", key=meteo_key, url=gateway)
    assert listed.stdout.split("\t")[:5] == ["weather", "meteo", "subgraph", "v1", "registry"]
    everything = citygate("connector", "list", key=OPERATOR_KEY, url=gateway)
    assert [line.split("\t")[0] for line in everything.stdout.splitlines()] == ["city", "citygate", "weather"]

    removed = citygate("connector", "remove", "weather", key=meteo_key, url=gateway)
    assert removed.returncode == 0, removed.stderr
    gone = httpx.post(f"{gateway}/graphql", json={"query": '{ district(code: "75105") { temperature } }'}).json()
    assert gone["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_the_cli_explains_refusals(gateway, tmp_path):
    meteo_key = citygate("partner", "add", "meteo", key=OPERATOR_KEY, url=gateway).stdout.strip()
    folder = tmp_path / "sneaky"
    folder.mkdir()
    (folder / "manifest.yaml").write_text("name: sneaky\nowner: meteo\nkind: subgraph\nurl: http://169.254.169.254/graphql\n")
    refused = citygate("connector", "register", str(folder), key=meteo_key, url=gateway)
    assert refused.returncode == 1
    assert "UPSTREAM_URL_REFUSED" in refused.stderr and "metadata" in refused.stderr
    folder_connector = citygate("connector", "remove", "city", key=OPERATOR_KEY, url=gateway)
    assert folder_connector.returncode == 1 and "CONNECTOR_IN_FOLDER" in folder_connector.stderr
