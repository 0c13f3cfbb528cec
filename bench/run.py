"""Citygate against Grafbase's gateway, Hive Gateway and Apollo Gateway, side by side, in one run.

    .venv/bin/python -m bench.run [--duration 15] [--rounds 3] [--connections 32]

Every gateway gets the same CPU core (taskset: core 0) and one process; the subgraphs and the load
driver (wrk) share the other core. Before timing, every gateway must return the identical answer
to the heavy query. Then, for each gateway, several rounds of both load shapes:

- identical: every request the same bytes (as the public benchmark sends them);
- distinct: every request carries a unique variable no operation uses.

Further scenarios: the small single-fetch query (latency added over calling the subgraph
directly), the heavy query with privacy annotations on every field and every consent present
(Citygate against itself), and composing 100 generated subgraphs. Results are printed, written to
bench/results/, and charted into docs/benchmarks.png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from bench.queries import HEAVY, SMALL, SMALL_DIRECT

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
VENV_BIN = Path(sys.executable).parent
GATEWAY_CORE, DRIVER_CORE = "0", "1"
SUBGRAPHS = ("accounts", "inventory", "products", "reviews")
# the Grafbase CLI's Rust binary, shipped by npm for x86_64 Linux only (an optional dependency)
GRAFBASE = BENCH / "node_modules" / "@grafbase" / "cli-x86_64-unknown-linux-musl" / "grafbase"
# what a federation subgraph library adds to its `_service { sdl }` for the gateway's use, and what
# Grafbase's composition expects absent from a subgraph's schema file
FEDERATION_TYPES = frozenset(
    {
        "_Any",
        "_Entity",
        "_Service",
        "_FieldSet",
        "FieldSet",
        "federation__FieldSet",
        "federation__Scope",
        "federation__Policy",
        "link__Import",
        "link__Purpose",
    }
)
FEDERATION_FIELDS = frozenset({"_service", "_entities"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, body: dict | None, seconds: float = 60, headers: dict | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            response = (
                httpx.post(url, json=body, headers=headers, timeout=2)
                if body is not None
                else httpx.get(url, timeout=2)
            )
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


class Process:
    """A child process pinned to a core, stopped with its whole group."""

    def __init__(
        self, command: list[str], core: str, env: dict | None = None, cwd: Path | None = None, log: Path | None = None
    ) -> None:
        self.log = open(log or os.devnull, "wb")  # noqa: SIM115 - lives as long as the child, closed in stop()
        self.popen = subprocess.Popen(
            ["taskset", "-c", core, *command],
            env={**os.environ, **(env or {})},
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tree(self) -> list[int]:
        """The process and its children, recursively."""
        pids, found = [self.popen.pid], []
        while pids:
            pid = pids.pop()
            if pid in found:
                continue
            found.append(pid)
            with contextlib.suppress(OSError):
                pids.extend(int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
        return found

    def rss_mb(self) -> float:
        """Resident memory of the process and its children."""
        total = 0
        for pid in self.tree():
            with contextlib.suppress(OSError, TypeError):
                total += int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())[1])
        return total / 1024

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) of the process and its children so far."""
        total = 0
        for pid in self.tree():
            with contextlib.suppress(OSError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self.log.close()


@dataclass
class Run:
    gateway: str
    shape: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    subgraph_requests_per_request: float
    peak_rss_mb: float
    error_detail: str = ""  # e.g. "graphql 2, timeout 3"; the raw wrk output is in results/wrk/
    # the gateway's CPU time per request served: what a CPU-bound gateway's req/s is the inverse
    # of, steadier than req/s when the load driver or the subgraphs (the other core) stall
    cpu_ms_per_request: float = 0.0


@dataclass
class Report:
    started: str
    machine: str
    duration_s: int
    connections: int
    rounds: int
    runs: list[Run] = field(default_factory=list)
    small_query: dict = field(default_factory=dict)
    privacy: dict = field(default_factory=dict)
    composition: dict = field(default_factory=dict)


def parse_wrk(output: str) -> tuple[float, float, float, int, int]:
    def milliseconds(text: str) -> float:
        value, unit = float(re.match(r"([\d.]+)", text)[1]), re.sub(r"[\d.]", "", text)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])
    # anchored: a standard deviation such as "74.50%" must not pass for the 50th percentile
    p50 = milliseconds(re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)[1])
    p99 = milliseconds(re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)[1])
    requests = int(re.search(r"(\d+) requests in", output)[1])
    return rps, p50, p99, requests, sum(error_counts(output).values())


