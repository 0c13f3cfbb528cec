"""The planning stage: documents in, query plans out. Never performs I/O.

`Planner.prepare` parses and validates a document once per distinct text; `Planner.plan` builds
a plan once per (document, operation, values of the `@skip`/`@include` variables) and caches it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cachetools import LRUCache
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    OperationDefinitionNode,
    Visitor,
    parse,
    validate,
    visit,
)

from ..supergraph import SupergraphModel
from ._build import PlanningError, QueryPlanner
from ._operation import (
    INTROSPECTION_ROOT_FIELDS,
    CollectedField,
    NField,
    NFragment,
    NSelection,
    collect_fields,
    condition_variables,
    normalize_selections,
)
from ._plan import (
    RESERVED_PREFIX,
    AnswerSelection,
    AnswerView,
    AskedField,
    FetchNode,
    QueryPlan,
    Representation,
    SField,
    SSelection,
)

__all__ = [
    "INTROSPECTION_ROOT_FIELDS",
    "RESERVED_PREFIX",
    "AnswerSelection",
    "AnswerView",
    "AskedField",
    "CollectedField",
    "DocumentError",
    "FetchNode",
    "NField",
    "NFragment",
    "NSelection",
    "Planner",
    "PlanningError",
    "PreparedOperation",
    "QueryPlan",
    "Representation",
    "SField",
    "SSelection",
    "collect_fields",
]


class DocumentError(Exception):
    """The request's document cannot be run; `code` is the stable `extensions.code`."""

    def __init__(self, code: str, errors: list[GraphQLError] | list[str]) -> None:
        super().__init__("; ".join(str(e.message if isinstance(e, GraphQLError) else e) for e in errors))
        self.code = code
        self.errors = errors


@dataclass(frozen=True, slots=True)
class PreparedOperation:
    """A parsed, validated operation of a document."""

    text: str
    document: DocumentNode
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    condition_variables: tuple[str, ...]

    @property
    def kind(self) -> str:
        return self.operation.operation.value

    @property
    def name(self) -> str | None:
        return self.operation.name.value if self.operation.name else None


def _aliases(document: DocumentNode) -> list[str]:
    found: list[str] = []

    class _Finder(Visitor):
        def enter_field(self, node: FieldNode, *_args) -> None:
            if node.alias is not None:
                found.append(node.alias.value)

    visit(document, _Finder())
    return found


def _depth(selection_set, fragments: dict[str, FragmentDefinitionNode], seen: frozenset[str] = frozenset()) -> int:
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.selection_set is not None:
                deepest = max(deepest, 1 + _depth(selection.selection_set, fragments, seen))
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None and selection.name.value not in seen:
                deepest = max(deepest, _depth(fragment.selection_set, fragments, seen | {selection.name.value}))
        else:
            deepest = max(deepest, _depth(selection.selection_set, fragments, seen))
    return deepest


class Planner:
    # Limits that keep a hostile document from costing more than a normal one.
    max_tokens = 50_000
    max_depth = 64

    def __init__(self, model: SupergraphModel, cache_size: int = 2048, augment=None) -> None:
        """`augment(selections, root_type)` may add fields to what is planned (never shaped)."""
        self.model = model
        self.augment = augment
        self._documents: LRUCache = LRUCache(maxsize=cache_size)
        self._plans: LRUCache = LRUCache(maxsize=cache_size)

    def prepare(self, text: str, operation_name: str | None) -> PreparedOperation:
        cache_key = (text, operation_name)
        prepared = self._documents.get(cache_key)
        if prepared is not None:
            return prepared
        document = self._parse_and_validate(text)
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name is None:
            if len(operations) != 1:
                raise DocumentError(
                    "OPERATION_RESOLUTION_FAILURE",
                    ["the document holds several operations: name the one to run with operationName"]
                    if operations
                    else ["the document holds no operation"],
                )
            operation = operations[0]
        else:
            matching = [o for o in operations if o.name and o.name.value == operation_name]
            if not matching:
                raise DocumentError("OPERATION_RESOLUTION_FAILURE", [f"unknown operation named {operation_name!r}"])
            operation = matching[0]
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        prepared = PreparedOperation(text, document, operation, fragments, condition_variables(operation, fragments))
        self._documents[cache_key] = prepared
        return prepared

    def _parse_and_validate(self, text: str) -> DocumentNode:
        try:
            document = parse(text, max_tokens=self.max_tokens)
        except GraphQLError as error:
            raise DocumentError("GRAPHQL_PARSE_FAILED", [error]) from None
        except RecursionError:
            raise DocumentError("GRAPHQL_PARSE_FAILED", ["the document is nested too deeply"]) from None
        try:
            errors = validate(self.model.api_schema, document)
        except RecursionError:
            raise DocumentError("GRAPHQL_VALIDATION_FAILED", ["the document is nested too deeply"]) from None
        if errors:
            raise DocumentError("GRAPHQL_VALIDATION_FAILED", errors)
        if RESERVED_PREFIX in text:
            # the gateway's own keys in subgraph operations and in the response tree start with it
            for node in _aliases(document):
                if node.startswith(RESERVED_PREFIX):
                    raise DocumentError("GRAPHQL_VALIDATION_FAILED", [f"aliases starting with {RESERVED_PREFIX} are reserved for the gateway"])
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode) and _depth(definition.selection_set, fragments) > self.max_depth:
                raise DocumentError("MAX_DEPTH_EXCEEDED", [f"the operation is nested deeper than {self.max_depth} levels"])
        return document

    def plan(self, prepared: PreparedOperation, variables: dict[str, object] | None = None) -> QueryPlan:
        variables = variables or {}
        conditions = tuple(bool(variables.get(name)) for name in prepared.condition_variables)
        cache_key = (prepared.text, prepared.name, conditions)
        plan = self._plans.get(cache_key)
        if plan is None:
            selections = normalize_selections(prepared.operation.selection_set.selections, prepared.fragments, variables)
            planned = selections
            if self.augment is not None:
                planned = self.augment(selections, self.model.root_types.get(prepared.kind, ""))
            builder = QueryPlanner(
                self.model,
                prepared.kind,
                planned,
                tuple(prepared.operation.variable_definitions or ()),
                prepared.name,
            )
            plan = builder.plan()
            if planned is not selections:
                plan = replace(plan, selections=selections)  # shaping follows the client's selection
            self._plans[cache_key] = plan
        return plan
