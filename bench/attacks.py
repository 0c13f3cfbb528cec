"""Hostile traffic against the demo city while a probe client keeps asking it something (issue 12).

    .venv/bin/python -m bench.attacks [--quick]      (or: make attacks)

Starts `citygate demo` on a free loopback port (in a temporary folder, with the limits below in its
environment), runs a probe client (the open-data portal's key, one small query every 20 ms) and
sends each attack in turn. Per attack it records what the attacker got (status, code, how soon),
the probe's p50/p99 while the attack ran, and the gateway's peak resident memory. Prints a table;
the figures go into docs/benchmarks.md by hand. Never run by the tests; loopback only, every loop
bounded in count and time.

The document-level attacks (fragment bombs, aliases, depth, variables depth, a list fan-out) are
sent as the public would, each answered under the planner's document limits. To add one, write a
function like `attack_header_bomb` returning an `Outcome` and name it in ATTACKS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024

# The limits the demo runs with here: the documented defaults, but shorter timeouts (so that a run
# takes a minute) and the per-client limits an operator would set for a public endpoint.
LIMITS = {
    "CITYGATE_HEADER_TIMEOUT": "3",
    "CITYGATE_BODY_TIMEOUT": "3",
    "CITYGATE_WRITE_TIMEOUT": "3",
    "CITYGATE_PUBLIC_RATE_LIMIT": "50",
    "CITYGATE_MAX_IN_FLIGHT": "8",
    # demand control: the default (50,000) lets the bench's heavy query (24,420) through; the demo's
    # README queries cost at most 52 and BIG_QUERY 1,210, the 3-level fan-out 12,210
    "CITYGATE_MAX_COST": "5000",
}
PROBE_QUERY = '{ district(code: "75118") { name population } }'
BIG_QUERY = "{ districts { code name parkingSpots { id street kind pricePerHour free district { code name population parkingSpots { id street kind free } } } } }"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Demo:
    """`citygate demo` in a temporary folder, on a free port."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="citygate-attacks-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(self.folder / "demo.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "demo",
                "--connectors",
                str(ROOT / "connectors"),
                "--port",
                str(self.port),
            ],
            cwd=self.folder,
            env={**os.environ, **LIMITS, "PYTHONPATH": str(ROOT)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"the demo did not start: {(self.folder / 'demo.log').read_text()[-2000:]}")
        self.credentials = json.loads((self.folder / ".citygate" / "demo-credentials.json").read_text())

    def rss_mb(self) -> float:
        try:
            return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{self.process.pid}/status").read_text())[1]) / 1024
        except (OSError, TypeError):
            return 0.0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@dataclass
