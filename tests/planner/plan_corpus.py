"""A corpus of operations with the plans the planner made for them, kept as a fixture.

The fixture (plan_corpus.json.gz) holds supergraphs, the normalized selections that were planned
(after the privacy stage's `augment`, so exactly what the planner received) and the full plan:
every fetch's operation, dependencies, merge path, answer selection and representation shapes,
or the error planning raised. It was recorded from the test suite, the benchmark's operations and
a generated 100-subgraph supergraph before the planner's state copying changed: changes to the
planner's internals must keep every plan identical (test_plan_corpus.py).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from graphql import OperationDefinitionNode, parse, print_ast

from gateway.planner import (
    AnswerSelection,
    NField,
    NFragment,
    NSelection,
    PlanningError,
    QueryPlan,
    RepresentationField,
    RepresentationFragment,
)
from gateway.planner._build import QueryPlanner
from gateway.supergraph import SupergraphModel, load_supergraph

CORPUS_FILE = Path(__file__).with_name("plan_corpus.json.gz")


def selections_to_json(selections: tuple[NSelection, ...] | None) -> list | None:
    if selections is None:
        return None
    out: list = []
    for selection in selections:
        if isinstance(selection, NField):
            out.append(
                [
                    "f",
                    selection.key,
                    selection.name,
                    selection.arguments,
                    sorted(selection.variables),
                    selections_to_json(selection.selections),
                ]
            )
        else:
            out.append(["t", selection.type_condition, selections_to_json(selection.selections)])
    return out


def selections_from_json(data: list | None) -> tuple[NSelection, ...] | None:
    if data is None:
        return None
    out: list[NSelection] = []
    for item in data:
        if item[0] == "f":
            _, key, name, arguments, variables, subs = item
            out.append(NField(key, name, arguments, frozenset(variables), selections_from_json(subs)))
        else:
            out.append(NFragment(item[1], selections_from_json(item[2]) or ()))
    return tuple(out)


def _jsonable(value):
    # representation entries in the form the corpus was recorded in (tagged lists)
    if isinstance(value, RepresentationField):
        return ["field", value.name, value.source_key, _jsonable(value.entries), value.is_key]
    if isinstance(value, RepresentationFragment):
        return ["fragment", sorted(value.types), _jsonable(value.entries)]
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def _answer_selection(selection: AnswerSelection | None) -> list | None:
    if selection is None:
        return None
    return [
        [[f.answer_key, f.tree_key, f.name, f.arguments, _answer_selection(f.selection)] for f in selection.fields],
        [[sorted(types), _answer_selection(fragment)] for types, fragment in selection.fragments],
    ]


def plan_to_json(plan: QueryPlan) -> dict:
    """Everything of a plan the executor reads, as plain JSON."""
    return {
        "kind": plan.operation_kind,
        "root": plan.root_type,
        "introspection": plan.has_introspection,
        "nodes": [
            {
                "id": node.id,
                "subgraph": node.subgraph,
                "kind": node.operation_kind,
                "document": node.document,
                "variables": list(node.variable_names),
                "dependsOn": list(node.depends_on),
                "mergePath": list(node.merge_path),
                "selection": _answer_selection(node.selection),
                "representations": None
                if node.representations is None
                else {
                    typename: [shape.typename, _jsonable(shape.entries)]
                    for typename, shape in node.representations.items()
                },
                "representationsVariable": node.representations_variable,
            }
            for node in plan.nodes
        ],
    }


def operation_case(
    supergraph_sdl: str,
    kind: str,
    selections: tuple[NSelection, ...],
    variable_definitions: list[str],
    operation_name: str | None,
) -> dict:
    """One recorded planning input (the supergraph by its digest, see `supergraph_digest`)."""
    return {
        "supergraph": supergraph_digest(supergraph_sdl),
        "kind": kind,
        "selections": selections_to_json(selections),
        "variableDefinitions": variable_definitions,
        "operationName": operation_name,
    }


def supergraph_digest(sdl: str) -> str:
    return hashlib.sha256(sdl.encode()).hexdigest()[:16]


def _variable_definitions(printed: list[str]) -> tuple:
    if not printed:
        return ()
    document = parse("query(" + ", ".join(printed) + ") { __typename }")
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    return tuple(operation.variable_definitions)


def printed_variable_definitions(definitions) -> list[str]:
    return [print_ast(definition) for definition in definitions]


def plan_case(model: SupergraphModel, case: dict) -> dict:
    """The plan (or the planning error) of one recorded case, as JSON."""
    builder = QueryPlanner(
        model,
        case["kind"],
        selections_from_json(case["selections"]) or (),
        _variable_definitions(case["variableDefinitions"]),
        case["operationName"],
    )
    try:
        return plan_to_json(builder.plan())
    except PlanningError as error:
        return {"error": type(error).__name__, "message": str(error)}


def load_corpus() -> dict:
    with gzip.open(CORPUS_FILE, "rt", encoding="utf-8") as file:
        return json.load(file)


def save_corpus(corpus: dict) -> None:
    text = json.dumps(corpus, sort_keys=True, separators=(",", ":"))
    with open(CORPUS_FILE, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as file:
        file.write(text.encode())


def models(corpus: dict) -> dict[str, SupergraphModel]:
    return {digest: load_supergraph(sdl) for digest, sdl in corpus["supergraphs"].items()}


def rerecord() -> None:
    """Plan the recorded inputs again and keep the plans: only for a deliberate change of plans,
    after reviewing why every plan that changed did (`python -m tests.planner.plan_corpus`)."""
    corpus = load_corpus()
    loaded = models(corpus)
    for case in corpus["cases"]:
        case["plan"] = plan_case(loaded[case["supergraph"]], case)
    save_corpus(corpus)


if __name__ == "__main__":
    rerecord()
