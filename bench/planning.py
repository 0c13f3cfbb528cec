"""Cold planning time: the benchmark's heavy query, and operations over 100 generated subgraphs.

Run by hand (`python -m bench.planning`); it prints a table for docs/benchmarks.md ("Planning").
Each figure is the median of cold plans: a fresh Planner (empty document and plan caches) per
plan, the document prepared (parsed, validated) before the clock starts, no planning budget.
Nothing here is a test: speed is measured, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.generated import compose_generated_supergraph, generated_queries
from bench.queries import HEAVY
from gateway.planner import Planner
from gateway.supergraph import SupergraphModel, load_supergraph


def bench_supergraph() -> str:
    """The benchmark's four subgraphs, composed by Citygate as bench/run.py composes them."""
    from bench.subgraphs import schemas, sdl_of
    from gateway.composition import SubgraphSource, compose

    sources = [SubgraphSource(name, sdl_of(schema), f"http://127.0.0.1:9/{name}") for name, schema in schemas().items()]
    result = compose(sources)
    if not result.ok or result.supergraph is None:
        raise RuntimeError("the benchmark subgraphs do not compose: " + "; ".join(map(str, result.errors)))
    return result.supergraph


def cold_plan_times(model: SupergraphModel, query: str, rounds: int) -> tuple[list[float], list[float]]:
    """(wall-clock seconds, CPU seconds) of `rounds` cold plans. On a shared machine the CPU time
    is the steadier figure: it leaves out the time other processes held the core."""
    wall, cpu = [], []
    for _ in range(rounds):
        planner = Planner(model)
        prepared = planner.prepare(query, None)
        started, started_cpu = time.perf_counter(), time.process_time()
        planner.plan(prepared, {}, budget=0)
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--subgraphs", type=int, default=100)
    parser.add_argument("--heavy-only", action="store_true", help="only the benchmark's heavy query")
    args = parser.parse_args()

    rows: list[tuple[str, int, tuple[list[float], list[float]]]] = []
    model = load_supergraph(bench_supergraph())
    plan = Planner(model).plan(Planner(model).prepare(HEAVY, None), {}, budget=0)
    rows.append(("heavy query (4 subgraphs)", len(plan.nodes), cold_plan_times(model, HEAVY, args.rounds)))

    if args.heavy_only:
        _print(rows, args.rounds)
        return
    generated = load_supergraph(compose_generated_supergraph(args.subgraphs))
    for label, query in generated_queries(args.subgraphs).items():
        planner = Planner(generated)
        plan = planner.plan(planner.prepare(query, None), {}, budget=0)
        rows.append(
            (f"{label} ({args.subgraphs} subgraphs)", len(plan.nodes), cold_plan_times(generated, query, args.rounds))
        )

    _print(rows, args.rounds)


def _print(rows, rounds: int) -> None:
    print(f"cold plans, {rounds} of each: median (min-max) in ms")
    print("| operation | fetches | wall clock | CPU |")
    print("| --- | ---: | ---: | ---: |")
    for label, nodes, (wall, cpu) in rows:
        print(f"| {label} | {nodes} | {_figure(wall)} | {_figure(cpu)} |")


def _figure(seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return f"{statistics.median(ms):.1f} ({min(ms):.1f}-{max(ms):.1f})"


if __name__ == "__main__":
    main()
