"""The benchmark scenario over REST connectors: the heavy query against the four subgraphs of
bench/subgraphs.py, and against the same data served as REST/JSON APIs (bench/rest_apis.py)
mapped into the same graph by REST connectors (bench/rest/*.graphql, @source/@connect).

    .venv/bin/python -m bench.rest [--duration 15] [--rounds 5] [--connections 32] [--profile 12]

Three Citygate processes, all pinned to core 0 (the upstreams and wrk share core 1, as in
bench/run.py), all with `--no-subgraph-sharing` (it turns off the subgraphs' and the REST
connectors' sharing of calls in flight alike: every request makes all its calls):

- subgraphs: `citygate serve --supergraph`, the supergraph composed from the subgraphs' SDL (as bench.run);
- subgraphs-folder: `citygate serve --connectors`, the four subgraphs as `kind: subgraph` connectors
  (the registry's serving path, the like-for-like comparison);
- rest: `citygate serve --connectors`, the four REST APIs as `kind: rest` connectors.

A gateway serving connectors has its own `Query.me` (the requester): in both folders the
benchmark's `Query.me` is left out (the heavy query does not use it). Both supergraphs are
composed first (gateway.composition), the subgraphs' without `me` too, and must give clients the
same API schema; every gateway must answer the heavy query with the same JSON. Then rounds of the distinct
load shape alternate between the gateways (a slow phase of the shared machine hits all alike);
the ratio quoted is the median of the rounds' own ratios. Upstream calls per request are counted
by the subgraphs and the APIs. Last, "where the time goes": py-spy samples the REST-backed
gateway under load, and its own time per function is grouped (graphql-core execution inside the
connector, mapping, HTTP client, planning, shaping, ...). Results: bench/results/rest-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import httpx

from bench.queries import HEAVY
from bench.run import (
    BENCH,
    DRIVER_CORE,
    GATEWAY_CORE,
    RESULTS,
    ROOT,
    SUBGRAPHS,
    VENV_BIN,
    Process,
    Run,
    Subgraphs,
    answer_bytes,
    error_counts,
    free_port,
    parse_wrk,
    start_gateway,
    wait_for,
)

REST_SDL = Path(__file__).resolve().parent / "rest"
GATEWAYS = ("subgraphs", "subgraphs-folder", "rest")
# wrk gives up on an answer after 2 s by default and counts a socket timeout: at 32 connections a
# gateway serving under 16 requests a second answers slower than that, and is still measured
WRK_TIMEOUT = "30s"


def wrk(url: str, body_file: Path, *, duration: int, connections: int, threads: int = 2) -> str:
    """bench.run's load (distinct shape), with a timeout slow gateways fit in."""
    env = {**os.environ, "BODY_FILE": str(body_file), "DISTINCT": "1", "EXTRA_HEADERS": ""}
    command = [
        "taskset",
        "-c",
        DRIVER_CORE,
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        WRK_TIMEOUT,
        "--latency",
        "-s",
        str(BENCH / "wrk" / "post.lua"),
        url,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return done.stdout + done.stderr


def measure(name: str, process: Process, url: str, upstreams: BothUpstreams, body: Path, args) -> Run:
    """One round against one gateway: req/s, latency, its CPU time and the upstream calls per request."""
    upstreams.reset()
    cpu_before = process.cpu_seconds()
    output = wrk(url, body, duration=args.duration, connections=args.connections)
    cpu = process.cpu_seconds() - cpu_before
    outputs = RESULTS / "wrk"
    outputs.mkdir(exist_ok=True)
    (outputs / f"rest-{name}-distinct-{time.strftime('%H%M%S')}.txt").write_text(output)
    rps, p50, p99, requests, errors = parse_wrk(output)
    per_request = upstreams.count() / requests if requests else 0.0
    detail = ", ".join(f"{kind} {count}" for kind, count in error_counts(output).items())
    cpu_per_request = round(cpu * 1000 / requests, 3) if requests else 0.0
    return Run(
        name,
        "distinct",
        rps,
        p50,
        p99,
        errors,
        requests,
        round(per_request, 2),
        round(process.rss_mb(), 1),
        detail,
        cpu_per_request,
    )


class RestApis:
    """bench/rest_apis.py in its own process on the driver's core; counts the calls it receives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = Process(
            [sys.executable, "-m", "bench.rest_apis", "--port", str(self.port)],
            DRIVER_CORE,
            cwd=ROOT,
            log=RESULTS / "rest-apis.log",
        )
        wait_for(f"{self.url}/health", None)

    def reset(self) -> None:
        httpx.post(f"{self.url}/counts", timeout=5)

    def count(self) -> int:
        return sum(httpx.get(f"{self.url}/counts", timeout=5).json().values())

    def counts(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/counts", timeout=5).json()


class BothUpstreams:
    """What `measure` resets and counts: the subgraphs and the APIs together (only one of them is
    called in a round)."""

    def __init__(self, subgraphs: Subgraphs, apis: RestApis) -> None:
        self.subgraphs, self.apis = subgraphs, apis

    def reset(self) -> None:
        self.subgraphs.reset()
        self.apis.reset()

    def count(self) -> int:
        return self.subgraphs.count() + self.apis.count()


def rest_folder(folder: Path, apis_url: str) -> Path:
    """The four REST connectors as an operator's connectors folder."""
    for name in SUBGRAPHS:
        (folder / name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REST_SDL / f"{name}.graphql", folder / name / "schema.graphql")
        (folder / name / "manifest.yaml").write_text(
            f"name: {name}\nowner: {name}\nkind: rest\nurl: {apis_url}/{name}\ntimeout: 10\nsdl_file: schema.graphql\n"
        )
    return folder


def without_me(sdl: str) -> str:
    """A subgraph's SDL without `Query.me`: a gateway serving connectors has its own."""
    kept = [line for line in sdl.splitlines(keepends=True) if line.strip() != "me: User"]
    if len(kept) != len(sdl.splitlines()) - (1 if "\n  me: User\n" in sdl else 0):
        raise RuntimeError("Query.me of the accounts subgraph is not where bench.rest expects it")
    return "".join(kept)


def subgraph_folder(folder: Path, subgraphs: Subgraphs) -> Path:
    """The four subgraphs as `kind: subgraph` connectors, their SDL pinned (without `Query.me`)."""
    for name in SUBGRAPHS:
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "schema.graphql").write_text(without_me(subgraphs.sdl(name)))
        (folder / name / "manifest.yaml").write_text(
            f"name: {name}\nowner: {name}\nkind: subgraph\nurl: {subgraphs.url}/{name}\ntimeout: 10\nsdl_file: schema.graphql\n"
        )
    return folder


