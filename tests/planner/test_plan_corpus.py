"""Plans stay identical: every operation of the corpus (plan_corpus.py) planned as recorded.

The corpus was recorded with the planner that copied its whole state (`copy.deepcopy`) for each
route it tried; the planner now tries routes on the state itself and undoes what they changed.
Whatever the planner's internals become, the fetches, their operations, order, dependencies,
merge paths, answer selections and representations must not change unless meant to.
"""

from __future__ import annotations

import json
import time

import pytest
from graphql import OperationDefinitionNode, parse

from gateway.planner import Planner, PlanningBudgetExceeded
from gateway.planner import _build as build
from gateway.planner._operation import normalize_selections
from gateway.supergraph import load_supergraph
from tests.planner.plan_corpus import load_corpus, plan_case, plan_to_json, selections_from_json
from tests.planner.sdl_subgraphs import fixture_supergraph
from tests.world.server import SUPERGRAPH_FILE

CORPUS = load_corpus()


def _first_difference(recorded, planned, path: str = "") -> str:
    if type(recorded) is not type(planned):
        return f"{path}: {json.dumps(recorded)[:300]} != {json.dumps(planned)[:300]}"
    if isinstance(recorded, dict):
        for key in sorted(set(recorded) | set(planned)):
            if recorded.get(key) != planned.get(key):
                return _first_difference(recorded.get(key), planned.get(key), f"{path}.{key}")
    if isinstance(recorded, list):
        if len(recorded) != len(planned):
            return f"{path}: {len(recorded)} items != {len(planned)}"
        for index, (a, b) in enumerate(zip(recorded, planned, strict=True)):
            if a != b:
                return _first_difference(a, b, f"{path}[{index}]")
    return f"{path}: {json.dumps(recorded)[:300]} != {json.dumps(planned)[:300]}"


@pytest.mark.parametrize("digest", sorted(CORPUS["supergraphs"]))
def test_every_recorded_operation_is_planned_as_recorded(digest):
    model = load_supergraph(CORPUS["supergraphs"][digest])
    cases = [case for case in CORPUS["cases"] if case["supergraph"] == digest]
    assert cases
    for case in cases:
        planned = plan_case(model, case)
        assert planned == case["plan"], f"{case['operationName']}: {_first_difference(case['plan'], planned)}"


def test_the_corpus_holds_multi_fetch_plans_with_route_choices():
    """The corpus exercises what the change touched: plans of many fetches, entity jumps,
    @requires, and the benchmark's heavy query."""
    plans = [case["plan"] for case in CORPUS["cases"] if "nodes" in case["plan"]]
    assert any(len(plan["nodes"]) >= 10 for plan in plans)
    assert sum(1 for plan in plans if any(node["representations"] for node in plan["nodes"])) >= 50
    assert any(case["operationName"] == "TestQuery" for case in CORPUS["cases"])


def _clock_passing_the_deadline_after(checks: int):
    """A monotonic clock that reads 0 for `checks` reads, then far in the future."""
    reads = iter(range(10**9))
    return lambda: 0.0 if next(reads) < checks else 1e9


def _stop_everywhere(monkeypatch, model, selections, operation_name) -> set[str]:
    """Plan once per read of the clock, the deadline passing at that read; the kinds of trial that
    were running when the budget stopped planning."""
    reads = 0

    def counting_clock() -> float:
        nonlocal reads
        reads += 1
        return 0.0

    monkeypatch.setattr(build.time, "monotonic", counting_clock)
    build.QueryPlanner(model, "query", selections, (), operation_name, deadline=1.0).plan()
    assert reads > 20
    stopped_in: set[str] = set()
    for checks in range(0, reads, max(1, reads // 200)):
        monkeypatch.setattr(build.time, "monotonic", _clock_passing_the_deadline_after(checks))
        builder = build.QueryPlanner(model, "query", selections, (), operation_name, deadline=1.0)
        for trial in ("_rank_routes", "_kept_local"):
            original = getattr(builder, trial)

            def watched(*args, trial=trial, original=original):
                try:
                    return original(*args)
                except PlanningBudgetExceeded:
                    stopped_in.add(trial)
                    raise

            setattr(builder, trial, watched)
        with pytest.raises(PlanningBudgetExceeded):
            builder.plan()
    monkeypatch.setattr(build.time, "monotonic", time.monotonic)
    return stopped_in


def test_the_budget_stops_planning_anywhere_even_in_the_middle_of_a_route_trial(monkeypatch):
    # two kinds of trial are undone when the budget stops them: routes ranked against each other
    # (with the siblings planned after each), and a field planned in the subgraph at hand, kept
    # only if it adds no fetch; the benchmark's heavy query has almost no choice left to rank
    heavy = next(case for case in CORPUS["cases"] if case["operationName"] == "TestQuery")
    model = load_supergraph(CORPUS["supergraphs"][heavy["supergraph"]])
    stopped_in = _stop_everywhere(monkeypatch, model, selections_from_json(heavy["selections"]) or (), "TestQuery")
    assert plan_case(model, heavy) == heavy["plan"]

    on_interface = load_supergraph(fixture_supergraph("provides_on_interface"))
    query = "{ media { animals { ... on Cat { age } } b: animals { id ... on Cat { age } } } }"
    operation = parse(query).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    selections = normalize_selections(operation.selection_set.selections, {}, {})
    stopped_in |= _stop_everywhere(monkeypatch, on_interface, selections, None)
    assert stopped_in == {"_rank_routes", "_kept_local"}
    whole = build.QueryPlanner(on_interface, "query", selections).plan()
    assert [(node.subgraph, node.merge_path) for node in whole.nodes] == [("b", ()), ("c", ("media",))]


def test_a_plan_over_its_budget_is_not_cached_and_the_next_one_is_whole():
    planner = Planner(load_supergraph(SUPERGRAPH_FILE.read_text()))
    query = "{ residents { name bookings { hours } district { name } } }"
    prepared = planner.prepare(query, None)
    with pytest.raises(PlanningBudgetExceeded):
        planner.plan(prepared, {}, budget=1e-9)
    fresh = Planner(load_supergraph(SUPERGRAPH_FILE.read_text()))
    assert plan_to_json(planner.plan(prepared, {})) == plan_to_json(fresh.plan(fresh.prepare(query, None), {}))