def error_counts(output: str) -> dict[str, int]:
    """Failed requests by kind: answers with GraphQL errors or not 200, and wrk's socket errors."""
    counts: dict[str, int] = {}
    graphql = re.search(r"GraphQL failures: (\d+)", output)
    if graphql and int(graphql[1]):
        counts["graphql"] = int(graphql[1])
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sockets:
        for kind, count in zip(("connect", "read", "write", "timeout"), sockets.groups(), strict=True):
            if int(count):
                counts[kind] = int(count)
    return counts


def wrk(
    url: str,
    body_file: Path,
    *,
    distinct: bool,
    duration: int,
    connections: int,
    threads: int = 2,
    extra_headers: str = "",
) -> str:
    env = {
        **os.environ,
        "BODY_FILE": str(body_file),
        "DISTINCT": "1" if distinct else "0",
        "EXTRA_HEADERS": extra_headers,
    }
    command = [
        "taskset",
        "-c",
        DRIVER_CORE,
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(BENCH / "wrk" / "post.lua"),
        url,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return done.stdout + done.stderr  # stderr: samples of failed answers, if any


class Subgraphs:
    def __init__(self, annotated: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "bench.subgraphs", "--port", str(self.port)] + (
            ["--annotated"] if annotated else []
        )
        self.process = Process(command, DRIVER_CORE, cwd=ROOT, log=RESULTS / "subgraphs.log")
        wait_for(f"{self.url}/health", None)

    def reset(self) -> None:
        httpx.post(f"{self.url}/counts", timeout=5)

    def count(self) -> int:
        return sum(httpx.get(f"{self.url}/counts", timeout=5).json().values())

    def sdl(self, name: str) -> str:
        return httpx.post(f"{self.url}/{name}", json={"query": "{ _service { sdl } }"}, timeout=10).json()["data"][
            "_service"
        ]["sdl"]

    def supergraph(self, path: Path) -> Path:
        from gateway.composition import SubgraphSource, compose

        sources = [SubgraphSource(name, self.sdl(name), f"{self.url}/{name}") for name in SUBGRAPHS]
        result = compose(sources)
        if not result.ok:
            raise RuntimeError("the benchmark subgraphs do not compose: " + "; ".join(map(str, result.errors)))
        path.write_text(result.supergraph or "")
        return path

    def grafbase_config(self, folder: Path) -> Path:
        """Grafbase composes the graph itself, from each subgraph's SDL in a file: bench/grafbase.toml
        filled in with these subgraphs, written beside their SDL files."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in SUBGRAPHS:
            (folder / f"{name}.graphql").write_text(without_federation_builtins(self.sdl(name)))
        config = folder / "grafbase.toml"
        template = string.Template((BENCH / "grafbase.toml").read_text())
        config.write_text(template.substitute(subgraphs=self.url, schemas=str(folder)))
        return config


def without_federation_builtins(sdl: str) -> str:
    """A subgraph's SDL without the federation machinery its library adds (`_service`, `_entities`,
    `_Any`, `_Entity`, `_Service`, `link__*`, ...): what a subgraph's author writes."""
    from graphql import parse, print_ast
    from graphql.language import DocumentNode, ObjectTypeDefinitionNode, ObjectTypeExtensionNode

    definitions = []
    for definition in parse(sdl).definitions:
        name = getattr(definition, "name", None)
        if name is not None and name.value in FEDERATION_TYPES:
            continue
        if isinstance(definition, ObjectTypeDefinitionNode | ObjectTypeExtensionNode) and definition.fields:
            fields = tuple(f for f in definition.fields if f.name.value not in FEDERATION_FIELDS)
            if not fields:  # a root type that only carried the machinery
                continue
            # graphql-core's nodes are frozen: a copy with the remaining fields
            definition = type(definition)(
                **{key: getattr(definition, key) for key in definition.keys if key != "fields"}, fields=fields
            )
        definitions.append(definition)
    return print_ast(DocumentNode(definitions=tuple(definitions))) + "\n"