def compose_subgraphs_without_me(subgraphs: Subgraphs, path: Path) -> Path:
    from gateway.composition import SubgraphSource, compose

    result = compose(
        SubgraphSource(name, without_me(subgraphs.sdl(name)), f"{subgraphs.url}/{name}") for name in SUBGRAPHS
    )
    if not result.ok:
        raise RuntimeError("the subgraphs without Query.me do not compose: " + "; ".join(map(str, result.errors)))
    path.write_text(result.supergraph or "")
    return path


def compose_rest(apis_url: str, path: Path) -> Path:
    """The REST-backed supergraph, composed from each connector's composition SDL."""
    from gateway.composition import SubgraphSource, compose
    from gateway.connect import read_connect_sdl

    sources = []
    for name in SUBGRAPHS:
        schema = read_connect_sdl((REST_SDL / f"{name}.graphql").read_text(), base_url=f"{apis_url}/{name}")
        sources.append(SubgraphSource(name, schema.composition_sdl, f"{apis_url}/{name}"))
    result = compose(sources)
    if not result.ok:
        raise RuntimeError("the REST connectors do not compose: " + "; ".join(map(str, result.errors)))
    path.write_text(result.supergraph or "")
    return path


def api_schema(supergraph: Path) -> str:
    """What clients see of a supergraph, printed with its types and fields sorted."""
    from graphql import lexicographic_sort_schema, print_schema

    from gateway.supergraph import load_supergraph

    return print_schema(lexicographic_sort_schema(load_supergraph(supergraph.read_text()).api_schema))


def start_folder_gateway(label: str, folder: Path, port: int) -> Process:
    store = RESULTS / f"rest-{label}.db"
    store.unlink(missing_ok=True)
    command = [
        str(VENV_BIN / "citygate"),
        "serve",
        "--connectors",
        str(folder),
        "--port",
        str(port),
        "--log-level",
        "error",
        "--no-subgraph-sharing",
        "--store",
        f"sqlite:///{store}",
    ]
    # a fixed operator key: no admin call is made; only so that the start-up prints none
    return Process(
        command,
        GATEWAY_CORE,
        env={"CITYGATE_OPERATOR_KEY": "cgo_bench_rest_unused"},
        cwd=RESULTS,
        log=RESULTS / f"rest-{label}.log",
    )


