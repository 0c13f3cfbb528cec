"""The `citygate` commands on bad input, as processes: one line on stderr, never a traceback,
exit code 2 for input that cannot be read (1 for input read and refused); listings as a table on
a terminal, tab-separated when piped; data printed through Rich markup keeps its brackets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_connector_cli import OPERATOR_KEY, citygate, gateway  # noqa: F401 (the fixture)
from tests.world.server import free_port

ROOT = Path(__file__).resolve().parents[2]
SUPERGRAPH = ROOT / "tests" / "world" / "supergraph.graphql"


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "COLUMNS": "60", **env}  # narrow: a message must not wrap either
    environment.pop("CITYGATE_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        cwd=cwd,
    )


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "bad.yaml").write_text("subgraphs: [unclosed\n")
    (tmp_path / "bad.graphql").write_text("type Query { a: Int")
    (tmp_path / "plain.graphql").write_text("type Query { a: Int }")
    (tmp_path / "unreachable.yaml").write_text(
        f"subgraphs:\n  a:\n    routing_url: http://127.0.0.1:{free_port()}/graphql\n"
        f"    schema:\n      subgraph_url: http://127.0.0.1:{free_port()}/graphql\n"
    )
    (tmp_path / "no-sdl").mkdir()
    (tmp_path / "no-sdl" / "manifest.yaml").write_text(
        "name: weather\nowner: meteo\nkind: subgraph\nurl: https://meteo.example/graphql\nsdl_file: gone.graphql\n"
    )
    (tmp_path / "bad-manifest").mkdir()
    (tmp_path / "bad-manifest" / "manifest.yaml").write_text("name: [weather\n")
    return tmp_path


NOWHERE = f"http://127.0.0.1:{free_port()}"
CASES = {
    "plan, variables not JSON": (
        ["plan", "{ residents { name } }", "--supergraph", str(SUPERGRAPH), "--variables", "{bad"],
        2,
        "--variables is not JSON",
    ),
    "plan, variables not an object": (
        ["plan", "{ residents { name } }", "--supergraph", str(SUPERGRAPH), "--variables", "[1]"],
        2,
        "must be a JSON object",
    ),
    "plan, supergraph not SDL": (["plan", "{ a }", "--supergraph", "bad.graphql"], 1, "(at 1:20)"),
    "plan, no supergraph file": (["plan", "{ a }", "--supergraph", "gone.graphql"], 2, "cannot read gone.graphql"),
    "plan, operation not GraphQL": (
        ["plan", "{ residents { name }", "--supergraph", str(SUPERGRAPH)],
        1,
        "Syntax Error",
    ),
    "compose, config not YAML": (["compose", "bad.yaml"], 2, "cannot read bad.yaml"),
    "compose, no config file": (["compose", "gone.yaml"], 2, "cannot read gone.yaml"),
    "compose, subgraph unreachable": (["compose", "unreachable.yaml"], 2, "cannot read the SDL of"),
    "connector, manifest not YAML": (
        ["connector", "validate", "bad-manifest", "--key", "k", "--gateway", NOWHERE],
        2,
        "cannot read bad-manifest",
    ),
    "connector, no SDL file": (
        ["connector", "register", "no-sdl", "--key", "k", "--gateway", NOWHERE],
        2,
        "gone.graphql",
    ),
    "connector, no folder": (
        ["connector", "validate", "gone", "--key", "k", "--gateway", NOWHERE],
        2,
        "cannot read gone",
    ),
    "connector list, gateway unreachable": (
        ["connector", "list", "--key", "k", "--gateway", NOWHERE],
        2,
        "cannot reach",
    ),
    "audit verify, no store file": (
        ["audit", "verify", "--store", "sqlite:///gone/citygate.db"],
        2,
        "there is no SQLite store",
    ),
    "audit head, store URL unreadable": (["audit", "head", "--store", "nonsense"], 2, "cannot read the audit log"),
    "serve, settings not YAML": (["serve", "--config", "bad.yaml"], 1, "bad.yaml is not valid YAML"),
    "serve, supergraph not SDL": (
        ["serve", "--supergraph", "bad.graphql", "--store", "sqlite:///served.db"],
        1,
        "cannot be served",
    ),
    "schema, no such client": (
        ["schema", "--supergraph", str(SUPERGRAPH), "--client", "[nosuch]"],
        2,
        "no client '[nosuch]' in the policy",
    ),
    "schema, resident without a client": (
        ["schema", "--supergraph", str(SUPERGRAPH), "--resident"],
        2,
        "need --client",
    ),
    "schema, owner not SUBGRAPH=OWNER": (
        ["schema", "--supergraph", str(SUPERGRAPH), "--owner", "parking"],
        2,
        "--owner takes SUBGRAPH=OWNER",
    ),
    "schema, supergraph not SDL": (
        ["schema", "--supergraph", "bad.graphql"],
        1,
        "bad.graphql cannot be served: the supergraph is not valid GraphQL SDL",
    ),
    "schema, SDL not a supergraph": (["schema", "--supergraph", "plain.graphql"], 1, "links no join spec"),
    "schema, no supergraph file": (["schema", "--supergraph", "gone.graphql"], 2, "cannot read gone.graphql"),
    "schema, policy not YAML": (
        ["schema", "--supergraph", str(SUPERGRAPH), "--policy", "bad.yaml"],
        2,
        "the policy file is invalid: bad.yaml is not valid YAML",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_an_exit_code(files, case):
    args, exit_code, said = CASES[case]
    result = run(*args, cwd=files)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    assert said in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == ""


def test_a_name_in_brackets_is_printed_as_written(tmp_path):
    (tmp_path / "bracketed.yaml").write_text(
        'subgraphs:\n  "[parking]":\n    routing_url: http://parking.example/graphql\n    schema:\n      sdl: "type Query { a: Int }"\n'
    )
    result = run("compose", "bracketed.yaml", cwd=tmp_path)
    assert result.returncode == 1 and "INVALID_SUBGRAPH_NAME: [[parking]]" in result.stderr, result.stderr


def _plain(text: str) -> str:
    """A terminal's text without its styles (the header is bold)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_listings_are_tables_on_a_terminal_and_tab_separated_when_piped(gateway):  # noqa: F811 (the fixture)
    piped = citygate("connector", "list", key=OPERATOR_KEY, url=gateway)
    assert piped.returncode == 0, piped.stderr
    assert [line.split("\t")[:5] for line in piped.stdout.splitlines()] == [
        ["city", "city", "python", "v0", "folder"],
        ["citygate", "operator", "python", "v0", "builtin"],
    ]
    env = {**os.environ, "CITYGATE_URL": gateway, "CITYGATE_KEY": OPERATOR_KEY, "TTY_COMPATIBLE": "1", "COLUMNS": "120"}
    table = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "connector", "list"], capture_output=True, text=True, timeout=60, env=env
    )
    assert table.returncode == 0, table.stderr
    lines = [line.split() for line in _plain(table.stdout).splitlines() if line.strip()]
    assert "\t" not in table.stdout and lines[0][:5] == ["name", "owner", "kind", "version", "source"]
    assert [line[:5] for line in lines[1:]] == [
        ["city", "city", "python", "v0", "folder"],
        ["citygate", "operator", "python", "v0", "builtin"],
    ]
    assert citygate("partner", "add", "meteo", key=OPERATOR_KEY, url=gateway).returncode == 0
    partners = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "partner", "list"], capture_output=True, text=True, timeout=60, env=env
    )
    rows = [line.split() for line in _plain(partners.stdout).splitlines() if line.strip()]
    assert rows[0] == ["name", "added", "connectors"] and rows[1][0] == "meteo" and rows[1][-1] == "-"
