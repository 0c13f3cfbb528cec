"""Plan quality: how many fetches and dependent waves each scenario's plan takes, kept as references.

The scenarios are every query of the plan corpus (plan_corpus.py: the test suite's supergraphs,
the benchmark's, a 100-subgraph one) and the audit-shaped fixtures (fixtures/, served for real in
test_whole_operation.py), each planned as recorded and in generated variants that a gateway
planning field by field handles worse than one planning the whole operation:

- `alias`: every root field asked a second time under an alias;
- `duplicate`: the whole selection written twice (the same keys, merged);
- `fragments`: every selection set wrapped in an inline fragment without a type condition;
- `nested-alias`: every composite field below a root field asked a second time under an alias;
- `siblings`: the operation beside the next query of the same supergraph, as sibling root fields.

plan_quality.json.gz holds (fetches, waves) per scenario, or null where planning fails.
test_plan_quality.py requires every plan to be no worse on both. Record again only after a
deliberate change of plans: `python -m tests.planner.plan_quality`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from graphql import OperationDefinitionNode, parse

from gateway.planner import NField, NFragment, NSelection, PlanningError
from gateway.planner._build import QueryPlanner
from gateway.planner._operation import normalize_selections
from gateway.supergraph import SupergraphModel, load_supergraph
from tests.planner.plan_corpus import load_corpus, selections_from_json, supergraph_digest
from tests.planner.sdl_subgraphs import fixture_supergraph

REFERENCE_FILE = Path(__file__).with_name("plan_quality.json.gz")

# audit-shaped scenarios held as fixtures: scenario -> operations
FIXTURE_OPERATIONS = {
    "provides_on_interface": [
        "{ media { id animals { id name } } }",
        "{ media { id animals { id name ... on Cat { age } } } }",
        "{ media { id } y: media { animals { id } } }",
        "{ media { animals { ... on Cat { age } } b: animals { id ... on Cat { age } } } }",
        "{ media { animals { ... on Cat { age } } } }",
        "{ book { id } media { id } }",
        "{ media { id } book { animals { ... on Dog { name } } } }",
        "{ media { ... on Book { animals { ... on Dog { name age } } } } }",
    ],
}

VARIANT_PREFIX = "v_"


def _aliased(selection: NField) -> NField:
    return NField(
        VARIANT_PREFIX + selection.key, selection.name, selection.arguments, selection.variables, selection.selections
    )


def _keys(selections: tuple[NSelection, ...]) -> set[str]:
    keys: set[str] = set()
    for selection in selections:
        if isinstance(selection, NField):
            keys.add(selection.key)
        else:
            keys |= _keys(selection.selections)
    return keys


def _wrapped(selections: tuple[NSelection, ...]) -> tuple[NSelection, ...]:
    inner: list[NSelection] = []
    for selection in selections:
        if isinstance(selection, NField) and selection.selections is not None:
            inner.append(selection.with_selections(_wrapped(selection.selections)))
        elif isinstance(selection, NFragment):
            inner.append(NFragment(selection.type_condition, _wrapped(selection.selections)))
        else:
            inner.append(selection)
    return (NFragment(None, tuple(inner)),)


def _nested_aliases(selections: tuple[NSelection, ...]) -> tuple[NSelection, ...]:
    result: list[NSelection] = []
    for selection in selections:
        if isinstance(selection, NField) and selection.selections:
            below = selection.selections
            taken = _keys(below)
            copies = tuple(
                _aliased(sub)
                for sub in below
                if isinstance(sub, NField) and sub.selections and VARIANT_PREFIX + sub.key not in taken
            )
            result.append(selection.with_selections(below + copies))
        else:
            result.append(selection)
    return tuple(result)


def variants(
    selections: tuple[NSelection, ...], sibling: tuple[NSelection, ...] | None
) -> Iterator[tuple[str, tuple[NSelection, ...]]]:
    """(name, selections) of the recorded operation and of each generated variant of it."""
    yield "as-recorded", selections
    taken = _keys(selections)
    roots = tuple(
        s
        for s in selections
        if isinstance(s, NField) and not s.name.startswith("__") and VARIANT_PREFIX + s.key not in taken
    )
    if roots:
        yield "alias", selections + tuple(_aliased(s) for s in roots)
    yield "duplicate", selections + selections
    yield "fragments", _wrapped(selections)
    yield "nested-alias", _nested_aliases(selections)
    if sibling is not None:
        renamed = tuple(
            NField("w_" + s.key, s.name, s.arguments, s.variables, s.selections) if isinstance(s, NField) else s
            for s in sibling
        )
        if not _keys(renamed) & taken:
            yield "siblings", selections + renamed


def measure(model: SupergraphModel, selections: tuple[NSelection, ...], variable_definitions=()) -> list[int] | None:
    try:
        plan = QueryPlanner(model, "query", selections, variable_definitions).plan()
    except PlanningError:
        return None
    return [len(plan.nodes), plan.waves]


def scenarios() -> Iterator[tuple[str, str, tuple[NSelection, ...], tuple]]:
    """(supergraph digest, scenario name, selections, variable definitions) of every scenario."""
    corpus = load_corpus()
    queries: dict[str, list[tuple[int, dict]]] = {}
    for index, case in enumerate(corpus["cases"]):
        if case["kind"] == "query" and "nodes" in case["plan"]:
            queries.setdefault(case["supergraph"], []).append((index, case))
    for digest, cases in queries.items():
        for position, (index, case) in enumerate(cases):
            selections = selections_from_json(case["selections"]) or ()
            following = cases[(position + 1) % len(cases)][1] if len(cases) > 1 else None
            # the sibling's variables would need definitions of their own: siblings without any
            sibling = (
                selections_from_json(following["selections"])
                if following and not following["variableDefinitions"]
                else None
            )
            definitions = _definitions(case["variableDefinitions"])
            for name, variant in variants(selections, sibling if not definitions else None):
                yield digest, f"{index}:{case['operationName']}:{name}", variant, definitions
    for scenario, operations in FIXTURE_OPERATIONS.items():
        digest = supergraph_digest(fixture_supergraph(scenario))
        for index, text in enumerate(operations):
            selections = _normalized(text)
            sibling = _normalized(operations[(index + 1) % len(operations)])
            for name, variant in variants(selections, sibling):
                yield digest, f"{scenario}:{index}:{name}", variant, ()


def _normalized(text: str) -> tuple[NSelection, ...]:
    operation = parse(text).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    return normalize_selections(operation.selection_set.selections, {}, {})


def _definitions(printed: list[str]) -> tuple:
    if not printed:
        return ()
    operation = parse("query(" + ", ".join(printed) + ") { __typename }").definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    return tuple(operation.variable_definitions)


def supergraphs() -> dict[str, str]:
    """Every supergraph the scenarios are planned on, by digest."""
    found = dict(load_corpus()["supergraphs"])
    for scenario in FIXTURE_OPERATIONS:
        sdl = fixture_supergraph(scenario)
        found[supergraph_digest(sdl)] = sdl
    return found


def measure_all() -> dict[str, list[int] | None]:
    models = {digest: load_supergraph(sdl) for digest, sdl in supergraphs().items()}
    return {
        f"{digest}:{name}": measure(models[digest], selections, definitions)
        for digest, name, selections, definitions in scenarios()
    }


def load_references() -> dict[str, list[int] | None]:
    with gzip.open(REFERENCE_FILE, "rt", encoding="utf-8") as file:
        return json.load(file)


def save_references(references: dict[str, list[int] | None]) -> None:
    text = json.dumps(references, sort_keys=True, separators=(",", ":"))
    with open(REFERENCE_FILE, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as file:
        file.write(text.encode())


if __name__ == "__main__":
    save_references(measure_all())