class Watch:
    """The probe's answers and the gateway's memory while an attack runs."""

    demo: Demo
    headers: dict
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    peak_rss: float = 0.0

    def __enter__(self) -> Watch:
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._probe, daemon=True),
            threading.Thread(target=self._memory, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        time.sleep(0.2)
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _probe(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = client.post(
                        self.demo.url + "/graphql", json={"query": PROBE_QUERY}, headers=self.headers
                    )
                    self.statuses[response.status_code] += 1
                except httpx.HTTPError as error:
                    self.statuses[type(error).__name__] += 1
                self.latencies.append(time.monotonic() - started)
                self._stop.wait(0.02)

    def _memory(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self.demo.rss_mb())
            self._stop.wait(0.05)

    def p(self, quantile: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000


@dataclass
class Outcome:
    answer: str  # what the attacker got, e.g. "413 PAYLOAD_TOO_LARGE"
    seconds: float  # how soon (for slow attacks: by design after the timeout)
    note: str = ""


def _code(body: bytes) -> str:
    try:
        error = json.loads(body)["errors"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return ""
    return error.get("extensions", {}).get("code") or error.get("code", "")


def _answer(sock: socket.socket, seconds: float) -> tuple[str, bytes]:
    sock.setblocking(True)
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionError):
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    status = re.match(rb"HTTP/1\.1 (\d{3})", head)
    return (status[1].decode() if status else "no answer"), body


def _stream(port: int, head: bytes, piece: bytes, total: int) -> tuple[str, float, int]:
    sock = socket.create_connection(("127.0.0.1", port))
    started = time.monotonic()
    sock.sendall(head)
    sock.setblocking(False)
    sent = 0
    try:
        while sent < total and time.monotonic() - started < 30:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable or not writable:
                break
            sent += sock.send(piece)
    except OSError:
        pass
    status, body = _answer(sock, 5)
    seconds = time.monotonic() - started
    sock.close()
    return f"{status} {_code(body)}".strip(), seconds, sent


def attack_chunked_body(demo: Demo, quick: bool) -> Outcome:
    head = b"POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    answer, seconds, sent = _stream(demo.port, head, b"%x\r\n" % 65536 + b" " * 65536 + b"\r\n", 300 * MiB)
    return Outcome(answer, seconds, f"300 MiB offered, {sent / MiB:.1f} MiB taken")


def attack_admin_upload(demo: Demo, quick: bool) -> Outcome:
    head = (
        b"PUT /admin/connectors/big HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        % (200 * MiB)
    )
    answer, seconds, sent = _stream(demo.port, head, b" " * 65536, 200 * MiB)
    return Outcome(answer, seconds, f"200 MB offered without a key, {sent / MiB:.1f} MiB taken")


def _trickle(port: int, parts: list[bytes], every: float) -> tuple[str, float]:
    sock = socket.create_connection(("127.0.0.1", port))
    started = time.monotonic()
    for part in parts:
        if select.select([sock], [], [], 0)[0]:
            break
        try:
            sock.sendall(part)
        except OSError:
            break
        if select.select([sock], [], [], every)[0]:
            break
    status, body = _answer(sock, 10)
    sock.close()
    return f"{status} {_code(body)}".strip(), time.monotonic() - started


def _many(count: int, work: Callable[[], tuple[str, float]]) -> Outcome:
    with ThreadPoolExecutor(min(count, 200)) as pool:
        results = list(pool.map(lambda _: work(), range(count)))
    answers = Counter(answer for answer, _ in results)
    slowest = max(seconds for _, seconds in results)
    return Outcome(
        ", ".join(f"{n}× {a}" for a, n in answers.most_common()), slowest, f"{count} connections; the slowest answered"
    )


def attack_slow_senders(demo: Demo, quick: bool) -> Outcome:
    parts = [
        b"POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 10000\r\n\r\n"
    ] + [b" " * 10] * 100
    outcome = _many(50 if quick else 200, lambda: _trickle(demo.port, parts, 0.5))
    outcome.note += f" (body timeout {LIMITS['CITYGATE_BODY_TIMEOUT']} s)"
    return outcome


def attack_slowloris(demo: Demo, quick: bool) -> Outcome:
    parts = [b"GET /graphql HTTP/1.1\r\n"] + [b"x-slow-%d: 1\r\n" % i for i in range(100)]
    outcome = _many(50 if quick else 200, lambda: _trickle(demo.port, parts, 0.5))
    outcome.note += f" (header timeout {LIMITS['CITYGATE_HEADER_TIMEOUT']} s)"
    return outcome


def attack_header_bomb(demo: Demo, quick: bool) -> Outcome:
    answer, seconds, sent = _stream(demo.port, b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-bomb: ", b"a" * 65536, 16 * MiB)
    return Outcome(answer, seconds, f"a 16 MiB header offered, {sent / MiB:.1f} MiB taken")


def attack_slow_readers(demo: Demo, quick: bool) -> Outcome:
    count = 30 if quick else 100
    sockets = []
    started = time.monotonic()
    for n in range(count):
        body = json.dumps({"query": BIG_QUERY, "variables": {"n": n}}).encode()  # distinct: no two share an execution
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", demo.port))
        sock.sendall(
            b"POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
            % len(body)
            + body
        )
        sockets.append(sock)
    time.sleep(float(LIMITS["CITYGATE_WRITE_TIMEOUT"]) * 2 + 3)
    answers: Counter = Counter()
    for sock in sockets:
        sock.settimeout(5)
        first = b""
        try:
            first = sock.recv(4096)
            while sock.recv(1 << 20):
                pass
            outcome = "answered whole"
        except ConnectionResetError:
            outcome = "dropped"
        except TimeoutError:
            outcome = "still open"
        status = re.match(rb"HTTP/1\.1 (\d{3})", first)
        answers[f"{status[1].decode() if status else 'nothing'}, {outcome}"] += 1
        sock.close()
    summary = ", ".join(f"{n}× {a}" for a, n in answers.most_common())
    return Outcome(
        summary,
        time.monotonic() - started,
        f"{count} deaf readers of a 1.5 MB answer (write timeout {LIMITS['CITYGATE_WRITE_TIMEOUT']} s)",
    )


def attack_rate_flood(demo: Demo, quick: bool) -> Outcome:
    count = 500 if quick else 2000
    statuses: Counter = Counter()
    first_refusal = None
    started = time.monotonic()
    with httpx.Client(timeout=10, base_url=demo.url) as client:
        for _ in range(count):
            sent = time.monotonic()
            response = client.get(
                "/graphql", params={"query": "{ districts { code } }"}, headers={"apollo-require-preflight": "true"}
            )
            statuses[f"{response.status_code} {_code(response.content)}".strip()] += 1
            if response.status_code == 429 and first_refusal is None:
                first_refusal = time.monotonic() - sent
    took = time.monotonic() - started
    summary = ", ".join(f"{n}× {a}" for a, n in statuses.most_common())
    return Outcome(
        summary,
        first_refusal or float("nan"),
        f"{count} requests in {took:.1f} s from one address (limit {LIMITS['CITYGATE_PUBLIC_RATE_LIMIT']}/s); time = one refusal",
    )


def _graphql(demo: Demo, query: str, variables_json: str = "null") -> Outcome:
    """One POST as the public (application/graphql-response+json); variables as JSON text (JSON
    encoders refuse the nesting of the attacks)."""
    body = f'{{"query": {json.dumps(query)}, "variables": {variables_json}}}'
    started = time.monotonic()
    try:
        response = httpx.post(
            demo.url + "/graphql",
            content=body,
            timeout=120,
            headers={"content-type": "application/json", "accept": "application/graphql-response+json"},
        )
    except httpx.HTTPError as error:
        return Outcome(type(error).__name__, time.monotonic() - started)
    seconds = time.monotonic() - started
    code = _code(response.content)
    return Outcome(
        f"{response.status_code} {code}".strip(), seconds, f"{len(body)} bytes sent, {len(response.content)} received"
    )


def _fragment_bomb(levels: int) -> str:
    fragments = " ".join(f"fragment F{i} on District {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    return f"{{ districts {{ ...F0 }} }} {fragments} fragment F{levels} on District {{ code name }}"


def attack_bomb_20(demo: Demo, quick: bool) -> Outcome:
    return _graphql(demo, _fragment_bomb(20))


def attack_bomb_40(demo: Demo, quick: bool) -> Outcome:
    return _graphql(demo, _fragment_bomb(40))


def attack_aliases(demo: Demo, quick: bool) -> Outcome:
    return _graphql(demo, "{ " + " ".join(f"a{i}: districts {{ code name population }}" for i in range(1000)) + " }")


def attack_aliases_250(demo: Demo, quick: bool) -> Outcome:
    return _graphql(demo, "{ " + " ".join(f"a{i}: districts {{ code name population }}" for i in range(250)) + " }")


def attack_aliases_5000(demo: Demo, quick: bool) -> Outcome:
    return _graphql(demo, "{ " + " ".join(f"a{i}: districts {{ code name population }}" for i in range(5000)) + " }")


def attack_megabyte_of_fields(demo: Demo, quick: bool) -> Outcome:
    return _graphql(demo, "{ " + " ".join(f"field{i} {{ code name population }}" for i in range(28_000)) + " }")


def attack_admin_junk_keys(demo: Demo, quick: bool) -> Outcome:
    count = 200 if quick else 1000
    statuses: Counter = Counter()
    first_refusal = None
    with httpx.Client(timeout=10, base_url=demo.url) as client:
        for n in range(count):
            sent = time.monotonic()
            response = client.get("/admin/connectors", headers={"authorization": f"Bearer cgp_junk-{n}"})
            statuses[f"{response.status_code} {_code(response.content)}".strip()] += 1
            if response.status_code == 429 and first_refusal is None:
                first_refusal = time.monotonic() - sent
    summary = ", ".join(f"{n}× {a}" for a, n in statuses.most_common())
    return Outcome(
        summary, first_refusal or float("nan"), f"{count} junk bearer keys from one address; time = one refusal"
    )


def _gauges_sdl(fields: int) -> str:
    """A harmless partner SDL of `fields` Int fields (100 a type, one root field a type)."""
    types = [
        f"type Gauge{t} {{ " + " ".join(f"measurementNumber{j}: Int" for j in range(100)) + " }"
        for t in range(fields // 100)
    ]
    roots = " ".join(f"gauge{t}: Gauge{t}" for t in range(fields // 100))
    link = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])'
    return "\n".join([link, *types, f"type Query {{ {roots} }}"])


def attack_registration_after_a_big_one(demo: Demo, quick: bool) -> Outcome:
    """Not hostile on its own: the cost every later registration pays once a 10,000-field one is
    served (its Engine is built again each time)."""
    headers = {"authorization": f"Bearer {demo.credentials['operator_key']}"}
    manifest = {"owner": "gauges", "kind": "subgraph", "url": demo.url + "/unused"}
    with httpx.Client(timeout=120, base_url=demo.url, headers=headers) as client:
        big = client.put("/admin/connectors/gauges", json={**manifest, "sdl": _gauges_sdl(10_000)})
        if big.status_code != 200:
            return Outcome(
                f"{big.status_code} {_code(big.content)}", 0.0, "the 10,000-field registration itself was refused"
            )
        started = time.monotonic()
        small = client.put(
            "/admin/connectors/gauge-small",
            json={**manifest, "sdl": _gauges_sdl(100).replace("Gauge", "Small").replace("gauge", "small")},
        )
        return Outcome(
            f"{small.status_code}", time.monotonic() - started, "a 100-field registration, a 10,000-field one served"
        )


def attack_deep(demo: Demo, quick: bool) -> Outcome:
    pairs = 31  # districts, 31 × (parkingSpots, district), code: 64 fields on the path
    return _graphql(demo, "{ districts { " + "parkingSpots { district { " * pairs + "code" + " } }" * pairs + " } }")


def attack_deep_variables(demo: Demo, quick: bool) -> Outcome:
    levels = 1023  # orjson (the body's parser) reads 1,024 levels at most: the value is 1,024 deep with its object
    return _graphql(
        demo,
        "query($c: String!) { district(code: $c) { name } }",
        '{"c": ' + "[" * levels + '"75118"' + "]" * levels + "}",
    )


def attack_fan_out(demo: Demo, quick: bool) -> Outcome:
    # three list levels: districts × their spots × each spot's district's spots; estimated 12,210,
    # refused before planning: 400 COST_ESTIMATED_TOO_EXPENSIVE (CITYGATE_MAX_COST above)
    return _graphql(
        demo,
        "{ districts { parkingSpots { district { parkingSpots { district { parkingSpots { id street kind free } } } } } } }",
    )


ATTACKS: dict[str, Callable[[Demo, bool], Outcome]] = {
    "fragment bomb, 20 levels (824 B)": attack_bomb_20,
    "fragment bomb, 40 levels": attack_bomb_40,
    "250 aliases of one root field": attack_aliases_250,
    "1,000 aliases of one root field": attack_aliases,
    "5,000 aliases of one root field (209 KB)": attack_aliases_5000,
    "1 MB of distinct fields": attack_megabyte_of_fields,
    "query 64 fields deep": attack_deep,
    "variables nested 1,024 levels deep": attack_deep_variables,
    "3-level list fan-out": attack_fan_out,
    "chunked body of 300 MiB": attack_chunked_body,
    "admin upload of 200 MB, no key": attack_admin_upload,
    "slow senders (10 B / 0.5 s)": attack_slow_senders,
    "slow headers (slowloris)": attack_slowloris,
    "16 MiB header": attack_header_bomb,
    "slow readers": attack_slow_readers,
    "rate flood": attack_rate_flood,
    # before the junk keys: those leave the address (the operator's too, here) waiting a few seconds
    "a registration after a 10,000-field one": attack_registration_after_a_big_one,
    "junk admin keys": attack_admin_junk_keys,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer connections and requests per attack")
    args = parser.parse_args()
    demo = Demo()
    try:
        probe_headers = {"x-api-key": demo.credentials["clients"]["open-data-portal"]}
        with Watch(demo, probe_headers) as idle:
            time.sleep(2)
        rows = [("(no attack)", "", "", idle.p(0.5), idle.p(0.99), idle.peak_rss, f"probe {dict(idle.statuses)}")]
        for name, attack in ATTACKS.items():
            with Watch(demo, probe_headers) as watch:
                outcome = attack(demo, args.quick)
            probe_note = "" if set(watch.statuses) == {200} else f"; probe got {dict(watch.statuses)}"
            rows.append(
                (
                    name,
                    outcome.answer,
                    f"{outcome.seconds * 1000:.0f} ms",
                    watch.p(0.5),
                    watch.p(0.99),
                    watch.peak_rss,
                    outcome.note + probe_note,
                )
            )
    finally:
        demo.stop()
    header = "| attack | answer | answered in | probe p50 (ms) | probe p99 (ms) | peak RSS (MB) | note |"
    print(header)
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, answer, seconds, p50, p99, rss, note in rows:
        print(f"| {name} | {answer} | {seconds} | {p50:.1f} | {p99:.1f} | {rss:.0f} | {note} |")
    print(f"\nlimits of this run: {' '.join(f'{k}={v}' for k, v in LIMITS.items())}")


if __name__ == "__main__":
    main()
