"""Every shell command of README.md and docs/operators.md, run as written.

The marker: a fenced ```sh block is run, command by command, in one `bash -eu` (a failing command
or an unset variable fails the test); a block preceded by `<!-- docs-test: skip (REASON) -->` is
not, and says why. The commands run in a folder of their own that holds the repository's files
they name (`.venv`, `connectors`, `examples`, the Makefile), so what they write stays there. A
`curl` to `/graphql` must answer data without errors.

What differs from a reader's shell, and why:
- `make demo` is a server: it is started in the background (`PORT` set to a free port, as
  `make demo PORT=...` documents) and the commands after it get the `export` lines it prints, as a
  reader pastes them. `make test` is skipped: it is what runs this test.
- docs/operators.md's gateway listens on 4000 as written; the test gives it a free port instead
  (every `4000` of the block), and stops what the block left running in the background.
- make must not install again, least of all into the repository's .venv from another folder: the
  folder's `.venv` links to the repository's files but has an installed marker of its own, newer
  than pyproject.toml, and `make -n` is asked first. `make test` has installed everything before
  this test runs (GraphiQL's files too; without them the demo is given an empty stand-in).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.world.server import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
OPERATORS = ROOT / "docs" / "operators.md"
_FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```", re.DOTALL | re.MULTILINE)
_SKIP = re.compile(r"<!-- docs-test: skip \((?P<reason>[^)]+)\) -->\s*$")
_SEPARATOR = "@@docs-test {}@@"
_EXPORT = re.compile(r"^\s*export (?P<name>[A-Z_][A-Z0-9_]*)=(?P<value>\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    document: str
    line: int
    commands: tuple[str, ...]
    skip: str | None  # the reason its marker gives


def commands(body: str) -> tuple[str, ...]:
    """The block's commands: continuation lines joined, blank and comment-only lines dropped."""
    found: list[str] = []
    pending = ""
    for line in body.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1]  # the shell drops backslash-newline, nothing else
            continue
        command = (pending + line).strip()
        pending = ""
        if command and not command.startswith("#"):
            found.append(command)
    return tuple(found)


def sh_blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        if match["info"].strip() != "sh":
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _SKIP.match(before)
        blocks.append(
            Block(
                path.name,
                text.count("\n", 0, match.start()) + 1,
                commands(match["body"]),
                marker["reason"] if marker else None,
            )
        )
    return blocks


def workspace(tmp_path: Path) -> Path:
    """A folder holding the repository's files the commands name (linked), for them to write in."""
    folder = tmp_path / "repository"
    folder.mkdir()
    for name in ("connectors", "examples", "schemas", "Makefile", "pyproject.toml"):
        if (ROOT / name).exists():
            (folder / name).symlink_to(ROOT / name)
    (folder / ".venv").mkdir()
    for entry in (ROOT / ".venv").iterdir():
        if entry.name != ".installed":
            (folder / ".venv" / entry.name).symlink_to(entry)
    (folder / ".venv" / ".installed").touch()
    (folder / ".citygate").mkdir()
    if (ROOT / ".citygate" / "graphiql" / "graphiql.min.js").is_file():
        (folder / ".citygate" / "graphiql").symlink_to(ROOT / ".citygate" / "graphiql")
    else:
        (folder / ".citygate" / "graphiql").mkdir()
        (folder / ".citygate" / "graphiql" / "graphiql.min.js").touch()
    return folder


