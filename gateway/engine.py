"""One supergraph, ready to answer: planner, executor and the request pipeline between them.

An Engine is immutable once built. Serving a new supergraph means building a new Engine and
swapping the reference; requests in flight keep the Engine they started with.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from graphql import GraphQLError
from graphql.execution.values import get_variable_values

from . import collector, telemetry, usage
from .errors import ClientRefusal
from .executor import Executor, FieldGuard, Subgraphs, SubgraphTransport
from .identity import PUBLIC, Requester
from .planner import (
    INTROSPECTION_ROOT_FIELDS,
    DocumentError,
    DocumentLimits,
    LimitExceeded,
    Planner,
    PlanningBudgetExceeded,
    PlanningError,
    check_variables,
)
from .policy import Policy
from .privacy import (
    CONTRIBUTORS_PREFIX,
    ENTITY_PREFIX,
    SUBJECT_KEY,
    AuditRefused,
    ClientSchemas,
    PrivacyGuard,
    PrivacySchema,
    RequestFlows,
    entity_key_fields,
    field_sources,
    inject_privacy_fields,
)
from .supergraph import PrivacyAnnotations, SupergraphError, SupergraphModel, load_supergraph

logger = logging.getLogger("citygate.engine")

UNKNOWN_CONCRETE_TYPE = "_cg_unknown_concrete_type"  # a data key no answer holds (see Engine._guarded)
# graphql-core's suggestions: "... Did you mean 'name'?", "... Did you mean 'a', 'b', or 'c'?"
_SUGGESTION = re.compile(r"\s*Did you mean .*\?$", re.DOTALL)


class RequestError(ClientRefusal):
    """The request cannot run: bad document, bad variables, no plan. Carries GraphQL errors; `code`
    is the refusal's (or the document's, the limit's, the planner's error's) own."""

    def __init__(self, code: str, messages: list[str], *, executed: bool = False, locations=None) -> None:
        super().__init__("; ".join(messages))
        self.code = code
        self.messages = messages
        self.executed = executed  # True when the error belongs in a response with "data": null
        self.locations = locations or [None] * len(messages)

    def errors(self) -> list[dict[str, Any]]:
        result = []
        for message, locations in zip(self.messages, self.locations, strict=False):
            error: dict[str, Any] = {"message": message, "extensions": {"code": self.code}}
            if locations:
                error["locations"] = locations
            result.append(error)
        return result


@dataclass(slots=True)
class GraphQLResponse:
    data: dict[str, Any] | None
    errors: list[dict[str, Any]]
    extensions: dict[str, Any] = field(default_factory=dict)
    subgraph_requests: int = 0
    disclosures: list = field(default_factory=list)  # audited disclosures to someone but the subject
    shared: bool = False  # answered from another request's execution
    # to_dict() as JSON, when asked for: then data, errors and extensions are released (None)
    encoded: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.errors:
            body["errors"] = self.errors
        body["data"] = self.data
        if self.extensions:
            body["extensions"] = self.extensions
        return body