# -- where the time goes -------------------------------------------------------------------------

# (category, where the leaf frame's file is), first match wins. The event loop starts each task's
# step afresh, so a coroutine's stack does not show who awaits it: graphql-core's executor runs
# only inside the REST connector (the gateway executes plans itself), so its frames are the
# connector's; asyncio's own frames are everyone's, the connector's futures and tasks included.
_GROUPS: tuple[tuple[str, str], ...] = (
    ("connector: graphql-core execution", "/graphql/execution/"),
    ("connector: graphql-core execution", "/graphql/pyutils/"),
    ("connector: mapping (selection, URL templates)", "/gateway/connect/_selection.py"),
    ("connector: mapping (selection, URL templates)", "/gateway/connect/_template.py"),
    ("connector: its own code (resolvers, batching, calls)", "/gateway/connect/"),
    ("HTTP client (aiohttp, yarl, multidict)", "/aiohttp/"),
    ("HTTP client (aiohttp, yarl, multidict)", "/yarl/"),
    ("HTTP client (aiohttp, yarl, multidict)", "/multidict/"),
    ("planning (gateway/planner)", "/gateway/planner/"),
    ("executor and shaping (gateway/executor, engine)", "/gateway/executor/"),
    ("executor and shaping (gateway/executor, engine)", "/gateway/engine.py"),
    ("graphql-core, other (the client's document: parse, validate)", "/graphql/"),
    ("HTTP server (uvicorn, starlette, httptools)", "/uvicorn/"),
    ("HTTP server (uvicorn, starlette, httptools)", "/starlette/"),
    ("HTTP server (uvicorn, starlette, httptools)", "/httptools/"),
    ("HTTP server (uvicorn, starlette, httptools)", "/gateway/http"),
    # Runner.run's own time is the C code under it: the loop, orjson, httptools' parser
    ("event loop in C (uvloop; orjson and other C calls made from it)", "/asyncio/runners.py"),
    ("asyncio (tasks, futures, gather: everyone's)", "/asyncio/"),
    ("other gateway code (identity, audit, app)", "/gateway/"),
)


def _file_of(frame: str) -> str:
    # py-spy's raw frames: "function (path/to/file.py:line)"
    return frame[frame.rfind("(") + 1 :] if "(" in frame else frame


def profile_groups(raw: Path, requests: int) -> dict:
    """Own time by function and by group from py-spy's raw (collapsed) output, in samples and in
    samples per request; the inclusive samples of the connector's `send` and of `execute` in it."""
    own: Counter = Counter()
    groups: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaf = frames[-1]
        own[leaf] += count
        leaf_file = "/" + _file_of(leaf)
        group = next((name for name, where in _GROUPS if where in leaf_file), "other (libraries, interpreter)")
        groups[group] += count
        if "graphql/execution/" in stack or "gateway/connect/" in stack:
            inclusive["in the REST connector (graphql-core execution, resolvers, mapping, calls)"] += count
        if "RestClient.call " in stack or "RestClient._request " in stack:
            inclusive["REST connector: its HTTP calls (RestClient.call)"] += count
        if "gateway/planner/" in stack:
            inclusive["planning"] += count
    per = requests or 1
    return {
        "samples": total,
        "requests_while_sampling": requests,
        "groups": [
            {"group": g, "samples": n, "share": round(n / total, 3), "samples_per_request": round(n / per, 3)}
            for g, n in groups.most_common()
        ],
        "inclusive": [{"what": w, "samples": n, "share": round(n / total, 3)} for w, n in inclusive.most_common()],
        "top_functions": [{"function": f, "samples": n, "share": round(n / total, 3)} for f, n in own.most_common(25)],
    }


