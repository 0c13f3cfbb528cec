"""One settings file: the example runs as written, precedence, refusals at start, the docs, the logs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.settings import Settings, SettingsError, env_name, fields, flag_name, load_settings
from tests.world.server import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "citygate.yaml"
CITYGATE = [sys.executable, "-m", "gateway.cli"]
TECHNICIAN_KEY = "example-technician-key"  # examples/policy.yaml's, documented there


class Served:
    """`citygate serve ARGS` in `folder`, with `env` added to this environment; stderr kept."""

    def __init__(self, arguments: list[str], folder: Path, env: dict[str, str]) -> None:
        self.port = int(env["CITYGATE_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr = folder / f"stderr-{self.port}.txt"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CITYGATE_")}
        self.process = subprocess.Popen(
            [*CITYGATE, "serve", *arguments],
            cwd=folder,
            env={**environment, "PYTHONPATH": str(ROOT), **env},
            stdout=subprocess.DEVNULL,
            stderr=self.stderr.open("wb"),
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"citygate exited: {self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"citygate did not become ready: {self.log()}")

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def post(self, query: str, headers: dict[str, str] | None = None, variables: dict | None = None) -> httpx.Response:
        return httpx.post(
            self.url + "/graphql", json={"query": query, "variables": variables}, headers=headers or {}, timeout=30
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def refused_at_start(arguments: list[str], folder: Path, env: dict[str, str] | None = None) -> list[str]:
    """Runs `citygate serve ARGS`, which must refuse to start: its lines on stderr."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CITYGATE_")}
    result = subprocess.run(
        [*CITYGATE, "serve", *arguments],
        cwd=folder,
        env={**environment, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.strip()]


# -- the example, as written ----------------------------------------------------------------------


def test_the_example_settings_run_as_written(tmp_path: Path):
    """`citygate serve --config examples/citygate.yaml` from another folder: the policy and the
    connectors are found beside the file; the port comes from CITYGATE_PORT (over the file's)."""
    gateway = Served(
        ["--config", str(EXAMPLE)], tmp_path, {"CITYGATE_PORT": str(free_port()), "CITYGATE_OPERATOR_KEY": "cgo_test"}
    )
    try:
        public = gateway.post('{ district(code: "75118") { name } }')
        assert public.status_code == 200 and public.json() == {"data": {"district": {"name": "Buttes-Montmartre"}}}
        clients = gateway.post("{ clients { id } }").json()["data"]["clients"]
        assert {client["id"] for client in clients} == {
            "technician-console",
            "open-data-portal",
        }  # examples/policy.yaml
        # the technician's legal basis (examples/policy.yaml) opens a street issue's location; the
        # public gets it coarsened (the policy's masking) and told why
        query = "{ streetIssues(first: 1) { location { latitude } } }"
        technician = gateway.post(
            query, {"x-api-key": TECHNICIAN_KEY, "x-citygate-purpose": "street-maintenance"}
        ).json()
        public_view = gateway.post(query).json()
        assert "privacy" not in technician.get("extensions", {}), technician
        precise, coarse = (
            technician["data"]["streetIssues"][0]["location"]["latitude"],
            public_view["data"]["streetIssues"][0]["location"]["latitude"],
        )
        assert precise != coarse and round(precise, 2) == coarse
        assert public_view["extensions"]["privacy"]["withheld"], public_view
        assert (tmp_path / "citygate.db").is_file()  # store.url: relative to the working folder
    finally:
        gateway.stop()


def test_the_example_holds_every_setting():
    text = EXAMPLE.read_text()
    sections = {name: block for name, block in re.findall(r"(?ms)^(\w+):[^\n]*\n(.*?)(?=^\w|\Z)", text)}
    missing = []
    for key, _ in fields():
        section, _, name = key.rpartition(".")
        where = sections.get(section, "") if section else text
        if not re.search(rf"(?m)^\s*#?\s*{re.escape(name)}:", where):
            missing.append(key)
    assert missing == []
    load_settings(EXAMPLE, {})  # and it validates


# -- precedence and refusals ----------------------------------------------------------------------


def test_a_flag_wins_over_its_variable_which_wins_over_the_file(tmp_path: Path):
    config = tmp_path / "citygate.yaml"
    config.write_text("limits: {max_depth: 3, max_aliases: 7}\nserver: {port: 5000}\nlogging: {level: INFO}\n")
    settings = load_settings(config, {"CITYGATE_MAX_DEPTH": "4", "CITYGATE_PORT": "5001"}, {"limits.max_depth": 5})
    assert (settings.limits.max_depth, settings.limits.max_aliases, settings.server.port) == (5, 7, 5001)
    assert settings.logging.level == "info"
    assert settings.http_limits().document.max_depth == 5 and settings.http_limits().document.max_aliases == 7
    assert load_settings(None, {}) == Settings()  # nothing given: the defaults
    # empty variables are unset (the container image passes empty ones)
    assert load_settings(config, {"CITYGATE_PORT": "", "CITYGATE_POLICY": ""}).server.port == 5000


def test_the_old_variables_still_work(tmp_path: Path):
    settings = load_settings(
        None,
        {
            "CITYGATE_MAX_BODY_BYTES": "1024",
            "CITYGATE_STORE_STATEMENT_TIMEOUT": "2.5",
            "CITYGATE_REDIS_URL": "redis://127.0.0.1:6379/1",
            "CITYGATE_INTROSPECTION": "none",
            "CITYGATE_SUGGESTIONS": "on",
            "CITYGATE_MAX_HEADERS": "50",
        },
    )
    limits = settings.http_limits()
    assert (limits.max_body_bytes, limits.max_headers, limits.redis_url) == (1024, 50, "redis://127.0.0.1:6379/1")
    assert (limits.document.introspection, limits.document.suggestions) == ("none", "on")
    assert settings.store.statement_timeout == 2.5


def test_unknown_keys_and_bad_values_are_refused_one_line_each(tmp_path: Path):
    config = tmp_path / "citygate.yaml"
    config.write_text(
        "server:\n  port: 4000\n  colour: blue\nlimits:\n  max_depth: deep\nstore:\n  url: postgresql://citygate:hunter2@db/city\n"
        "  connect_timeout: 0\ncors:\n  allow_origins: [https://app.example/page]\ncolour: red\n"
    )
    lines = refused_at_start(
        ["--config", str(config), "--max-cost", "-1"], tmp_path, {"CITYGATE_INTROSPECTION": "everyone"}
    )
    source = str(config)
    assert sorted(lines) == sorted(
        [
            f"server.colour: unknown setting (from {source})",
            "server.introspection: Input should be 'all', 'clients' or 'none', not 'everyone' (from CITYGATE_INTROSPECTION)",
            f"store.connect_timeout: Input should be greater than 0, not 0 (from {source})",
            "limits.max_depth: Input should be a valid integer, unable to parse string as an integer, not 'deep' (from "
            + source
            + ")",
            "limits.max_cost: Input should be greater than or equal to 0, not -1 (from --max-cost)",
            "cors.allow_origins: 'https://app.example/page' is not an origin: scheme://host[:port], no path, no wildcard (or '*' alone) (from "
            + source
            + ")",
            f"colour: unknown setting (from {source})",
        ]
    )
    assert "hunter2" not in "\n".join(lines)


def test_a_file_that_cannot_be_read_or_is_not_settings(tmp_path: Path):
    assert refused_at_start(["--config", str(tmp_path / "nowhere.yaml")], tmp_path) == [
        f"cannot read the settings file {tmp_path / 'nowhere.yaml'}: No such file or directory"
    ]
    broken = tmp_path / "broken.yaml"
    broken.write_text("server: [port\n")
    assert refused_at_start(["--config", str(broken)], tmp_path)[0].startswith(f"{broken} is not valid YAML (line ")
    with pytest.raises(SettingsError, match="must hold a mapping"):
        (tmp_path / "list.yaml").write_text("- server\n")
        load_settings(tmp_path / "list.yaml", {})


def test_supergraph_and_connectors_together_are_refused(tmp_path: Path):
    lines = refused_at_start(["--supergraph", "s.graphql"], tmp_path, {"CITYGATE_CONNECTORS": "connectors"})
    assert lines == ["give either supergraph or connectors, not both"]


def test_several_workers_on_sqlite_are_refused(tmp_path: Path):
    lines = refused_at_start(["--config", str(EXAMPLE), "--workers", "2"], tmp_path)
    assert lines == [
        "server.workers: 2 worker processes need a PostgreSQL store; SQLite is for one gateway process (store.url is a SQLite file)"
    ]


# -- the docs -------------------------------------------------------------------------------------


def test_every_setting_is_in_the_operators_guide():
    """docs/operators.md's "Settings" table: one row per setting, with its variable and its option."""
    guide = (ROOT / "docs" / "operators.md").read_text()
    section = guide.split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = {match[0]: match[1] for match in re.findall(r"(?m)^\| `([a-z_.]+)` \| (.*)$", section)}
    expected = {key for key, _ in fields()}
    assert set(rows) == expected, (sorted(expected - set(rows)), sorted(set(rows) - expected))
    for key, info in fields():
        for name in (env_name(info), flag_name(info)):
            if name is not None:
                assert f"`{name}`" in rows[key], f"{key}: {name} is not in its row"


# -- the logs -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("logs")
    env = {
        "CITYGATE_PORT": str(free_port()),
        "CITYGATE_OPERATOR_KEY": "cgo_test",
        "CITYGATE_LOG_FORMAT": "json",
        "CITYGATE_LOG_LEVEL": "info",
    }
    gateway = Served(["--config", str(EXAMPLE)], folder, env)
    yield gateway
    gateway.stop()


def _json_lines(gateway: Served) -> list[dict]:
    return [json.loads(line) for line in gateway.log().splitlines() if line.startswith("{")]


def test_json_log_lines_and_the_access_log(logged):
    query = "query Who($id: ID!) { resident(id: $id) { name } }"
    answer = logged.post(query, {"x-api-key": TECHNICIAN_KEY, "x-request-id": "trace-42.a"}, {"id": "r0007"})
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "trace-42.a"
    generated = logged.post("{ __typename }", {"x-request-id": "not an id!"})
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])  # ill-formed: replaced
    time.sleep(0.5)  # the lines are written once the answers are sent
    lines = _json_lines(logged)
    assert lines and all({"time", "level", "logger", "message", "pid"} <= set(line) for line in lines)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]) for line in lines)
    access = [line for line in lines if line["logger"] == "citygate.access" and line["path"] == "/graphql"]
    mine = next(line for line in access if line["request_id"] == "trace-42.a")
    assert {k: mine[k] for k in ("method", "path", "status", "client")} == {
        "method": "POST",
        "path": "/graphql",
        "status": 200,
        "client": "technician-console",
    }
    assert mine["duration_ms"] >= 0
    assert any(
        line["request_id"] == generated.headers["x-request-id"] and line["client"] == "public" for line in access
    )
    text = logged.log()
    assert "r0007" not in text and TECHNICIAN_KEY not in text  # no variable, no key


def test_text_log_lines_carry_the_time(tmp_path: Path):
    env = {"CITYGATE_PORT": str(free_port()), "CITYGATE_OPERATOR_KEY": "cgo_test"}
    gateway = Served(["--config", str(EXAMPLE), "--log-format", "text"], tmp_path, env)
    try:
        gateway.post("{ __typename }", {"x-request-id": "text-1"})
        time.sleep(0.5)
    finally:
        gateway.stop()
    access = [line for line in gateway.log().splitlines() if "citygate.access" in line and "/graphql" in line]
    assert len(access) == 1
    assert re.match(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO citygate\.access: POST /graphql 200 [\d.]+ ms client=public \[request text-1\]$",
        access[0],
    )