def start_gateway(
    name: str,
    supergraph: Path,
    port: int,
    policy: Path | None = None,
    store: Path | None = None,
    log_name: str = "",
    grafbase_config: Path | None = None,
) -> Process:
    log = RESULTS / f"{log_name or name}.log"
    if name == "grafbase":
        if grafbase_config is None:
            raise ValueError("grafbase composes its own graph: it needs its grafbase.toml")
        # the CLI's dev server: the same federated server as the grafbase-gateway binary (which npm
        # does not ship), plus a schema file watcher and the Pathfinder UI's static files (bench/README.md)
        return Process(
            [str(GRAFBASE), "dev", "-c", str(grafbase_config), "-p", str(port)],
            GATEWAY_CORE,
            cwd=grafbase_config.parent,
            log=log,
        )
    if name.startswith("citygate"):
        command = [
            str(VENV_BIN / "citygate"),
            "serve",
            "--supergraph",
            str(supergraph),
            "--port",
            str(port),
            "--log-level",
            "error",
        ]
        if name.endswith("unshared"):  # every request does all its own subgraph calls
            command.append("--no-subgraph-sharing")
        command += ["--store", f"sqlite:///{store or RESULTS / 'bench.db'}"]
        if policy is not None:  # the privacy scenario: one shop owns the four subgraphs (bench/privacy.py)
            command += ["--policy", str(policy)]
            from bench.privacy import OWNERS

            command += [f"--owner={subgraph}={owner}" for subgraph, owner in OWNERS["one"].items()]
        return Process(command, GATEWAY_CORE, cwd=RESULTS, log=log)
    node_env = {"NODE_ENV": "production", "NODE_OPTIONS": f"--require {BENCH / 'polyfill.cjs'}"}
    if name == "hive-gateway":
        command = [
            "node",
            str(BENCH / "node_modules/.bin/hive-gateway"),
            "supergraph",
            str(supergraph),
            "--jit",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--fork",
            "1",
            "-c",
            str(BENCH / "hive-gateway.mjs"),
        ]
        return Process(command, GATEWAY_CORE, env=node_env, cwd=BENCH, log=log)
    if name == "apollo-gateway":
        return Process(
            ["node", str(BENCH / "apollo-gateway.mjs"), str(supergraph), str(port)],
            GATEWAY_CORE,
            env=node_env,
            cwd=BENCH,
            log=log,
        )
    raise ValueError(name)


def ensure_peers(gateways: list[str]) -> None:
    if not (BENCH / "node_modules" / ".bin" / "hive-gateway").exists() or (
        "grafbase" in gateways and not GRAFBASE.exists()
    ):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=BENCH, check=True)
    if "grafbase" in gateways and not GRAFBASE.exists():
        # npm skips the optional dependency on other platforms than x86_64 Linux
        sys.exit(
            f"the Grafbase CLI is shipped for x86_64 Linux only ({os.uname().sysname} {os.uname().machine} here): "
            "leave grafbase out of --gateways"
        )


def measure(
    name: str,
    process: Process,
    url: str,
    subgraphs: Subgraphs,
    body_file: Path,
    *,
    distinct: bool,
    args,
    headers: str = "",
    label: str = "",
) -> Run:
    peak = 0.0
    running = True

    def sample() -> None:
        nonlocal peak
        while running:
            peak = max(peak, process.rss_mb())
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    subgraphs.reset()
    cpu_before = process.cpu_seconds()
    output = wrk(
        url, body_file, distinct=distinct, duration=args.duration, connections=args.connections, extra_headers=headers
    )
    cpu = process.cpu_seconds() - cpu_before
    running = False
    sampler.join()
    shape = "distinct" if distinct else "identical"
    outputs = RESULTS / "wrk"
    outputs.mkdir(exist_ok=True)
    (outputs / f"{label or name}-{shape}-{time.strftime('%H%M%S')}.txt").write_text(output)
    rps, p50, p99, requests, errors = parse_wrk(output)
    per_request = subgraphs.count() / requests if requests else 0.0
    detail = ", ".join(f"{kind} {count}" for kind, count in error_counts(output).items())
    cpu_per_request = round(cpu * 1000 / requests, 3) if requests else 0.0
    return Run(
        name, shape, rps, p50, p99, errors, requests, round(per_request, 2), round(peak, 1), detail, cpu_per_request
    )


def small_p50(name: str, output: str) -> float:
    """The small query's p50; a run with any failed request is no measurement."""
    _rps, p50, _p99, _requests, errors = parse_wrk(output)
    if errors:
        raise RuntimeError(f"{name}: {errors} failed requests on the small query:\n{output}")
    return p50


