"""The privacy cost in CPU time, in one process, without the load driver's noise.

    python -m bench.privacy_cpu [--requests 100] [--rounds 30] [--concurrency 32] [--no-gc] [--store sqlite|postgresql]

The heavy query through the whole gateway (ASGI app, identity, planning, fetching, shaping,
deciding, auditing to a real SQLite file, serializing), with and without privacy annotations,
against subgraph answers replayed from memory (the subgraphs' own work is not measured). Every
request carries a unique unused variable (the distinct load shape). Prints the gateway's CPU time
per request for both, alternating in short rounds, and the cost: 1 - (CPU without) / (CPU with),
the share of requests per second a CPU-bound gateway loses. The median of the rounds' costs is
steadier than two medians of CPU time on a shared machine. Without the HTTP server's own work
the cost is larger here than under `bench.run`'s load.

With `--store postgresql` both gateways share a fresh PostgreSQL database (created on `--postgres`,
dropped after), as replicas do: the annotated one then reads the consent clock before every
request (gateway/consent/_ledger.py), and its cost is in the figures. Each round also prints the
requests per second of the annotated gateway (wall clock, this process alone).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson

from bench.privacy import OWNERS, seed_store
from bench.queries import HEAVY
from bench.run import RESULTS, Subgraphs


class ReplayedSubgraph:
    """A subgraph answered from memory once the real one answered a request: bytes, as over HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: dict[tuple[str, bytes], bytes] = {}

    async def send(self, query: str, variables, context=None) -> bytes:
        key = (query, orjson.dumps(variables, option=orjson.OPT_SORT_KEYS))
        answer = self.answers.get(key)
        if answer is None:
            async with httpx.AsyncClient(trust_env=False) as client:
                response = await client.post(self.url, json={"query": query, "variables": variables}, timeout=10)
            answer = self.answers[key] = response.content
        await asyncio.sleep(0)  # a real subgraph call yields to the event loop at least once
        return answer