class Engine:
    """Plans, executes and guards operations on one supergraph.

    A supergraph that carries privacy annotations is only served with a PrivacyGuard: without
    one the Engine refuses to exist (fail closed).
    """

    runs = 0  # operations running on this Engine now (see run)
    released = False  # retired and freed (see release_steps)

    def __init__(self, model: SupergraphModel, transport: SubgraphTransport, guard: PrivacyGuard | None = None) -> None:
        self.model = model
        self.transport = transport
        self.guard = guard
        # identical queries of one requester in flight at once share one execution
        self._in_flight: dict[tuple, asyncio.Future] = {}
        if guard is not None:
            self._check_legal_bases(guard.policy)
        self.privacy = PrivacySchema(model) if model.privacy else None
        if self.privacy is not None:
            if guard is None:
                raise SupergraphError(
                    "the supergraph carries privacy annotations: it is only served with a policy and a store"
                )
            problems = self.privacy.check()
            if problems:
                raise SupergraphError("; ".join(f"{p.code}: {p.message}" for p in problems))
            self.planner = Planner(model, augment=partial(inject_privacy_fields, self.privacy))
            # introspection shows each requester what it could ever receive (privacy/_client_schema.py)
            assert guard is not None
            self.client_schemas: ClientSchemas | None = ClientSchemas(model, self.privacy, guard.policy, self._sources)
            self.executor = Executor(
                model, transport, guarded=self._guarded, introspection_schema=self.client_schemas.for_requester
            )
        else:
            self.planner = Planner(model)
            self.client_schemas = None  # nothing personal: every requester introspects the whole API schema
            self.executor = Executor(model, transport)
        telemetry.watch_planner(self.planner)

    def _guarded(self, type_name: str, field_name: str) -> FieldGuard | None:
        """What guards `type_name.field_name` for the executor (shaping, flows), or None: the
        privacy stage's guard lookup (executor.GuardLookup)."""
        assert self.privacy is not None
        personal = self.privacy.personal(type_name, field_name)
        if personal is not None:
            sources = self._sources(type_name, field_name)
            assert self.guard is not None
            by_path = any(
                rule.paths and rule.could_cover(personal.category, sources) for rule in self.guard.policy.legal_bases
            )
            return FieldGuard(
                "personal",
                personal,
                SUBJECT_KEY,
                type_name,
                field_name,
                stand_in=self.privacy.subject_field(type_name),
                sources=sources,
                by_path=by_path,
            )
        aggregate = self.privacy.aggregate(type_name, field_name)
        if aggregate is not None:
            # open data under differential privacy answers the same question about the same entity
            # the same way (privacy/_noise.py): the guard reads the entity's key where the
            # injection put it; without open data the count alone is the subject
            assert self.guard is not None
            keys = entity_key_fields(self.model, type_name) if self.guard.policy.open_data is not None else ()
            return FieldGuard(
                "aggregate",
                aggregate,
                CONTRIBUTORS_PREFIX + field_name,
                type_name,
                field_name,
                entity_keys=tuple(ENTITY_PREFIX + k for k in keys),
            )
        # An object whose answer names no concrete type is shaped as the abstract type: where any
        # type it may be guards the field, it is guarded with a subject (or count) that is never
        # there, so the value is withheld (fail closed).
        for concrete in self.privacy.concrete_types_with(type_name):
            guard = self._guarded(concrete, field_name) if concrete != type_name else None
            if guard is not None:
                return FieldGuard(guard.kind, guard.annotation, UNKNOWN_CONCRETE_TYPE, type_name, field_name)
        return None

    def _sources(self, type_name: str, field_name: str) -> frozenset[str]:
        """The owners whose data a value of `type_name.field_name` is: those of every subgraph that
        can resolve the field, on the type or on an interface it implements (an @interfaceObject
        may resolve it there): a legal basis covers the value only if it names them all."""
        return field_sources(self.model, type_name, field_name)

    def _check_legal_bases(self, policy: Policy) -> None:
        """Refuse a basis whose `paths` name a field the supergraph lacks (the policy does not fit);
        warn about `sources` naming no owner of it (an owner may register later)."""
        unknown = []
        for rule in policy.legal_bases:
            for path in sorted(rule.paths):
                type_name, field_name = path.split(".", 1)
                facts = self.model.types.get(type_name)
                if facts is None or field_name not in facts.fields:
                    unknown.append(
                        f"POLICY_UNKNOWN_PATH: legal basis {rule.name}: path {path} does not exist in the supergraph"
                    )
        if unknown:
            raise SupergraphError("; ".join(unknown))
        owners = {self.model.owner_of(name) for name in self.model.subgraphs}
        for rule in policy.legal_bases:
            absent = sorted(rule.sources - owners)
            if absent:
                logger.warning(
                    "legal basis %s covers the data of %s, which own(s) no subgraph yet", rule.name, ", ".join(absent)
                )

    @classmethod
    def from_sdl(
        cls,
        sdl: str,
        transport: SubgraphTransport | None = None,
        *,
        guard: PrivacyGuard | None = None,
        privacy_overrides: PrivacyAnnotations | None = None,
        owners: dict[str, str] | None = None,
    ) -> Engine:
        """An Engine for a supergraph, reaching its subgraphs at their join__graph URLs; `owners`
        names the party owning each subgraph (see SupergraphModel.owners)."""
        with collector.building():
            model = load_supergraph(sdl, privacy_overrides, owners)
            if transport is None:
                transport = Subgraphs.over_http({name: s.url for name, s in model.subgraphs.items()})
            return cls(model, transport, guard)

    def release_steps(self) -> Iterator[None]:
        """Free a retired Engine (gateway/collector.py): its schemas' reference cycles broken a slice
        a step, then everything it holds dropped. Only once no request runs on it: a request that
        still reaches it afterwards is refused with SERVICE_UNAVAILABLE."""
        assert self.runs == 0
        self.released = True
        model = self.model
        self.planner.clear_caches()
        for schema in (model.api_schema, model.schema):
            yield from collector.schema_release_steps(schema)
        released = {"released": True, "runs": 0}
        vars(self).clear()
        vars(self).update(released)

    def coerce_variables(self, prepared, variables: Mapping[str, Any] | None) -> dict[str, Any]:
        definitions = prepared.operation.variable_definitions
        if not definitions:
            return {}
        coerced = get_variable_values(self.model.api_schema, definitions, dict(variables or {}))
        if isinstance(coerced, list):
            raise RequestError("BAD_USER_INPUT", [e.message for e in coerced])
        coerced = getattr(coerced, "coerced", coerced)  # graphql-core 3.3 wraps the values
        # Send what the client sent (plus operation defaults): subgraphs coerce for themselves.
        forwarded = dict(variables or {})
        for definition in definitions:
            name = definition.variable.name.value
            if name not in forwarded and name in coerced:
                forwarded[name] = _plain(coerced[name])
        return forwarded

    async def run(self, *args: Any, **kwargs: Any) -> GraphQLResponse:
        """Answer one operation (see `_run`), counted while it runs: a retired Engine is released
        only once none runs on it."""
        if self.released:
            raise RequestError(
                "SERVICE_UNAVAILABLE", ["the supergraph this request started with is no longer served: retry"]
            )
        self.runs += 1
        try:
            return await self._run(*args, **kwargs)
        finally:
            self.runs -= 1

    async def _run(
        self,
        query: str,
        operation_name: str | None = None,
        variables: Mapping[str, Any] | None = None,
        *,
        allowed_kinds: tuple[str, ...] = ("query", "mutation"),
        include_plan: bool = False,
        requester: Requester = PUBLIC,
        request_id: str | None = None,
        encode: bool = False,
        limits: DocumentLimits | None = None,
        introspection: bool = True,
        suggestions: bool = True,
        max_cost: int | None = None,
        report_cost: bool = False,
    ) -> GraphQLResponse:
        """Answer one operation. With `encode`, the response comes as JSON bytes in `.encoded`
        (serialized as soon as every value is decided, see _execute). `limits` bound the document,
        its variables and its planning (default: the planner's); `introspection` False refuses
        `__schema` / `__type` (INTROSPECTION_DISABLED); `suggestions` False strips "Did you
        mean ...?" from messages (they reveal the schema). An operation whose estimated cost is over
        `max_cost` (default: the limits'; 0: none) is refused before it is planned
        (COST_ESTIMATED_TOO_EXPENSIVE); with `report_cost` the estimate is in `extensions.cost`."""
        limits = limits or self.planner.limits
        started = telemetry.now()
        try:
            try:
                check_variables(variables, limits)  # before anything walks them (recursively)
            except LimitExceeded as error:
                raise RequestError(error.code, [error.message]) from None
            try:
                prepared = self.planner.prepare(query, operation_name, limits)
            except DocumentError as error:
                locations = [
                    [{"line": loc.line, "column": loc.column} for loc in (e.locations or ())]
                    if isinstance(e, GraphQLError)
                    else None
                    for e in error.errors
                ]
                messages = [e.message if isinstance(e, GraphQLError) else str(e) for e in error.errors]
                raise RequestError(error.code, messages, locations=locations) from None
            planning = telemetry.stage("graphql.validate", started)
            if prepared.kind not in allowed_kinds:
                if prepared.kind == "subscription":
                    raise RequestError(
                        "OPERATION_NOT_SUPPORTED", ["subscriptions are not supported over this transport"]
                    )
                raise RequestError("METHOD_NOT_ALLOWED", [f"a {prepared.kind} cannot be sent with this HTTP method"])
            if not introspection and _introspects(prepared):
                raise RequestError("INTROSPECTION_DISABLED", ["introspection is not allowed for this requester"])
            coerced = self.coerce_variables(prepared, variables)
            cost = self.planner.cost(prepared, coerced, limits)
            maximum = limits.max_cost if max_cost is None else max_cost
            if maximum and cost > maximum:
                shown = f"{cost:,}" if cost < 10**18 else "over 10^18"
                raise RequestError(
                    "COST_ESTIMATED_TOO_EXPENSIVE",
                    [f"the operation's estimated cost is {shown}, more than {maximum:,}"],
                )
            try:
                plan = self.planner.plan(prepared, coerced, budget=limits.planning_timeout)
            except PlanningBudgetExceeded as error:
                raise RequestError(error.code, [str(error)]) from None
            except PlanningError as error:
                raise RequestError(error.code, [str(error)], executed=True) from None
            telemetry.planned(requester, prepared, planning)
            usage.record(
                requester.recipient, prepared, self.model.api_schema
            )  # schema checks: coordinates used, counts only
        except RequestError as error:
            telemetry.refused(requester, error.code)
            if not suggestions:
                error.messages = [_SUGGESTION.sub("", message) for message in error.messages]
            raise
        request_id = request_id or uuid.uuid4().hex
        extensions = {"cost": {"estimated": cost}} if report_cost else None
        if self.privacy is not None and self.guard is not None and plan.nodes:
            # the consent clock (several replicas on PostgreSQL): changes recorded through any
            # replica before this request arrived are caught up with before a cache or a shared
            # execution answers it; if the clock cannot be read, nothing cached answers it. A plan
            # without fetches (`{ __typename }`, introspection) reads no subgraph: nothing to decide
            await self.guard.ledger.sync()
        if prepared.kind != "query" or include_plan:
            return await self._execute(
                prepared, plan, coerced, requester, request_id, include_plan, encode, extensions=extensions
            )
        # Identical bytes from an identical requester (client, resident, purpose, roles) get the
        # identical answer: share one execution. Each request still has its own audit records.
        # The variables as sent, unused ones included: requests differing in anything share nothing.
        # A consent change in between makes the keys differ: a later request never joins an earlier one.
        generation = self.guard.ledger.generation if self.guard is not None else 0
        key = (
            query,
            operation_name,
            orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS),
            _requester_key(requester),
            generation,
            encode,
            report_cost,
        )
        shared = self._in_flight.get(key)
        if shared is not None:
            response = await asyncio.shield(shared)
            if response.disclosures and self.guard is not None:
                try:
                    await self.guard.record_shared(requester, response.disclosures, request_id)
                except Exception:  # its own audit record could not be written: answer on its own
                    return await self._execute(
                        prepared,
                        plan,
                        coerced,
                        requester,
                        request_id,
                        include_plan,
                        encode,
                        audit_refused=True,
                        extensions=extensions,
                    )
            return GraphQLResponse(
                response.data,
                response.errors,
                response.extensions,
                0,
                response.disclosures,
                shared=True,
                encoded=response.encoded,
            )
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            response = await self._execute(
                prepared, plan, coerced, requester, request_id, include_plan, encode, extensions=extensions
            )
        except BaseException as error:
            future.set_exception(error)
            future.exception()
            raise
        else:
            future.set_result(response)
            return response
        finally:
            del self._in_flight[key]

    async def _execute(
        self,
        prepared,
        plan,
        coerced: dict[str, Any],
        requester: Requester,
        request_id: str,
        include_plan: bool,
        encode: bool = False,
        *,
        audit_refused: bool = False,
        extensions: dict[str, Any] | None = None,
    ) -> GraphQLResponse:
        guarded = self.privacy is not None and self.guard is not None
        decisions = self.guard.decisions(requester, audit_refused=audit_refused) if guarded else None  # type: ignore[union-attr]
        # what the fetches send to subgraphs is decided too, the subgraph's owner as recipient
        flows = RequestFlows(self.guard, requester, request_id) if guarded else None  # type: ignore[arg-type]
        execution = telemetry.begin("graphql.execute")
        result = await self.executor.execute(prepared, plan, coerced, context=requester, privacy=decisions, flows=flows)
        telemetry.end(execution)
        response = GraphQLResponse(None, [], dict(extensions or {}), subgraph_requests=result.subgraph_requests)
        # a query's answer is serialized before its audit record is awaited: other requests run
        # meanwhile, and serializing and freeing it later costs cache misses on every value (about
        # a third of the privacy cost, bench/privacy_cpu.py). Should the audit log refuse, the query
        # is answered again with those disclosures withheld. A mutation is never run twice: its
        # answer waits for the audit log and is shaped again if it refuses.
        early = encode and prepared.kind == "query"

        def decided(withheld: dict[str, Any] | None) -> None:
            response.data, response.errors = result.data, result.errors
            if flows is not None and flows.withheld:
                telemetry.flows_withheld(flows.withheld)
                withheld = {
                    **(withheld or {}),
                    "withheld": [*flows.withheld, *((withheld or {}).get("withheld") or [])],
                }
            if withheld is not None:
                response.extensions["privacy"] = withheld
            if include_plan:
                response.extensions["queryPlan"] = plan.describe()
            if early:
                _encode(response)
                result.data = result.reshape = None  # the fetched data and the answer go now, still in cache

        if decisions is None:
            decided(None)
        else:
            assert self.guard is not None
            try:
                response.disclosures = await self.guard.settle(
                    requester, decisions, result, request_id, decided, refusal_raises=early
                )
            except AuditRefused:
                return await self._execute(
                    prepared,
                    plan,
                    coerced,
                    requester,
                    request_id,
                    include_plan,
                    encode,
                    audit_refused=True,
                    extensions=extensions,
                )
        if encode and response.encoded is None:
            _encode(response)
        return response

    async def close(self) -> None:
        close = getattr(getattr(self, "transport", None), "close", None)  # a released Engine holds none
        if close is not None:
            await close()


def _introspects(prepared) -> bool:
    """Whether the operation selects `__schema` or `__type` at its root, fragments included
    (`__typename` is no introspection of the schema)."""
    stack = [prepared.operation.selection_set]
    seen: set[str] = set()
    while stack:
        for selection in stack.pop().selections:
            kind = selection.kind
            if kind == "field":
                if selection.name.value in INTROSPECTION_ROOT_FIELDS:
                    return True
            elif kind == "inline_fragment":
                stack.append(selection.selection_set)
            elif selection.name.value not in seen and selection.name.value in prepared.fragments:
                seen.add(selection.name.value)
                stack.append(prepared.fragments[selection.name.value].selection_set)
    return False


def _encode(response: GraphQLResponse) -> None:
    response.encoded = orjson.dumps(response.to_dict())
    response.data, response.errors, response.extensions = None, [], {}


def _requester_key(requester: Requester) -> tuple:
    client = requester.client.id if requester.client is not None else None
    return (client, requester.resident, requester.purpose, tuple(sorted(requester.roles)))


def _plain(value: Any) -> Any:
    """Coerced default values back to JSON-able values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