def profile(label: str, process: Process, url: str, body: Path, seconds: int, connections: int) -> dict | None:
    """py-spy's samples of the gateway's thread holding the GIL (--gil: neither an idle loop nor
    the SQLite thread's polling), grouped."""
    py_spy = VENV_BIN / "py-spy"
    if not py_spy.exists():
        print("py-spy is missing (the bench extra): no profile", flush=True)
        return None
    raw = RESULTS / f"rest-profile-{label}.txt"
    outcome: dict = {}

    def load() -> None:
        outcome["wrk"] = wrk(url, body, duration=seconds + 3, connections=connections)

    driver = threading.Thread(target=load)
    driver.start()
    time.sleep(1.5)  # sample the load, not its first connections
    subprocess.run(
        [
            str(py_spy),
            "record",
            "-p",
            str(process.popen.pid),
            "-d",
            str(seconds),
            "-r",
            "200",
            "--gil",
            "-f",
            "raw",
            "-o",
            str(raw),
        ],
        check=True,
        capture_output=True,
    )
    driver.join()
    _rps, _p50, _p99, requests, _errors = parse_wrk(outcome["wrk"])
    # the requests served while sampling: wrk ran (seconds + 3) s, py-spy `seconds` of them
    return profile_groups(raw, round(requests * seconds / (seconds + 3)))


# -- the run -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15, help="seconds per round and gateway")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--profile", type=int, default=12, help="seconds of py-spy sampling of the REST-backed gateway; 0: none"
    )
    parser.add_argument("--gateways", default=",".join(GATEWAYS), help=f"among {', '.join(GATEWAYS)}")
    args = parser.parse_args()
    if os.cpu_count() is None or os.cpu_count() < 2:
        sys.exit("the benchmark pins the gateway and the load on two different cores: it needs two")
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    gateways = [g for g in args.gateways.split(",") if g]
    if "rest" not in gateways or not set(gateways) <= set(GATEWAYS):
        sys.exit(f"--gateways: rest and any of {', '.join(GATEWAYS)}")
    RESULTS.mkdir(exist_ok=True)
    body = RESULTS / "heavy.json"
    body.write_text(json.dumps(HEAVY))
    work = RESULTS / "rest"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()

    subgraphs, apis = Subgraphs(), RestApis()
    upstreams = BothUpstreams(subgraphs, apis)
    processes: dict[str, tuple[Process, str]] = {}
    report: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "duration_s": args.duration,
        "rounds": args.rounds,
        "connections": args.connections,
        "load_average_at_start": os.getloadavg(),
    }
    try:
        plain = subgraphs.supergraph(work / "supergraph-subgraphs.graphql")
        rest = compose_rest(apis.url, work / "supergraph-rest.graphql")
        if api_schema(
            compose_subgraphs_without_me(subgraphs, work / "supergraph-subgraphs-without-me.graphql")
        ) != api_schema(rest):
            raise RuntimeError(
                f"the REST connectors do not give clients the subgraphs' API schema: compare {plain} and {rest}"
            )
        print("both supergraphs compose, with the same API schema", flush=True)
        for name in gateways:
            port = free_port()
            url = f"http://127.0.0.1:{port}/graphql"
            if name == "subgraphs":
                (RESULTS / "bench.db").unlink(missing_ok=True)
                process = start_gateway("citygate-unshared", plain, port, log_name="rest-subgraphs")
            elif name == "subgraphs-folder":
                process = start_folder_gateway(name, subgraph_folder(work / "subgraph-connectors", subgraphs), port)
            else:
                process = start_folder_gateway(name, rest_folder(work / "rest-connectors", apis.url), port)
            processes[name] = (process, url)
            wait_for(url, {"query": "{ __typename }"}, headers={"accept": "application/json"})
        reference = None
        calls_one: dict[str, dict[str, int]] = {}
        for name, (_process, url) in processes.items():
            upstreams.reset()
            raw = answer_bytes(url, HEAVY)
            calls_one[name] = {**subgraphs_counts(subgraphs), **apis.counts()}
            got = json.loads(raw)
            if "errors" in got:
                raise RuntimeError(f"{name} answered the heavy query with errors: {got['errors'][:2]}")
            if reference is None:
                reference = got
                print(f"{name}: the reference answer ({len(raw)} bytes)", flush=True)
            elif got != reference:
                raise RuntimeError(f"{name} does not return the same JSON as {gateways[0]} to the heavy query")
            else:
                print(f"{name}: the same JSON ({len(raw)} bytes)", flush=True)
        report["upstream_calls_one_request"] = calls_one
        print(f"upstream calls for one heavy query: {calls_one}", flush=True)
        for _process, url in processes.values():
            wrk(url, body, duration=5, connections=args.connections)  # warm up
        runs: dict[str, list[Run]] = {name: [] for name in processes}
        loads: list[float] = []
        for round_index in range(args.rounds):
            for name, (process, url) in processes.items():
                run = measure(name, process, url, upstreams, body, args)
                runs[name].append(run)
                loads.append(os.getloadavg()[0])
                print(
                    f"  round {round_index + 1} {name:17s} {run.rps:8.1f} rps  p50 {run.p50_ms:7.2f} ms  CPU {run.cpu_ms_per_request:.3f} ms/req  "
                    f"upstream calls/req {run.subgraph_requests_per_request}  errors {run.errors} {run.error_detail}  "
                    f"load {loads[-1]:.2f}",
                    flush=True,
                )
        report["runs"] = {name: [asdict(r) for r in rs] for name, rs in runs.items()}
        report["load_average_during_rounds"] = {
            "min": min(loads),
            "median": statistics.median(loads),
            "max": max(loads),
        }
        report["summary"] = summary(runs)
        if args.profile:
            report["profile"] = {}
            for name in ("rest", *(n for n in processes if n != "rest")):
                print(f"profiling {name} under load ({args.profile} s)", flush=True)
                report["profile"][name] = profile(name, *processes[name], body, args.profile, args.connections)
            report["load_average_after_profile"] = os.getloadavg()
    finally:
        for process, _url in processes.values():
            process.stop()
        subgraphs.process.stop()
        apis.process.stop()
    print_report(report)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"rest-{stamp}.json").write_text(json.dumps(report, indent=2))
    print(f"\nwritten: bench/results/rest-{stamp}.json")


