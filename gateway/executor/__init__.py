"""The execution stage: run a query plan against the subgraphs and shape the response.

`Executor.execute` never raises for a subgraph's failure: errors are collected with paths and
`extensions.serviceName`, the rest of the answer still comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cachetools import LRUCache
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    execute,
)

from ..planner import INTROSPECTION_ROOT_FIELDS, PreparedOperation, QueryPlan
from ..supergraph import SupergraphModel
from ._addresses import METADATA_HOSTS, UpstreamRefused, refused
from ._fetch import Execution, FetchRunner, FlowGate, FlowValue, SubgraphTransport, SubgraphUnavailable
from ._merge import SUBJECT_CONFLICT
from ._shape import FieldGuard, GuardLookup, PrivacyDecisions, Shaper, path_of
from ._transport import (
    AnswerTooLarge,
    BreakerSettings,
    CircuitBreaker,
    HttpPool,
    HttpSubgraph,
    InProcessSubgraph,
    SubgraphCircuitOpen,
    SubgraphClient,
    Subgraphs,
    UpstreamAddressRefused,
    UpstreamStatus,
    literal_address,
)

__all__ = [
    "METADATA_HOSTS",
    "SUBJECT_CONFLICT",
    "AnswerTooLarge",
    "BreakerSettings",
    "CircuitBreaker",
    "ExecutionResult",
    "Executor",
    "FieldGuard",
    "FlowGate",
    "FlowValue",
    "GuardLookup",
    "HttpPool",
    "HttpSubgraph",
    "InProcessSubgraph",
    "PrivacyDecisions",
    "SubgraphCircuitOpen",
    "SubgraphClient",
    "SubgraphTransport",
    "SubgraphUnavailable",
    "Subgraphs",
    "UpstreamAddressRefused",
    "UpstreamRefused",
    "UpstreamStatus",
    "literal_address",
    "path_of",
    "refused",
]


@dataclass(slots=True)
class ExecutionResult:
    data: dict[str, Any] | None
    errors: list[dict[str, Any]]
    subgraph_requests: int = 0
    # the same fetched data shaped with other privacy decisions: (data, errors)
    reshape: Callable[[PrivacyDecisions], tuple[dict[str, Any] | None, list[dict[str, Any]]]] | None = None


# The schema a requester's introspection reads (`__schema`, `__type`): (a key naming whom it is
# for, the schema), from the execution's context (privacy/_client_schema.py)
IntrospectionSchema = Callable[[Any], tuple[Hashable, GraphQLSchema]]


class Executor:
    def __init__(
        self,
        model: SupergraphModel,
        transport: SubgraphTransport,
        guarded: GuardLookup | None = None,
        introspection_schema: IntrospectionSchema | None = None,
    ) -> None:
        self.model = model
        self.runner = FetchRunner(model, transport, redact_errors=guarded is not None, guarded=guarded)
        self.shaper = Shaper(model.api_schema, guarded)
        # without it, every requester introspects the whole API schema
        self.introspection_schema = introspection_schema
        self._introspection: LRUCache = LRUCache(maxsize=256)

    async def execute(
        self,
        prepared: PreparedOperation,
        plan: QueryPlan,
        variables: Mapping[str, Any],
        context: Any = None,
        privacy: PrivacyDecisions | None = None,
        flows: FlowGate | None = None,
    ) -> ExecutionResult:
        execution = Execution(variables=variables, context=context, flows=flows)
        if plan.has_introspection:
            execution.data.update(self._run_introspection(prepared, variables, execution.errors, context))
        await self.runner.run(plan, execution)
        fetch_errors, fetched = execution.errors, execution.data

        def shape(decisions: PrivacyDecisions | None) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
            # pure over the fetched data, so a response can be shaped again with other decisions
            errors = list(fetch_errors)
            return self.shaper.shape(plan, fetched, errors, decisions), errors

        # the first shaping in slices: a large answer gives the event loop turns while it is walked
        errors = list(fetch_errors)
        data = await self.shaper.shape_in_slices(plan, fetched, errors, privacy)
        return ExecutionResult(data, errors, execution.subgraph_requests, shape)

    def _run_introspection(
        self, prepared: PreparedOperation, variables: Mapping[str, Any], errors: list, context: Any = None
    ) -> dict:
        # the requester's own schema (what it could ever receive); the operation was validated on
        # the whole API schema, so a type its schema lacks reads as null (`__type`) or is absent
        audience, schema = (
            self.introspection_schema(context)
            if self.introspection_schema is not None
            else (None, self.model.api_schema)
        )
        cache_key = (audience, prepared.text, prepared.name, orjson.dumps(dict(variables), option=orjson.OPT_SORT_KEYS))
        cached = self._introspection.get(cache_key)
        if cached is None:
            document = _introspection_document(prepared)
            result = execute(schema, document, variable_values=dict(variables))
            cached = (result.data or {}, [e.formatted for e in result.errors or ()])
            self._introspection[cache_key] = cached
        data, introspection_errors = cached
        errors.extend(introspection_errors)
        return orjson.loads(orjson.dumps(data))  # a private copy: shaping never shares cached objects


def _introspection_document(prepared: PreparedOperation) -> DocumentNode:
    """The operation restricted to its root `__schema` / `__type` fields."""

    def keep(selection_set: SelectionSetNode) -> SelectionSetNode:
        kept = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.name.value in INTROSPECTION_ROOT_FIELDS:
                    kept.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                kept.append(
                    InlineFragmentNode(
                        type_condition=selection.type_condition,
                        directives=selection.directives,
                        selection_set=keep(selection.selection_set),
                    )
                )
            elif isinstance(selection, FragmentSpreadNode):
                fragment = prepared.fragments[selection.name.value]
                kept.append(
                    InlineFragmentNode(
                        type_condition=fragment.type_condition,
                        directives=selection.directives,
                        selection_set=keep(fragment.selection_set),
                    )
                )
        return SelectionSetNode(selections=tuple(kept))

    operation = prepared.operation
    restricted = OperationDefinitionNode(
        operation=operation.operation,
        name=operation.name,
        variable_definitions=operation.variable_definitions,
        directives=operation.directives,
        selection_set=keep(operation.selection_set),
    )
    return DocumentNode(definitions=(restricted, *prepared.fragments.values()))