def answer_bytes(url: str, query: str, headers: dict | None = None) -> bytes:
    return httpx.post(
        url, json={"query": query}, headers={"accept": "application/json", **(headers or {})}, timeout=30
    ).content


def answer(url: str, query: str, headers: dict | None = None) -> dict:
    return json.loads(answer_bytes(url, query, headers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--gateways",
        default="citygate,citygate-unshared,grafbase,hive-gateway,apollo-gateway",
        help="citygate-unshared: Citygate with identical subgraph calls in flight not shared",
    )
    parser.add_argument("--skip", default="", help="comma-separated scenarios to skip: small,privacy,compose")
    args = parser.parse_args()
    if os.cpu_count() is None or os.cpu_count() < 2:
        sys.exit("the benchmark pins the gateway and the load on two different cores: it needs two")
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    RESULTS.mkdir(exist_ok=True)
    gateways = args.gateways.split(",")
    ensure_peers(gateways)
    skip = set(filter(None, args.skip.split(",")))
    report = Report(
        time.strftime("%Y-%m-%d %H:%M:%S"),
        f"{os.cpu_count()} cores, {os.uname().machine}",
        args.duration,
        args.connections,
        args.rounds,
    )

    body_heavy = RESULTS / "heavy.json"
    body_heavy.write_text(json.dumps(HEAVY))
    body_small = RESULTS / "small.json"
    body_small.write_text(json.dumps(SMALL))
    subgraphs = Subgraphs()
    try:
        supergraph = subgraphs.supergraph(RESULTS / "supergraph.graphql")
        grafbase_config = subgraphs.grafbase_config(RESULTS / "grafbase") if "grafbase" in gateways else None
        reference, reference_bytes = None, b""
        for name in gateways:
            port = free_port()
            url = f"http://127.0.0.1:{port}/graphql"
            (RESULTS / "bench.db").unlink(missing_ok=True)
            process = start_gateway(name, supergraph, port, grafbase_config=grafbase_config)
            try:
                wait_for(url, {"query": "{ __typename }"}, headers={"accept": "application/json"})
                raw = answer_bytes(url, HEAVY)
                got = json.loads(raw)
                if "errors" in got:
                    raise RuntimeError(f"{name} answered the heavy query with errors: {got['errors'][:2]}")
                if reference is None:
                    reference, reference_bytes = got, raw
                    print(f"{name}: the reference answer ({len(raw)} bytes); warming up", flush=True)
                elif got != reference:
                    raise RuntimeError(f"{name} does not return the identical answer to the heavy query")
                else:
                    # the JSON must be equal; the bytes may differ in layout only (whitespace, escapes)
                    same = "the same bytes" if raw == reference_bytes else "the same JSON"
                    print(
                        f"{name}: identical answer ({len(raw)} bytes, {same} as {gateways[0]}); warming up", flush=True
                    )
                wrk(url, body_heavy, distinct=True, duration=5, connections=args.connections)
                for round_index in range(args.rounds):
                    for distinct in (False, True):
                        run = measure(name, process, url, subgraphs, body_heavy, distinct=distinct, args=args)
                        report.runs.append(run)
                        print(
                            f"  round {round_index + 1} {run.shape:9s} {run.rps:8.1f} rps  p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms  "
                            f"CPU {run.cpu_ms_per_request:.3f} ms/req  "
                            f"errors {run.errors} {run.error_detail}  subgraph req/req {run.subgraph_requests_per_request}  peak {run.peak_rss_mb} MB",
                            flush=True,
                        )
                if "small" not in skip:
                    small = wrk(
                        url, body_small, distinct=True, duration=max(5, args.duration // 2), connections=1, threads=1
                    )
                    report.small_query[name] = small_p50(name, small)
            finally:
                process.stop()
        if "small" not in skip:
            direct_file = RESULTS / "small-direct.json"
            direct_file.write_text(json.dumps(SMALL_DIRECT))
            # the same bytes every time: what a gateway sends the subgraph (the client's unused nonce
            # is not forwarded), so the subgraph answers both from its memo
            direct = wrk(
                f"{subgraphs.url}/accounts",
                direct_file,
                distinct=False,
                duration=max(5, args.duration // 2),
                connections=1,
                threads=1,
            )
            report.small_query["direct"] = small_p50("direct", direct)
    finally:
        subgraphs.process.stop()

    if "privacy" not in skip and "citygate" in gateways:
        report.privacy = privacy_scenario(args)
    if "compose" not in skip:
        report.composition = composition_scenario()
    summarize(report)


def privacy_scenario(args) -> dict:
    """The heavy query with a privacy annotation on every field and every consent present, against
    the same query without annotations. Both gateways run at once (same core) and the rounds
    alternate between them, so a slow phase of the shared machine hits both alike."""
    from bench.privacy import prepare_store

    annotated_subgraphs, plain_subgraphs = Subgraphs(annotated=True), Subgraphs()
    processes: list[Process] = []
    results: dict[str, list[Run]] = {"annotations off": [], "annotations on": []}
    try:
        annotated = annotated_subgraphs.supergraph(RESULTS / "supergraph-annotated.graphql")
        plain = plain_subgraphs.supergraph(RESULTS / "supergraph-plain.graphql")
        store = RESULTS / "privacy.db"
        policy, key = prepare_store(store, RESULTS / "privacy-policy.yaml")
        headers = {"x-api-key": key}
        setups = {}
        for label, supergraph, subgraphs in (
            ("annotations off", plain, plain_subgraphs),
            ("annotations on", annotated, annotated_subgraphs),
        ):
            port = free_port()
            url = f"http://127.0.0.1:{port}/graphql"
            # a SQLite store serves one gateway: each gets its own copy of the seeded one
            own_store = RESULTS / f"privacy-{label.split()[-1]}.db"
            shutil.copyfile(store, own_store)
            # no sharing of subgraph calls: how much the two share depends on timing, not on privacy
            process = start_gateway(
                "citygate-privacy-unshared",
                supergraph,
                port,
                policy=policy,
                store=own_store,
                log_name=f"privacy-{label.split()[-1]}",
            )
            processes.append(process)
            wait_for(url, {"query": "{ __typename }"}, headers={"accept": "application/json", **headers})
            got = answer(url, HEAVY, headers)
            if "errors" in got or "privacy" in got.get("extensions", {}):
                raise RuntimeError(f"{label}: the heavy query was not answered in full: {str(got)[:300]}")
            setups[label] = (process, url, subgraphs, got)
        if setups["annotations off"][3] != setups["annotations on"][3]:
            raise RuntimeError("the annotated gateway does not return the identical answer")
        for _process, url, _subgraphs, _got in setups.values():
            wrk(
                url,
                RESULTS / "heavy.json",
                distinct=True,
                duration=5,
                connections=args.connections,
                extra_headers=f"x-api-key={key}",
            )
        # Twice the rounds at half the length: the machine's slow and fast phases outlast a 15 s
        # round, so shorter paired rounds see the same machine; the same total time as elsewhere.
        rounds, duration = args.rounds * 2, max(3, args.duration // 2)
        short = argparse.Namespace(**{**vars(args), "duration": duration})
        for _ in range(rounds):
            for label, (process, url, subgraphs, _got) in setups.items():
                run = measure(
                    label,
                    process,
                    url,
                    subgraphs,
                    RESULTS / "heavy.json",
                    distinct=True,
                    args=short,
                    headers=f"x-api-key={key}",
                    label=f"privacy-{label.split()[-1]}",
                )
                results[label].append(run)
                print(
                    f"  privacy {label:16s} {run.rps:8.1f} rps  p50 {run.p50_ms:7.2f} ms  CPU {run.cpu_ms_per_request:.3f} ms/req  "
                    f"errors {run.errors} {run.error_detail}  "
                    f"subgraph req/req {run.subgraph_requests_per_request}",
                    flush=True,
                )
    finally:
        for process in processes:
            process.stop()
        annotated_subgraphs.process.stop()
        plain_subgraphs.process.stop()
    off = statistics.median(r.rps for r in results["annotations off"])
    on = statistics.median(r.rps for r in results["annotations on"])
    ratios = [b.rps / a.rps for a, b in zip(results["annotations off"], results["annotations on"], strict=True)]
    costs = sorted(1 - r for r in ratios)
    # the same cost from the CPU time per request: 1 - (CPU off) / (CPU on), the share of req/s a
    # gateway that is CPU-bound loses
    cpu_costs = sorted(
        1 - a.cpu_ms_per_request / b.cpu_ms_per_request
        for a, b in zip(results["annotations off"], results["annotations on"], strict=True)
        if b.cpu_ms_per_request
    )
    return {
        "rps_annotations_off": off,
        "rps_annotations_on": on,
        "cost_of_medians": round(1 - on / off, 3) if off else None,
        # the figure quoted: the median of the rounds' own costs, and the middle half of them
        "cost": round(statistics.median(costs), 3),
        "cost_middle_half": [round(q, 3) for q in statistics.quantiles(costs, n=4)[::2]] if len(costs) > 1 else None,
        "cpu_ms_per_request_off": statistics.median(r.cpu_ms_per_request for r in results["annotations off"]),
        "cpu_ms_per_request_on": statistics.median(r.cpu_ms_per_request for r in results["annotations on"]),
        "cpu_cost": round(statistics.median(cpu_costs), 3) if cpu_costs else None,
        "cpu_cost_middle_half": [round(q, 3) for q in statistics.quantiles(cpu_costs, n=4)[::2]]
        if len(cpu_costs) > 1
        else None,
        "rounds": rounds,
        "seconds_per_round": duration,
        "cost_per_round": [round(1 - r, 3) for r in ratios],
        "errors": sum(r.errors for runs in results.values() for r in runs),
    }


def composition_scenario() -> dict:
    from bench.generated import compose_generated

    timings = [compose_generated(100) for _ in range(3)]
    return {
        "subgraphs": 100,
        "seconds_median": round(statistics.median(timings), 2),
        "seconds": [round(t, 2) for t in timings],
    }


def summarize(report: Report) -> None:
    from bench.chart import chart

    def median(gateway: str, shape: str, attribute: str) -> float:
        values = [getattr(r, attribute) for r in report.runs if r.gateway == gateway and r.shape == shape]
        return statistics.median(values) if values else float("nan")

    gateways = list(dict.fromkeys(r.gateway for r in report.runs))
    print("\nMedians of the rounds (same core, same subgraphs, same load, one run):")
    print(
        f"{'gateway':16s} {'shape':10s} {'rps':>9s} {'x hive':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'sub/req':>8s} {'peak MB':>8s} {'errors':>7s}"
    )
    summary = {}
    for shape in ("distinct", "identical"):
        hive = median("hive-gateway", shape, "rps")
        for gateway in gateways:
            rps = median(gateway, shape, "rps")
            ratio = rps / hive if hive == hive and hive else float("nan")
            errors = sum(r.errors for r in report.runs if r.gateway == gateway and r.shape == shape)
            summary[f"{gateway}/{shape}"] = {
                "rps": rps,
                "ratio_to_hive": round(ratio, 2),
                "p50_ms": median(gateway, shape, "p50_ms"),
                "p99_ms": median(gateway, shape, "p99_ms"),
                "cpu_ms_per_request": median(gateway, shape, "cpu_ms_per_request"),
            }
            print(
                f"{gateway:16s} {shape:10s} {rps:9.1f} {ratio:7.2f} {median(gateway, shape, 'p50_ms'):8.2f} {median(gateway, shape, 'p99_ms'):8.2f} "
                f"{median(gateway, shape, 'subgraph_requests_per_request'):8.2f} {max((r.peak_rss_mb for r in report.runs if r.gateway == gateway), default=0):8.1f} {errors:7d}"
            )
    if report.small_query:
        direct = report.small_query.get("direct")
        print("\nSmall single-fetch query, p50 at one connection:")
        for name, p50 in report.small_query.items():
            added = (
                f"  (+{p50 - direct:.2f} ms over calling the subgraph)"
                if direct is not None and name != "direct"
                else ""
            )
            print(f"  {name:16s} {p50:.2f} ms{added}")
    if report.privacy:
        print(f"\nPrivacy annotations on every field, every consent present: {report.privacy}")
    if report.composition:
        print(f"Composing 100 generated subgraphs: {report.composition}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data = {**asdict(report), "summary": summary}
    (RESULTS / f"bench-{stamp}.json").write_text(json.dumps(data, indent=2))
    (RESULTS / "latest.json").write_text(json.dumps(data, indent=2))
    chart(data, ROOT / "docs" / "benchmarks.png")
    print(f"\nwritten: bench/results/bench-{stamp}.json, docs/benchmarks.png")


if __name__ == "__main__":
    main()