def subgraphs_counts(subgraphs: Subgraphs) -> dict[str, int]:
    return httpx.get(f"{subgraphs.url}/counts", timeout=5).json()


def summary(runs: dict[str, list[Run]]) -> dict:
    out: dict = {}
    for name, rs in runs.items():
        out[name] = {
            "rps_median": statistics.median(r.rps for r in rs),
            "cpu_ms_per_request_median": statistics.median(r.cpu_ms_per_request for r in rs),
            "p50_ms_median": statistics.median(r.p50_ms for r in rs),
            "upstream_calls_per_request_median": statistics.median(r.subgraph_requests_per_request for r in rs),
            "errors": sum(r.errors for r in rs),
        }
    rest = runs["rest"]
    for name in (n for n in runs if n != "rest"):
        # each round's runs are seconds apart: their ratio cancels the machine's slow phases
        ratios = sorted(b.rps / a.rps for a, b in zip(runs[name], rest, strict=True) if a.rps)
        cpu = sorted(
            a.cpu_ms_per_request / b.cpu_ms_per_request
            for a, b in zip(runs[name], rest, strict=True)
            if b.cpu_ms_per_request
        )
        out[f"rest/{name}"] = {
            "rps_ratio": round(statistics.median(ratios), 3),
            "rps_ratio_middle_half": [round(q, 3) for q in statistics.quantiles(ratios, n=4)[::2]]
            if len(ratios) > 1
            else None,
            "rps_ratio_of_medians": round(out["rest"]["rps_median"] / out[name]["rps_median"], 3)
            if out[name]["rps_median"]
            else None,
            # the req/s ratio a CPU-bound gateway would have: (CPU per request theirs) / (REST's)
            "cpu_ratio": round(statistics.median(cpu), 3) if cpu else None,
        }
    return out


def print_report(report: dict) -> None:
    print("\nMedians of the rounds (distinct load shape, no call sharing, same core):")
    for name, figures in report.get("summary", {}).items():
        print(f"  {name:24s} {figures}")
    for name, profiled in (report.get("profile") or {}).items():
        if not profiled:
            continue
        print(
            f"\n{name} under load, py-spy --gil at 200 Hz: {profiled['samples']} samples, ~{profiled['requests_while_sampling']} requests "
            "(samples per request x 5 = ms of the core per request)"
        )
        for group in profiled["groups"]:
            print(f"  {group['share']:6.1%}  {group['samples_per_request']:7.3f}/req  {group['group']}")
        for item in profiled["inclusive"]:
            print(f"  {item['share']:6.1%}  (inclusive) {item['what']}")
        print("  top functions by own time:")
        for item in profiled["top_functions"][:15]:
            print(f"  {item['share']:6.1%}  {item['function']}")


if __name__ == "__main__":
    main()
