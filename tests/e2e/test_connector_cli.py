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
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


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
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--connectors",
            str(connectors),
            "--store",
            f"sqlite:///{tmp_path / 'g.db'}",
            "--policy",
            str(policy),
            "--port",
            str(port),
        ],
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
    (folder / "manifest.yaml").write_text(
        f"name: weather\nowner: meteo\nkind: subgraph\nurl: {weather.url('weather')}\ntimeout: 5\n"
    )
    validated = citygate("connector", "validate", str(folder), key=meteo_key, url=gateway)
    assert validated.returncode == 0, validated.stderr
    assert "valid" in validated.stderr

    registered = citygate("connector", "register", str(folder), key=meteo_key, url=gateway)
    assert registered.returncode == 0, registered.stderr
    answer = httpx.post(
        f"{gateway}/graphql", json={"query": '{ district(code: "75105") { name temperature population } }'}
    ).json()
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
    (folder / "manifest.yaml").write_text(
        "name: sneaky\nowner: meteo\nkind: subgraph\nurl: http://169.254.169.254/graphql\n"
    )
    refused = citygate("connector", "register", str(folder), key=meteo_key, url=gateway)
    assert refused.returncode == 1
    assert "UPSTREAM_URL_REFUSED" in refused.stderr and "metadata" in refused.stderr
    folder_connector = citygate("connector", "remove", "city", key=OPERATOR_KEY, url=gateway)
    assert folder_connector.returncode == 1 and "CONNECTOR_IN_FOLDER" in folder_connector.stderr


def one_line(text: str) -> str:
    return " ".join(text.split())


SPOTS_SDL = """extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])

type Query {
  spot(id: ID!): Spot
}

type Spot @key(fields: "nope") {
  id: ID!
}
"""
CLASHING_SDL = """extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])

type District @key(fields: "code") {
  code: String!
  name: Int
}
"""


def test_errors_keep_the_subgraph_name_and_say_whose_sdl_a_location_is_in(gateway, tmp_path):
    parkr_key = citygate("partner", "add", "parkr", key=OPERATOR_KEY, url=gateway).stdout.strip()
    folder = tmp_path / "parking"
    folder.mkdir()
    (folder / "manifest.yaml").write_text(
        "name: parking\nowner: parkr\nkind: subgraph\nurl: http://127.0.0.1:9/graphql\nsdl_file: schema.graphql\n"
    )

    # a problem in the partner's own SDL: `[parking]` as written (not eaten as markup), at its file's line
    (folder / "schema.graphql").write_text(SPOTS_SDL)
    line = SPOTS_SDL.splitlines().index('type Spot @key(fields: "nope") {') + 1
    column = SPOTS_SDL.splitlines()[line - 1].index("@key") + 1
    own = citygate("connector", "validate", str(folder), key=parkr_key, url=gateway)
    assert own.returncode == 1
    assert "KEY_INVALID_FIELDS [parking]:" in one_line(own.stderr)
    assert f"at {folder / 'schema.graphql'}:{line}:{column}" in one_line(own.stderr)

    # a clash with the city's field: its location is in the city's SDL, and says so
    (folder / "schema.graphql").write_text(CLASHING_SDL)
    clash = citygate("connector", "validate", str(folder), key=parkr_key, url=gateway)
    assert clash.returncode == 1
    error_lines = [text for text in clash.stderr.splitlines() if text.startswith("error ")]
    sharing = next(text for text in error_lines if "INVALID_FIELD_SHARING" in text)
    assert sharing.startswith("error INVALID_FIELD_SHARING [city]:")
    assert "in the SDL of city (another connector's, not yours)" in sharing and "schema.graphql" not in sharing


def test_serve_names_an_unset_variable_of_a_folder_manifest(tmp_path):
    # the repository's own folder, as docs/operators.md first served it: its partners' urls need
    # CITYGATE_DEMO_URL, which only `citygate demo` sets
    environment = {key: value for key, value in os.environ.items() if key != "CITYGATE_DEMO_URL"}
    started = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--connectors",
            str(ROOT / "connectors"),
            "--store",
            f"sqlite:///{tmp_path / 'g.db'}",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, "CITYGATE_OPERATOR_KEY": OPERATOR_KEY},
    )
    assert started.returncode == 1
    assert "Traceback" not in started.stderr
    problems = [text for text in started.stderr.splitlines() if text.startswith("connector ")]
    assert problems and all(
        "environment variable CITYGATE_DEMO_URL is not set (used in the url)" in text for text in problems
    )
    assert {text.split()[1] for text in problems} == {"bikes", "dining", "neighbourhood", "parking"}