class Driver:
    """Drives one gateway's ASGI app directly: no sockets, no HTTP parsing."""

    def __init__(self, app, api_key: str) -> None:
        self.app = app
        self.headers = [
            (b"content-type", b"application/json"),
            (b"accept", b"application/json"),
            (b"x-api-key", api_key.encode()),
        ]
        self.counter = 0
        self.wall = 0.0

    async def post(self, body: bytes) -> tuple[int, bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "query_string": b"",
            "root_path": "",
            "headers": self.headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 4000),
        }
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive():
            nonlocal sent
            if sent:
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)

    def body(self) -> bytes:
        self.counter += 1
        return orjson.dumps({"query": HEAVY, "variables": {"nonce": str(self.counter)}})

    async def run(self, requests: int, concurrency: int) -> float:
        """CPU seconds of this process per request (the wall-clock seconds per request: `self.wall`)."""
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                status, answer = await self.post(self.body())
                if status != 200 or b'"errors"' in answer:
                    raise RuntimeError(f"failed: {status} {answer[:300]!r}")

        started, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        self.wall = (time.perf_counter() - wall) / requests
        return (time.process_time() - started) / requests


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100, help="requests per gateway per round")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--only", choices=("on", "off"), help="measure one gateway only (under a profiler)")
    parser.add_argument("--no-gc", action="store_true", help="no garbage collection while measuring (steadier figures)")
    parser.add_argument(
        "--profile", type=Path, help="write cProfile statistics of the measured rounds to this file (pstats)"
    )
    parser.add_argument(
        "--owners",
        choices=("one", "each"),
        default="one",
        help="one party owns the four subgraphs (default), or each is its own party: every flow between them decided and audited",
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the gateways' store (default: a SQLite file each)",
    )
    parser.add_argument(
        "--no-clock",
        action="store_true",
        help="with --store postgresql: no consent clock read (as before replicas were consistent; for comparison only, not safe)",
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="with --store postgresql: the server",
    )
    args = parser.parse_args()

    import gc

    from gateway.app import static_app
    from gateway.executor import Subgraphs as Transport
    from gateway.policy import load_policy

    work = Path(tempfile.mkdtemp(prefix="citygate-privacy-cpu-"))
    database = None
    if args.store == "postgresql":
        import asyncpg
        from sqlalchemy.engine import make_url

        database = f"citygate_bench_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(args.postgres)
        await admin.execute(f'CREATE DATABASE "{database}"')
        await admin.close()
        store_urls = dict.fromkeys(
            ("off", "on"), make_url(args.postgres).set(database=database).render_as_string(hide_password=False)
        )
        policy_path, key = await seed_store(work / "unused.db", work / "policy.yaml", store_url=store_urls["on"])
    else:
        policy_path, key = await seed_store(work / "privacy.db", work / "policy.yaml")
        store_urls = {}
        for side in ("off", "on"):  # a SQLite file serves one gateway: a copy each
            shutil.copyfile(work / "privacy.db", work / f"privacy-{side}.db")
            store_urls[side] = f"sqlite:///{work / f'privacy-{side}.db'}"
    policy = load_policy(policy_path)
    drivers: dict[str, Driver] = {}
    answers = {}
    contexts = []
    RESULTS.mkdir(exist_ok=True)
    upstreams = []
    for label, annotated in (("annotations off", False), ("annotations on", True)):
        subgraphs = Subgraphs(annotated=annotated)  # the benchmark's subgraphs, in their own process
        upstreams.append(subgraphs)
        sdl = subgraphs.supergraph(work / f"supergraph-{label.split()[-1]}.graphql").read_text()
        gateway = static_app(
            supergraph=sdl, store_url=store_urls[label.split()[-1]], policy=policy, policy_path=policy_path
        )
        context = gateway.app.router.lifespan_context(gateway.app)
        await context.__aenter__()
        contexts.append(context)
        if args.no_clock:
            gateway.runtime.ledger.clocked = False
        transport = Transport(
            {
                name: ReplayedSubgraph(f"{subgraphs.url}/{name}")
                for name in ("accounts", "inventory", "products", "reviews")
            }
        )
        gateway.state.engine = gateway.runtime.build_engine(sdl, transport, OWNERS[args.owners])
        drivers[label] = Driver(gateway.app, key)
        status, answer = await drivers[label].post(drivers[label].body())
        answers[label] = orjson.loads(answer)
        if status != 200 or "errors" in answers[label] or "privacy" in answers[label].get("extensions", {}):
            raise RuntimeError(f"{label}: the heavy query was not answered in full: {answer[:300]!r}")
    if answers["annotations off"] != answers["annotations on"]:
        raise RuntimeError("the annotated gateway does not return the identical answer")
    gc.set_threshold(100_000, 20, 20)  # as `citygate serve` tunes it (gateway.cli._tune_gc)
    if args.no_gc:
        gc.disable()  # the collector's pauses land in whichever round they fall in: steadier without
    gc.collect()
    gc.freeze()
    for driver in drivers.values():
        await driver.run(args.requests // 4, args.concurrency)  # warm up: plans, caches, decisions
    for subgraphs in upstreams:
        subgraphs.process.stop()  # every answer is in memory now
    per_request: dict[str, list[float]] = {label: [] for label in drivers}
    rates: dict[str, list[float]] = {label: [] for label in drivers}
    profiler = None
    if args.profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    for round_index in range(args.rounds):
        for label, driver in drivers.items():
            if args.only is None or label.endswith(args.only):
                per_request[label].append(await driver.run(args.requests, args.concurrency))
        if args.only is not None:
            only = per_request[f"annotations {args.only}"][-1]
            print(f"round {round_index + 1}: {args.only} {only * 1000:.3f} ms", flush=True)
            continue
        off, on = per_request["annotations off"][-1], per_request["annotations on"][-1]
        rates["annotations off"].append(1 / drivers["annotations off"].wall)
        rates["annotations on"].append(1 / drivers["annotations on"].wall)
        print(
            f"round {round_index + 1}: off {off * 1000:.3f} ms  on {on * 1000:.3f} ms  cost {1 - off / on:.1%}  "
            f"on {rates['annotations on'][-1]:.0f} req/s",
            flush=True,
        )
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    if args.only is not None:
        print(
            f"median CPU per request: {args.only} {statistics.median(per_request[f'annotations {args.only}']) * 1000:.3f} ms (store: {args.store})"
        )
    else:
        off = statistics.median(per_request["annotations off"])
        on = statistics.median(per_request["annotations on"])
        # each round's two runs are seconds apart: the machine's slow and fast phases cancel out in
        # their ratio better than in the medians of each side
        costs = sorted(
            1 - a / b for a, b in zip(per_request["annotations off"], per_request["annotations on"], strict=True)
        )
        quartiles = statistics.quantiles(costs, n=4) if len(costs) > 1 else [costs[0]] * 3
        print(
            f"median CPU per request: off {off * 1000:.3f} ms, on {on * 1000:.3f} ms; "
            f"cost (median of rounds) {quartiles[1]:.1%}, middle half {quartiles[0]:.1%} to {quartiles[2]:.1%}; "
            f"req/s (median): off {statistics.median(rates['annotations off']):.0f}, on {statistics.median(rates['annotations on']):.0f} "
            f"(store: {args.store})"
        )
    for context in reversed(contexts):
        await context.__aexit__(None, None, None)
    if database is not None:
        import asyncpg

        admin = await asyncpg.connect(args.postgres)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
