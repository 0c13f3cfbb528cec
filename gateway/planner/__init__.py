"""The planning stage: documents in, query plans out. Never performs I/O.

`Planner.prepare` parses a document, checks it against the `DocumentLimits` (before anything
expands it) and validates it, once per distinct text; `Planner.plan` builds a plan once per
(document, operation, values of the `@skip`/`@include` variables), within a time budget, and
caches it. Both caches are bounded by an estimate of their bytes, not only by entries: a cached
document or plan never holds more than its share of memory.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace

from cachetools import LRUCache
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    OperationDefinitionNode,
    Visitor,
    parse,
    validate,
    visit,
)

from ..errors import ClientRefusal
from ..supergraph import SupergraphModel
from ._build import PlanningBudgetExceeded, PlanningError, QueryPlanner
from ._cost import estimate_cost, field_costs
from ._limits import DocumentLimits, LimitExceeded, check_document, check_text, check_variables
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
    RepresentationEntry,
    RepresentationField,
    RepresentationFragment,
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
    "DocumentLimits",
    "FetchNode",
    "LimitExceeded",
    "NField",
    "NFragment",
    "NSelection",
    "Planner",
    "PlanningBudgetExceeded",
    "PlanningError",
    "PreparedOperation",
    "QueryPlan",
    "Representation",
    "RepresentationEntry",
    "RepresentationField",
    "RepresentationFragment",
    "SField",
    "SSelection",
    "check_variables",
    "collect_fields",
]


class DocumentError(ClientRefusal):
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
    # the estimated cost (demand control) with the limits' default list size; None when it depends
    # on the variables (a slicing argument given as one): estimated per request then
    cost: int | None = None

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


# what the cached documents may hold, and the cached plans (each, estimated): a distinct hostile
# document costs at most its share, and is evicted like any other
CACHE_BYTES = 64 * 1024 * 1024


def _plan_bytes(plan: QueryPlan) -> int:
    """An estimate of what a cached plan holds: its normalized fields (the client's selection, and
    what the executor compiles from it) and its subgraph operations."""
    fields = 0
    stack: list[tuple[NSelection, ...]] = [plan.selections]
    while stack:
        for selection in stack.pop():
            if isinstance(selection, NField):
                fields += 1
                if selection.selections:
                    stack.append(selection.selections)
            else:
                stack.append(selection.selections)
    return 1024 + fields * 600 + sum(len(node.document) for node in plan.nodes) * 8


def _document_bytes(entry: PreparedOperation) -> int:
    # a parsed document holds a few objects per token: ~24 bytes of AST per byte of text (measured
    # with tracemalloc on the audit's and the demo's queries), and the text itself
    return 512 + len(entry.text) * 25


class Planner:
    def __init__(
        self,
        model: SupergraphModel,
        cache_size: int = 2048,
        augment=None,
        *,
        limits: DocumentLimits | None = None,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        """`augment(selections, root_type)` may add fields to what is planned (never shaped);
        `limits` are the default for `prepare` and `plan` (each may be given others)."""
        self.model = model
        self.augment = augment
        self.limits = limits or DocumentLimits()
        # bounded twice: by entries (lookups stay cheap) and by estimated bytes
        self._documents: LRUCache = LRUCache(maxsize=cache_bytes, getsizeof=_document_bytes)
        self._plans: LRUCache = LRUCache(maxsize=cache_bytes, getsizeof=_plan_bytes)
        self._cache_size = cache_size
        self._field_costs = field_costs(model.schema)  # @cost / @listSize, when the supergraph carries them

    def clear_caches(self) -> None:
        """Forget every document and plan (a retired Engine's planner, before it is freed)."""
        self._documents.clear()
        self._plans.clear()

    @staticmethod
    def _remember(cache: LRUCache, key, value, entries: int) -> None:
        while len(cache) >= entries:
            cache.popitem()
        with contextlib.suppress(ValueError):  # larger than the whole cache: planned again when asked again
            cache[key] = value

    def prepare(self, text: str, operation_name: str | None, limits: DocumentLimits | None = None) -> PreparedOperation:
        limits = limits or self.limits
        cache_key = (
            text,
            operation_name,
            limits.max_document_size,
            limits.max_tokens,
            limits.max_depth,
            limits.max_fields,
            limits.max_aliases,
            limits.max_root_fields,
            limits.default_list_size,
        )
        prepared = self._documents.get(cache_key)
        if prepared is not None:
            return prepared
        document = self._parse_and_validate(text, limits)
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
        cost, uses_variables = self._estimate(operation, fragments, None, limits)
        prepared = PreparedOperation(
            text,
            document,
            operation,
            fragments,
            condition_variables(operation, fragments),
            None if uses_variables else cost,
        )
        self._remember(self._documents, cache_key, prepared, self._cache_size)
        return prepared

    def _estimate(self, operation, fragments, variables, limits: DocumentLimits) -> tuple[int, bool]:
        try:
            return estimate_cost(
                self.model.api_schema,
                operation,
                fragments,
                costs=self._field_costs,
                variables=variables,
                default_list_size=limits.default_list_size,
            )
        except RecursionError:  # nesting of inline fragments, far past anything the limits let through
            raise DocumentError("GRAPHQL_VALIDATION_FAILED", ["the document is nested too deeply"]) from None

    def cost(
        self, prepared: PreparedOperation, variables: dict[str, object] | None, limits: DocumentLimits | None = None
    ) -> int:
        """The estimated cost of `prepared` with these (coerced) variables: the prepared one, or
        estimated again when slicing arguments are variables."""
        if prepared.cost is not None:
            return prepared.cost
        return self._estimate(prepared.operation, prepared.fragments, variables or {}, limits or self.limits)[0]

    def _parse_and_validate(self, text: str, limits: DocumentLimits) -> DocumentNode:
        try:
            check_text(text, limits)  # before graphql-core's parser, which costs ~10 µs a token
        except LimitExceeded as error:
            raise DocumentError(error.code, [error.message]) from None
        try:
            document = parse(text, max_tokens=limits.max_tokens)
        except GraphQLError as error:
            if "nested too deeply" in error.message:  # graphql-core's own bound on nesting, far past any allowed depth
                raise DocumentError(
                    "MAX_DEPTH_EXCEEDED", [f"the operation is nested deeper than {limits.max_depth} fields"]
                ) from None
            raise DocumentError("GRAPHQL_PARSE_FAILED", [error]) from None
        except RecursionError:  # the parser recurses per level: far deeper than any allowed depth
            raise DocumentError(
                "MAX_DEPTH_EXCEEDED", [f"the operation is nested deeper than {limits.max_depth} fields"]
            ) from None
        try:
            # before validation, which expands fragments (overlapping fields) and recurses per level
            check_document(document, limits)
        except LimitExceeded as error:
            raise DocumentError(error.code, [error.message]) from None
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
                    raise DocumentError(
                        "GRAPHQL_VALIDATION_FAILED",
                        [f"aliases starting with {RESERVED_PREFIX} are reserved for the gateway"],
                    )
        return document

    def plan(
        self, prepared: PreparedOperation, variables: dict[str, object] | None = None, *, budget: float | None = None
    ) -> QueryPlan:
        """The plan of `prepared`, from the cache or built within `budget` seconds (default: the
        limits' planning_timeout); over it: PlanningBudgetExceeded, and nothing is cached."""
        variables = variables or {}
        conditions = tuple(bool(variables.get(name)) for name in prepared.condition_variables)
        cache_key = (prepared.text, prepared.name, conditions)
        plan = self._plans.get(cache_key)
        if plan is None:
            budget = self.limits.planning_timeout if budget is None else budget
            selections = normalize_selections(
                prepared.operation.selection_set.selections, prepared.fragments, variables
            )
            planned = selections
            if self.augment is not None:
                planned = self.augment(selections, self.model.root_types.get(prepared.kind, ""))
            builder = QueryPlanner(
                self.model,
                prepared.kind,
                planned,
                tuple(prepared.operation.variable_definitions or ()),
                prepared.name,
                deadline=time.monotonic() + budget if budget > 0 else None,
            )
            try:
                plan = builder.plan()
            except RecursionError:  # not at any depth the limits allow (tests/planner/test_limits.py)
                raise PlanningBudgetExceeded("the operation is nested too deeply to plan") from None
            if planned is not selections:
                plan = replace(plan, selections=selections)  # shaping follows the client's selection
            self._remember(self._plans, cache_key, plan, self._cache_size)
        return plan
