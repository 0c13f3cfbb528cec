"""A store that hangs or cannot be reached: disclosures withheld within seconds, /readyz says so,
and `citygate serve` refuses to start in one line.

The gateway is `citygate serve` over the privacy world (tests/privacy), as a real process. A hung
PostgreSQL is a TCP proxy on loopback in front of the real one that, once told to hang, forwards
nothing more and answers no new connection. The PostgreSQL tests use a database of their own
(`citygate_http_edge`), never the one other tests share.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.http.edge import CITYGATE, Probe, ServeProcess
from tests.privacy import world
from tests.privacy.conftest import CLIENT_KEYS, Signer, connectors_folder, policy_document
from tests.workers import worker_database
from tests.world.server import WorldServer, free_port

OPERATOR_KEY = "cgo_store-failure-tests-not-a-secret"
TIMEOUTS = {
    "CITYGATE_STORE_CONNECT_TIMEOUT": "1",
    "CITYGATE_STORE_STATEMENT_TIMEOUT": "1",
    "CITYGATE_OPERATOR_KEY": OPERATOR_KEY,
}
DISCLOSING = "{ incidents { reporter { email } } }"  # the technician's legal basis: every answer is audited
# A hung store never answers: what these tests show is that the store's timeouts (1 s) end the
# wait. A client waits HANG seconds for the gateway (or a serve to exit), which a gateway waiting for
# the store would run into; the answer must come before CUT_OFF, over 8 times what the slowest
# (the hung PostgreSQL's, three timeouts) took at load 8 (3.6 s; 2.3 s idle), so load cannot break it
HANG = 120.0
CUT_OFF = 30.0
EDGE_DATABASE = worker_database("citygate_http_edge")


@pytest.fixture(scope="module")
def city_files(tmp_path_factory):
    server = WorldServer(world.SUBGRAPHS).start()
    directory = tmp_path_factory.mktemp("store-failures")
    signer = Signer(directory)
    folder = connectors_folder(directory / "connectors", server)
    policy = directory / "policy.yaml"
    policy.write_text(yaml.safe_dump(policy_document(signer.jwks_file)))
    yield directory, folder, policy
    server.stop()


def _serve(city_files, store_url: str) -> ServeProcess:
    world.reset()
    _directory, folder, policy = city_files
    return ServeProcess(["--connectors", str(folder), "--policy", str(policy), "--store", store_url], TIMEOUTS)


def _technician_asks(url: str, timeout: float = 15) -> tuple[dict, float]:
    started = time.monotonic()
    response = httpx.post(
        url + "/graphql",
        json={"query": DISCLOSING},
        headers={"x-api-key": CLIENT_KEYS["technician-console"]},
        timeout=timeout,
    )
    return response.json(), time.monotonic() - started


def _emails(answer: dict) -> list:
    return [incident["reporter"]["email"] for incident in answer["data"]["incidents"] if incident.get("reporter")]


def test_a_locked_sqlite_store_withholds_disclosures_within_its_busy_timeout(city_files, tmp_path: Path):
    database = tmp_path / "city.db"
    gateway = _serve(city_files, f"sqlite:///{database}")
    try:
        answer, _ = _technician_asks(gateway.url)
        assert "amelie@example.org" in _emails(answer)  # audited and disclosed while the store answers
        lock = sqlite3.connect(database, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # another writer holds the lock and never lets go
        try:
            with Probe(gateway.url) as probe:
                # answered while the lock is still held: the busy timeout (1 s) cut the wait off; a
                # gateway that waited for the lock would run into this client's HANG
                answer, seconds = _technician_asks(gateway.url, timeout=HANG)
            print(f"\nlocked SQLite store: the disclosing request withheld in {seconds:.2f} s")
            assert seconds < CUT_OFF, f"a disclosing request waited {seconds:.1f} s for the locked store"
            assert "amelie@example.org" not in _emails(answer)
            # the audit write failed (the store's timeout), so the disclosure was withheld
            assert {w["reason"] for w in answer["extensions"]["privacy"]["withheld"]} == {"audit-unavailable"}
            probe.assert_kept_answering()
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        answer, _ = _technician_asks(gateway.url)
        assert "amelie@example.org" in _emails(answer)  # the lock gone, disclosures are audited again
    finally:
        gateway.stop()


class StoreProxy:
    """A TCP proxy on loopback to a store; `hang()` makes it a store that accepts and never answers."""

    def __init__(self, upstream_port: int | None) -> None:
        self.upstream_port = upstream_port
        self.hung = upstream_port is None
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._held: list = []
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await server.serve_forever()

        self._serving = self._loop.create_task(serve())
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._serving)
        for writer in self._held:
            writer.close()
        self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._held.append(writer)
        if self.hung:
            return  # accepted, never answered
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._held.append(upstream_writer)

        async def pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                if self.hung:
                    continue  # swallowed: neither side hears from the other again
                target.write(data)
                await target.drain()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True)

    def hang(self) -> None:
        self.hung = True

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._serving.cancel)


def _postgres_up() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=0.5).close()
        return True
    except OSError:
        return False


async def _fresh_edge_database() -> None:
    import asyncpg

    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres", timeout=5)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", EDGE_DATABASE):
            await admin.execute(f"CREATE DATABASE {EDGE_DATABASE}")
    finally:
        await admin.close()
    own = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{EDGE_DATABASE}", timeout=5)
    try:
        await own.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await own.close()


@pytest.mark.skipif(not _postgres_up(), reason="no PostgreSQL on 127.0.0.1:5432")
def test_a_hung_postgresql_store_withholds_disclosures_quickly_and_readyz_says_so(city_files):
    asyncio.run(_fresh_edge_database())
    proxy = StoreProxy(5432)
    gateway = _serve(city_files, f"postgresql://postgres@127.0.0.1:{proxy.port}/{EDGE_DATABASE}")
    try:
        answer, _ = _technician_asks(gateway.url)
        assert "amelie@example.org" in _emails(answer)
        proxy.hang()
        time.sleep(2.1)  # past the cached readiness answer
        with Probe(gateway.url) as probe:
            # the proxy never answers again: only the store's timeouts (1 s) end the wait
            answer, seconds = _technician_asks(gateway.url, timeout=HANG)
            ready = httpx.get(gateway.url + "/readyz", timeout=HANG)
        print(f"\nhung PostgreSQL store: the disclosing request withheld in {seconds:.2f} s")
        assert seconds < CUT_OFF, f"a disclosing request waited {seconds:.1f} s for the hung store"
        assert "amelie@example.org" not in _emails(answer)
        assert {w["reason"] for w in answer["extensions"]["privacy"]["withheld"]} == {"audit-unavailable"}
        # the readiness check's own verdict, given when its wait (1 s) or the store's timeout ran out
        assert ready.status_code == 503 and ready.text.startswith("the store does not answer"), ready.text
        probe.assert_kept_answering()
        assert httpx.get(gateway.url + "/healthz").status_code == 200  # alive, not ready
    finally:
        gateway.stop()
        proxy.close()


def _serve_and_fail(store_url: str, seconds: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CITYGATE, "serve", "--store", store_url, "--port", str(free_port())],
        env={**TIMEOUTS, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=seconds,
    )


def test_serve_with_an_unreachable_store_exits_with_one_line():
    result = _serve_and_fail(f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/nowhere")
    assert result.returncode == 1
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "store" in lines[0], lines
    assert "Traceback" not in result.stderr and "serving" not in result.stdout + result.stderr
    assert "hunter2" not in result.stderr  # the URL is named without its password


def test_serve_with_a_store_that_never_answers_gives_up_in_one_line():
    proxy = StoreProxy(None)  # accepts, never answers
    try:
        started = time.monotonic()
        # a serve that waited for the store would run into HANG (subprocess.TimeoutExpired); how long
        # it took is mostly the interpreter's start (2.7 s idle, 11.6 s at load 8): printed, not asserted
        result = _serve_and_fail(f"postgresql://postgres@127.0.0.1:{proxy.port}/nowhere", seconds=HANG)
        took = time.monotonic() - started
        print(f"\nserve gave up on a store that never answers in {took:.2f} s (its connect timeout: 1 s)")
    finally:
        proxy.close()
    assert result.returncode == 1
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "store" in lines[0], lines
    assert "no answer within its timeouts (TimeoutError)" in lines[0], lines  # given up on its timeout
    assert "serving" not in result.stdout + result.stderr
