"""Helpers for the edge tests: `citygate serve` as a process, raw-socket attackers, a probe.

The attackers speak HTTP/1.1 over plain sockets because a well-behaved client library cannot be
slow, oversized or deaf on purpose; the probe is an ordinary client that must keep being answered
while they do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.world.server import free_port

CITYGATE = [sys.executable, "-m", "gateway.cli"]


class ServeProcess:
    """`citygate serve ...` on a free loopback port, with CITYGATE_* variables in its environment."""

    def __init__(self, arguments: list[str], env: dict[str, str], *, ready_path: str = "/readyz") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [*CITYGATE, "serve", *arguments, "--port", str(self.port)],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"citygate exited: {self.process.stderr.read().decode() if self.process.stderr else ''}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + ready_path, timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise AssertionError("citygate did not become ready")

    def rss_mb(self) -> float:
        return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{self.process.pid}/status").read_text())[1]) / 1024

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class Probe:
    """Asks the gateway something small every `every` seconds in a thread; records each answer."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    query: str = "{ __typename }"
    every: float = 0.02
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        self._wait_for(1)  # answered before the attack starts
        return self

    def __exit__(self, *_exc) -> None:
        self._wait_for(len(self.latencies) + 1)  # and once more after it
        self._stop.set()
        self._thread.join(timeout=10)

    def _wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 10
        while len(self.latencies) < count and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.005)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    # a GET query carries a CSRF-prevention header, as a browser's preflighted request would
                    response = client.get(
                        self.url + "/graphql",
                        params={"query": self.query},
                        headers={"apollo-require-preflight": "true", **self.headers},
                    )
                    self.statuses.append(response.status_code)
                except httpx.HTTPError as error:
                    self.failures.append(type(error).__name__)
                self.latencies.append(time.monotonic() - started)
                self._stop.wait(self.every)

    def assert_kept_answering(self, worst: float = 1.0) -> None:
        assert self.latencies, "the probe asked nothing"
        assert not self.failures and set(self.statuses) == {200}, (self.failures, sorted(set(self.statuses)))
        assert max(self.latencies) < worst, (
            f"the probe waited {max(self.latencies):.2f} s (median {statistics.median(self.latencies):.3f} s)"
        )


@dataclass
class Answer:
    status: int | None
    head: str
    body: bytes
    sent: int  # request bytes the server took before it answered or closed
    seconds: float
    closed: bool  # the server closed the connection after answering

    def header(self, name: str) -> str | None:
        match = re.search(rf"^{re.escape(name)}:\s*(.*?)\r?$", self.head, re.IGNORECASE | re.MULTILINE)
        return match[1] if match else None


def _read_answer(sock: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """What the server sends until it closes or `seconds` pass; and whether it closed."""
    sock.setblocking(True)
    sock.settimeout(seconds)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except TimeoutError:
        return data, False
    except ConnectionError:
        return data, True


def _parse(raw: bytes, sent: int, seconds: float, closed: bool) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.1 (\d{3})", head)
    return Answer(int(match[1]) if match else None, head.decode("latin-1"), body, sent, seconds, closed)


def stream_request(port: int, head: bytes, piece: bytes, total: int, *, wait: float = 5.0) -> Answer:
    """Sends `head`, then `piece` again and again up to `total` bytes, as fast as the server takes
    them, and stops when the server answers or closes."""
    sock = socket.create_connection(("127.0.0.1", port))
    started = time.monotonic()
    sock.sendall(head)
    sock.setblocking(False)
    sent = 0
    try:
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], wait)
            if readable or not writable:
                break
            sent += sock.send(piece)
    except OSError:
        pass
    raw, closed = _read_answer(sock, wait)
    sock.close()
    return _parse(raw, sent, time.monotonic() - started, closed)


def trickle_request(port: int, parts: list[bytes], every: float, *, wait: float = 10.0) -> Answer:
    """Sends `parts` one every `every` seconds (a slow sender); stops when the server answers or closes."""
    sock = socket.create_connection(("127.0.0.1", port))
    started = time.monotonic()
    sent = 0
    for part in parts:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sock.sendall(part)
        except OSError:
            break
        sent += len(part)
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            break
    raw, closed = _read_answer(sock, max(0.1, wait - (time.monotonic() - started)))
    sock.close()
    return _parse(raw, sent, time.monotonic() - started, closed)


def deaf_reader(port: int, request: bytes) -> socket.socket:
    """A connection that sends `request` and reads nothing (its receive buffer as small as allowed)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request)
    return sock


def read_all(sock: socket.socket, seconds: float = 10) -> tuple[int, bool]:
    """Everything still coming on `sock`: (bytes, whether the server reset the connection)."""
    sock.settimeout(seconds)
    received = 0
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return received, False
            received += len(chunk)
    except ConnectionResetError:
        return received, True
    except TimeoutError:
        return received, False


def post_head(
    path: str,
    *,
    length: int | None = None,
    chunked: bool = False,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1", "content-type: application/json"]
    if chunked:
        lines.append("transfer-encoding: chunked")
    if length is not None:
        lines.append(f"content-length: {length}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(size: int) -> bytes:
    return b"%x\r\n" % size + b" " * size + b"\r\n"


def world_to_serve(world_server, directory: Path, client_key: str, **client: Any) -> tuple[Path, Path, Path]:
    """A folder holding the world's supergraph and a policy with one client, `app` (purpose
    `probing`, key `client_key`, and `client`'s further settings): (folder, supergraph, policy)."""
    supergraph = directory / "supergraph.graphql"
    supergraph.write_text(world_server.supergraph())
    policy = directory / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "purposes": {"probing": {"description": "Ask the gateway whether it answers"}},
                "clients": {
                    "app": {
                        "name": "App",
                        "purposes": ["probing"],
                        **client,
                        "api_key_sha256": hashlib.sha256(client_key.encode()).hexdigest(),
                    }
                },
            }
        )
    )
    return directory, supergraph, policy


def serve_world(served: tuple[Path, Path, Path], *arguments: str, env: dict[str, str] | None = None) -> ServeProcess:
    """`citygate serve` over what world_to_serve laid out, with a store of its own."""
    directory, supergraph, policy = served
    store = directory / f"{uuid.uuid4().hex[:8]}.db"
    return ServeProcess(
        ["--supergraph", str(supergraph), "--policy", str(policy), "--store", f"sqlite:///{store}", *arguments],
        env or {},
    )


def post_graphql(
    gateway: ServeProcess, query: str, variables: dict | str | None = None, *, key: str | None = None
) -> tuple[httpx.Response, float]:
    """POST `query`; `variables` as a dict, or as JSON text (JSON encoders stop far before the attacks' nesting)."""
    headers = {"accept": "application/graphql-response+json", **({"x-api-key": key} if key else {})}
    encoded = variables if isinstance(variables, str) else json.dumps(variables)
    started = time.monotonic()
    response = httpx.post(
        gateway.url + "/graphql",
        content=f'{{"query": {json.dumps(query)}, "variables": {encoded}}}',
        headers={**headers, "content-type": "application/json"},
        timeout=120,
    )
    return response, time.monotonic() - started


def refused(response: httpx.Response, code: str) -> str:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == code, error
    return error["message"]