def clean_environment() -> dict[str, str]:
    """This shell's environment without Citygate's variables: the documents must set what they use."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CITYGATE") and key not in ("PORT", "MAKEFLAGS")
    }


def run_block(
    block: Block, folder: Path, environment: dict[str, str], replace: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    """Run one block's commands in one `bash -eu`; (command, its output) each. Whatever the block
    left running in the background is stopped (its process group) once it is done."""
    lines = []
    for index, command in enumerate(block.commands):
        for old, new in (replace or {}).items():
            command = command.replace(old, new)
        lines += [command, f"printf '\\n{_SEPARATOR.format(index)}\\n'"]
    # files, not pipes: a server the block leaves in the background would hold a pipe open
    out, err = folder.parent / f"block-{block.line}.out", folder.parent / f"block-{block.line}.err"
    with out.open("w") as stdout_file, err.open("w") as stderr_file:
        process = subprocess.Popen(
            ["bash", "-eu", "-c", "\n".join(lines)],
            cwd=folder,
            env=environment,
            stdout=stdout_file,
            stderr=stderr_file,
            start_new_session=True,
        )
    try:
        process.wait(timeout=180)
    finally:
        with_group_stopped(process.pid)
    stdout, stderr = out.read_text(), err.read_text()
    assert process.returncode == 0, (
        f"{block.document}, block at line {block.line}: exit {process.returncode}\n{stdout}\n{stderr}"
    )
    outputs = re.split(r"\n@@docs-test \d+@@\n", stdout)
    return list(zip(block.commands, outputs, strict=False))


def with_group_stopped(group: int) -> None:
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(group, signal.SIGKILL)


def check_answers(results: list[tuple[str, str]]) -> int:
    """A curl to /graphql answered data without errors; the number of such answers checked."""
    checked = 0
    for command, output in results:
        if command.startswith("curl") and "/graphql" in command:
            answer = json.loads(output)
            assert answer.get("data") and "errors" not in answer, (command, answer)
            checked += 1
    return checked


def test_every_sh_block_runs_or_says_why_not():
    for path in (README, OPERATORS):
        text = path.read_text(encoding="utf-8")
        # a shell block under another name would escape this test
        assert not re.search(r"^```(bash|shell|console|zsh)\s*$", text, re.MULTILINE), path
        blocks = sh_blocks(path)
        assert any(block.skip is None for block in blocks), path
        assert all(block.commands for block in blocks)
        assert all(block.skip is None or block.skip.strip() for block in blocks)


def test_the_readme_commands_run_as_written(tmp_path):
    blocks = [block for block in sh_blocks(README) if block.skip is None]
    folder = workspace(tmp_path)
    environment = clean_environment()
    port = free_port()
    demo = None
    try:
        checked = 0
        for block in blocks:
            rest = []
            for command in block.commands:
                if command.startswith("make test"):
                    continue  # what runs this test
                if command.startswith("make demo"):
                    assert demo is None
                    demo = start_demo(command, folder, environment, port, tmp_path / "demo.log")
                    environment.update(exported(tmp_path / "demo.log"))
                else:
                    rest.append(command)
            if rest:
                checked += check_answers(
                    run_block(Block(block.document, block.line, tuple(rest), None), folder, environment)
                )
        assert demo is not None, "the README starts the demo"
        assert checked >= 3  # the open data, the resident's and Parkr's queries
        assert environment["CITYGATE_URL"] == f"http://127.0.0.1:{port}"
    finally:
        if demo is not None:
            with_group_stopped(demo.pid)
            demo.wait(timeout=15)


def start_demo(command: str, folder: Path, environment: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    environment = {**environment, "PORT": str(port)}
    planned = subprocess.run(
        ["make", "-n", *command.split("#")[0].split()[1:]],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert planned.returncode == 0 and "pip" not in planned.stdout and "npm" not in planned.stdout, (
        planned.stdout + planned.stderr
    )
    with log.open("w") as output:
        demo = subprocess.Popen(
            ["bash", "-eu", "-c", command],
            cwd=folder,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=environment,
        )
    deadline = time.monotonic() + 120
    while True:
        assert demo.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        try:
            if (
                httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
                and "export CITYGATE_URL=" in log.read_text()
            ):
                return demo
        except httpx.HTTPError:
            pass
        time.sleep(0.3)


def exported(log: Path) -> dict[str, str]:
    """The `export NAME=VALUE` lines the demo printed, as a reader pastes them."""
    variables = {match["name"]: match["value"] for match in _EXPORT.finditer(log.read_text())}
    assert "CITYGATE_URL" in variables and "PARKR_PARTNER_KEY" in variables, variables
    return variables


def test_the_operators_first_commands_run_as_written(tmp_path):
    blocks = [block for block in sh_blocks(OPERATORS) if block.skip is None]
    assert blocks
    folder = workspace(tmp_path)
    port = str(free_port())
    checked = 0
    for block in blocks:
        results = run_block(block, folder, clean_environment(), replace={"4000": port})
        checked += check_answers(results)
        for command, output in results:
            if command.startswith(".venv/bin/citygate partner add"):
                assert output.strip().startswith("cgp_"), output
            if command.startswith(".venv/bin/citygate audit head"):
                assert output.splitlines()[:2] == ["seq 0", f"hash {'0' * 64}"], output
    assert checked >= 1
    assert (folder / "citygate.db").is_file()  # the store is the block's, in its own folder


@pytest.mark.parametrize(
    "body, expected",
    [
        ("make demo   # a comment\n\n# only a comment\nmake test\n", ("make demo   # a comment", "make test")),
        ("curl -s $URL \\\n  -d '{}'\n", ("curl -s $URL   -d '{}'",)),
    ],
)
def test_commands_are_read_as_a_shell_reads_them(body, expected):
    assert commands(body) == expected
