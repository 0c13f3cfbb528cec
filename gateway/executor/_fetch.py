"""Running fetch nodes: send to subgraphs, merge answers into one response tree.

The executor walks the plan and the JSON it gets back; it never resolves field by field. A
failing subgraph yields errors for its part of the answer, never an exception to the client.
Only what a fetch asked for merges (see _merge.py): an answer never adds a key of its own.

Flows are disclosures too: before an entity fetch leaves, every personal value its
representations would carry (key and @requires fields) is put to the request's FlowGate with the
subgraph's owner as recipient; a representation carrying a value the gate refuses is not sent,
and the fields it would have fetched stay null, listed in the gate's `withheld`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

import orjson

from .. import telemetry
from ..errors import PartnerFault
from ..planner import (
    AnswerSelection,
    FetchNode,
    QueryPlan,
    Representation,
    RepresentationEntry,
    RepresentationField,
)
from ..supergraph import SupergraphModel, named_type
from ._merge import DISPUTED, AnswerCheck, merge
from ._shape import GuardLookup


class SubgraphUnavailable(PartnerFault):
    """The subgraph could not be reached or did not answer with GraphQL (a breaker open or an address
    refused: SUBGRAPH_UNAVAILABLE, set by those subclasses)."""

    code = "SUBREQUEST_HTTP_ERROR"


class SubgraphTransport(Protocol):
    """Sends one operation to one subgraph: JSON bytes back (over the wire), or an already parsed
    answer (only from code running in this process: the control plane, a REST connector's client,
    the operator's Python connectors; see FetchRunner._add_errors)."""

    async def send(
        self, subgraph: str, query: str, variables: dict[str, Any] | None, context: Any = None
    ) -> bytes | dict: ...


class FlowValue(NamedTuple):
    """A personal value an entity fetch would send to a subgraph (see FlowGate)."""

    coordinate: str  # "Type.field" of the value
    category: str
    subject: str | None  # None: the object's subject is unknown or disputed
    sources: frozenset[str]  # owners of the subgraphs that resolve the field
    # part of the entity's key (the partner finds the object by it), not a `@requires` input
    key: bool = False


class FlowVerdictLike(Protocol):
    allowed: bool
    reason: str | None


class FlowGate(Protocol):
    """One request's decisions on the personal values its fetches send to subgraphs (the privacy
    stage implements it); `withheld` collects what did not leave, for `extensions.privacy`."""

    withheld: list[dict[str, Any]]

    async def admit(self, recipient: str, values: list[FlowValue]) -> list[FlowVerdictLike]: ...


@dataclass(slots=True)
class Execution:
    """The mutable state of one operation's execution."""

    variables: Mapping[str, Any]
    context: Any = None  # handed to in-process subgraphs (the requester)
    data: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    subgraph_requests: int = 0
    flows: FlowGate | None = None  # with privacy on: what may leave in representations


class FetchRunner:
    def __init__(
        self,
        model: SupergraphModel,
        transport: SubgraphTransport,
        redact_errors: bool = False,
        guarded: GuardLookup | None = None,
    ) -> None:
        self.model = model
        self.transport = transport
        # the privacy stage's lookup (type, field) -> FieldGuard or None: which values of a
        # representation are personal
        self.guarded = guarded
        # (type, field, recipient) -> what deciding a flow of its values needs, or None when there
        # is nothing to decide (not personal, or every source of it is the recipient itself)
        self._flow_info: dict[tuple[str, str, str], tuple[str, str, frozenset[str], str, str | None] | None] = {}
        # with privacy on, a subgraph error's own words never reach the client: they may carry a
        # personal value no decision has seen (only a vouched code, path and the subgraph's name do:
        # see _add_errors)
        self.redact_errors = redact_errors
        # names that a subgraph may return as __typename without being a concrete type
        self._interface_names = frozenset(t.name for t in model.types.values() if t.kind == "INTERFACE")

    async def run(self, plan: QueryPlan, execution: Execution) -> None:
        nodes = plan.nodes
        if not nodes:
            return
        order = plan.compiled.get("fetch_order")
        if order is None:
            order = plan.compiled["fetch_order"] = _FetchOrder(nodes)
        if len(nodes) == 1:
            await self._run_node(nodes[0], execution, order.checks[nodes[0].id])
            return
        # Each node starts once every node it depends on is done (a mutation's fields are such a
        # chain). A node that makes one dependent ready runs it in its own task; only the others
        # get a task each: fewer tasks and no gather per node (a third of the fetch stage's asyncio
        # overhead on the benchmark's heavy query).
        waiting = dict(order.waiting)
        tasks: list[asyncio.Task] = []
        try:
            tasks.extend(
                asyncio.ensure_future(self._chain(node, execution, order, waiting, tasks)) for node in order.roots[1:]
            )
            await self._chain(order.roots[0], execution, order, waiting, tasks)
            index = 0
            while index < len(tasks):  # tasks started while waiting are appended: awaited too
                await tasks[index]
                index += 1
        except BaseException:
            for task in tasks:
                task.cancel()  # cancelled or failed: nothing of this execution keeps running
            raise

    async def _chain(
        self,
        node: FetchNode,
        execution: Execution,
        order: _FetchOrder,
        waiting: dict[int, int],
        tasks: list[asyncio.Task],
    ) -> None:
        """Run `node`, then the dependent it made ready, and so on; other dependents it made ready
        get a task each (in `tasks`). A method, not a closure: a closure calling itself is a
        reference cycle, which would keep each execution's fetched data until the collector runs."""
        while True:
            await self._run_node(node, execution, order.checks[node.id])
            ready = None
            for dependent in order.dependents[node.id]:
                waiting[dependent.id] -= 1
                if waiting[dependent.id] == 0:
                    if ready is None:
                        ready = dependent
                    else:
                        tasks.append(asyncio.ensure_future(self._chain(dependent, execution, order, waiting, tasks)))
            if ready is None:
                return
            node = ready

    async def _run_node(self, node: FetchNode, execution: Execution, check: AnswerCheck) -> None:
        """`check`: `keep_asked` for the node's selection (kept with the plan)."""
        variables = {name: execution.variables[name] for name in node.variable_names if name in execution.variables}
        if node.representations is None:
            answer = await self._send(node, variables, execution)
            if answer is None:
                return
            result, over_the_wire = answer
            data = result.get("data")
            if isinstance(data, dict):
                check(data, None)
                merge(execution.data, data, self._interface_names)
            self._add_errors(node, result.get("errors"), execution, over_the_wire)
            return

        targets: list[list[dict]] = []
        representations: list[dict] = []
        sent_types: list[str] = []  # the __typename each representation was sent with
        seen: dict[Any, int] = {}
        shapes = node.representations
        single_keys = node.single_keys
        for obj in _objects_at(execution.data, node.merge_path):
            typename = obj.get("__typename")
            shape = shapes.get(typename)  # type: ignore[arg-type]
            if shape is None:
                continue
            single = single_keys.get(typename)  # type: ignore[arg-type]
            value = obj.get(single.source_key) if single is not None else None
            if value.__class__ is str or value.__class__ is int:
                # one plain key (`@key(fields: "id")`): its value is the representation's identity
                identity: Any = (shape.typename, value)
                representation = None
            else:
                representation = _represent(obj, shape)
                if representation is None:
                    continue
                identity = orjson.dumps(representation)
            index = seen.get(identity)
            if index is None:
                if representation is None:
                    representation = {"__typename": shape.typename, single.name: value}  # type: ignore[union-attr]
                seen[identity] = len(representations)
                representations.append(representation)
                sent_types.append(shape.typename)
                targets.append([obj])
            else:
                targets[index].append(obj)
        if not representations:
            return
        if execution.flows is not None:
            kept = await self._admit_flows(node, representations, targets, sent_types, execution)
            if kept is not None:
                representations = [representations[i] for i in kept]
                targets = [targets[i] for i in kept]
                sent_types = [sent_types[i] for i in kept]
                if not representations:
                    return
        variables[node.representations_variable] = representations
        answer = await self._send(node, variables, execution)
        if answer is None:
            return
        result, over_the_wire = answer
        data = result.get("data")
        entities = data.get("_entities") if isinstance(data, dict) else None
        if isinstance(entities, list):
            interface_names = self._interface_names
            for index, entity in enumerate(entities[: len(targets)]):
                if not isinstance(entity, dict):
                    continue
                # the entity's fragments are picked by the type it was asked as, not by its answer
                check(entity, sent_types[index])
                for obj in targets[index]:
                    if obj.keys().isdisjoint(entity):
                        obj.update(entity)  # merge's common case, without a call per object
                    else:
                        merge(obj, entity, interface_names)
        self._add_errors(node, result.get("errors"), execution, over_the_wire, targets, sent_types)

    # -- flows -------------------------------------------------------------------------------------

    async def _admit_flows(
        self,
        node: FetchNode,
        representations: list[dict],
        targets: list[list[dict]],
        sent_types: list[str],
        execution: Execution,
    ) -> list[int] | None:
        """Put the personal values of the representations to the request's FlowGate; return the
        indexes of the representations that may leave (None: all of them, nothing was personal)."""
        gate = execution.flows
        assert gate is not None
        recipient = self.model.owner_of(node.subgraph)
        values: list[FlowValue] = []
        owners: list[int] = []  # representation index of each value
        for index, representation in enumerate(representations):
            obj = targets[index][0]
            typename = obj.get("__typename")
            if typename.__class__ is not str:
                typename = sent_types[index]
            before = len(values)
            shape = node.representations.get(sent_types[index]) if node.representations is not None else None
            self._collect_personal(
                representation, targets[index], typename, recipient, values, _key_names(shape) if shape else frozenset()
            )
            owners.extend([index] * (len(values) - before))
        if not values:
            return None
        verdicts = await gate.admit(recipient, values)
        refused: dict[int, tuple[FlowValue, FlowVerdictLike]] = {}
        for value, index, verdict in zip(values, owners, verdicts, strict=True):
            if not verdict.allowed and index not in refused:
                refused[index] = (value, verdict)
        if not refused:
            return None
        paths = _object_paths(execution.data, node.merge_path)
        for index, (value, verdict) in sorted(refused.items()):
            view = node.selection.view(sent_types[index])
            renames = dict(view.renames)
            fetched = sorted(
                renames.get(key, key) for key in view.keys if key != "__typename" and not key.startswith("_cg_")
            )
            for obj in targets[index]:
                at = paths.get(id(obj), [])
                for key in fetched:
                    gate.withheld.append(
                        {
                            "path": [*at, key],
                            "category": value.category,
                            "reason": verdict.reason,
                            "strategy": "null",
                            "recipient": recipient,
                        }
                    )
        return [index for index in range(len(representations)) if index not in refused]

    def _flow_of(
        self, type_name: str, field_name: str, recipient: str
    ) -> tuple[str, str, frozenset[str], str, str | None] | None:
        cache_key = (type_name, field_name, recipient)
        info = self._flow_info.get(cache_key, False)
        if info is False:
            found = self.guarded(type_name, field_name) if self.guarded is not None else None
            info = None
            # the recipient's own data, back to it: no flow
            if found is not None and found.kind == "personal" and found.sources != frozenset((recipient,)):
                info = (
                    f"{type_name}.{field_name}",
                    found.annotation.category,
                    found.sources,
                    found.data_key,
                    found.stand_in,
                )
            self._flow_info[cache_key] = info
        return info  # type: ignore[return-value]

    def _collect_personal(
        self,
        sent: dict,
        objs: list[dict],
        typename: str,
        recipient: str,
        found: list[FlowValue],
        keys: frozenset[str] | bool = frozenset(),
    ) -> None:
        """The personal values in a representation of `objs` (of `typename`: the objects it stands
        for, one representation for all of them), nested ones included. `keys`: the names of the
        representation's key fields (True: all of them, within a composite key)."""
        for name, value in sent.items():
            if name == "__typename" or value is None:
                continue
            key = keys is True or (keys is not False and name in keys)  # type: ignore[operator]
            info = self._flow_of(typename, name, recipient)
            if info is not None:
                found.append(FlowValue(info[0], info[1], self._subject_of(sent, objs, info[3], info[4]), info[2], key))
            if value.__class__ is dict or value.__class__ is list:
                facts = self.model.types.get(typename)
                field_facts = facts.fields.get(name) if facts is not None else None
                named = named_type(field_facts.api_type) if field_facts is not None else ""
                for item in _dicts(value):
                    inner = item.get("__typename")
                    # a nested object's own subject is read from what was sent of it
                    self._collect_personal(
                        item, [item], inner if inner.__class__ is str else named, recipient, found, key
                    )

    @staticmethod
    def _subject_of(sent: dict, objs: list[dict], subject_key: str, subject_field: str | None) -> str | None:
        """The subject of a value sent for `objs`: the gateway's own subject key (the same in every
        object the representation stands for), else the subject field as sent; disputed, differing
        or absent: unknown (withheld)."""
        subject = objs[0].get(subject_key)
        if any(other.get(subject_key) != subject for other in objs[1:]):
            return None  # one representation, objects said to be about different residents
        if subject is None and subject_field is not None:
            subject = sent.get(subject_field)
        if (
            subject is None
            or subject.__class__ in DISPUTED
            or (subject.__class__ is not str and subject.__class__ is not int)
        ):
            return None
        return str(subject)

    async def _send(self, node: FetchNode, variables: dict, execution: Execution) -> tuple[dict, bool] | None:
        """The subgraph's answer and whether it came over the wire (not parsed in this process)."""
        execution.subgraph_requests += 1
        fetch = telemetry.fetch_started(node.subgraph)
        try:
            raw = await self.transport.send(node.subgraph, node.document, variables or None, execution.context)
            over_the_wire = not isinstance(raw, dict)
            result = orjson.loads(raw) if over_the_wire else raw
            if not isinstance(result, dict) or ("data" not in result and "errors" not in result):
                raise SubgraphUnavailable("the answer is not a GraphQL response")
        except SubgraphUnavailable as error:
            # a breaker open or an address refused: SUBGRAPH_UNAVAILABLE (nothing was sent)
            telemetry.fetch_failed(fetch, error.code)
            self._subgraph_failed(node, execution, str(error), error.code)
            return None
        except (orjson.JSONDecodeError, TypeError):
            telemetry.fetch_failed(fetch, "SUBREQUEST_HTTP_ERROR")
            self._subgraph_failed(node, execution, "the answer is not JSON")
            return None
        telemetry.fetch_answered(fetch, result)
        return result, over_the_wire

    def _subgraph_failed(
        self, node: FetchNode, execution: Execution, reason: str, code: str = "SUBREQUEST_HTTP_ERROR"
    ) -> None:
        error: dict[str, Any] = {
            "message": f"subgraph '{node.subgraph}' failed: {reason}",
            "extensions": {"code": code, "serviceName": node.subgraph},
        }
        if node.merge_path:
            error["path"] = [p for p in node.merge_path if p != "@"]
        execution.errors.append(error)

    def _add_errors(
        self,
        node: FetchNode,
        errors: Any,
        execution: Execution,
        over_the_wire: bool,
        targets: list[list[dict]] | None = None,
        sent_types: list[str] | None = None,
    ) -> None:
        """The subgraph's errors, as the client may see them: nothing the subgraph wrote reaches it
        unless the gateway can vouch for it (docs/privacy.md, "A subgraph's errors"). The message
        (with privacy on), `locations` and every other key are dropped; the code is kept only when
        well-formed (with privacy on, over the wire: only a well-known one), else it is
        SUBGRAPH_ERROR_CODE; the path is cut at its first step the fetch's operation and the data
        the gateway merged do not vouch for (see `_vouched_path`). For an entity fetch, `targets`
        are the objects each representation stands for and `sent_types` the type each was sent as."""
        if not errors or not isinstance(errors, list):
            return
        paths: dict[int, list] | None = None
        for error in errors:
            if not isinstance(error, dict):
                continue
            message = error.get("message")
            if self.redact_errors:
                message = f"subgraph '{node.subgraph}' reported an error"
            out: dict[str, Any] = {"message": message if isinstance(message, str) else "subgraph error"}
            claimed = error.get("path")
            path: list | None = None
            if isinstance(claimed, list) and claimed:
                if targets is None or sent_types is None:
                    path = _vouched_path(claimed, node.selection, None, execution.data)
                elif len(claimed) > 1 and claimed[0] == "_entities" and type(claimed[1]) is int:
                    # ["_entities", i, ...]: i indexes the representations sent; the rest resolves in
                    # what the entity merged into its (first) target object
                    index = claimed[1]
                    if 0 <= index < len(targets):
                        if paths is None:
                            paths = _object_paths(execution.data, node.merge_path)
                        target = targets[index][0]
                        at = paths.get(id(target))
                        if at is not None:
                            path = at + _vouched_path(claimed[2:], node.selection, sent_types[index], target)
            if path:
                out["path"] = path
            extensions = error.get("extensions")
            extensions = extensions if isinstance(extensions, dict) else {}
            code = self._vouched_code(extensions.get("code"), over_the_wire)
            if self.redact_errors:
                kept: dict[str, Any] = {"code": code}
                # an HTTP status a REST connector (in this process) reports: a number naming no one
                status = extensions.get("status")
                if not over_the_wire and type(status) is int and 100 <= status <= 599:
                    kept["status"] = status
                extensions = kept
            else:
                extensions = {**extensions, "code": code}
            extensions["serviceName"] = node.subgraph
            out["extensions"] = extensions
            execution.errors.append(out)

    def _vouched_code(self, code: Any, over_the_wire: bool) -> str:
        """A subgraph error's code if the gateway can vouch for it, else SUBGRAPH_ERROR_CODE: the
        shape of a GraphQL error code always; with privacy on, a code from over the wire must also
        be a well-known one (a partner's own code is a word it chose, and could spell anyone's name)."""
        if type(code) is not str or _ERROR_CODE_SHAPE.fullmatch(code) is None:
            return SUBGRAPH_ERROR_CODE
        if self.redact_errors and over_the_wire and code not in WELL_KNOWN_ERROR_CODES:
            return SUBGRAPH_ERROR_CODE
        return code


# A subgraph error's code, when the gateway cannot vouch for the one it gave (or it gave none):
# Apollo's and Hive's code for an error a subgraph reported (SUBREQUEST_HTTP_ERROR says that the
# subgraph could not be asked or did not answer with GraphQL).
SUBGRAPH_ERROR_CODE = "DOWNSTREAM_SERVICE_ERROR"
# The shape of GraphQL error codes (Apollo's, ours): capitals, digits and underscores, at most 64.
_ERROR_CODE_SHAPE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
# With privacy on, the only codes a subgraph over the wire may give the client: Apollo Server's
# (but PERSISTED_QUERY_*: the gateway sends subgraphs no persisted query, and a client would retry
# its own) and the common UNAUTHENTICATED, FORBIDDEN, NOT_FOUND. Not the gateway's own codes: a
# partner must not speak for the gateway (SUBGRAPH_UNAVAILABLE, PRIVACY_BUDGET_EXHAUSTED, ...).
WELL_KNOWN_ERROR_CODES = frozenset(
    {
        "BAD_REQUEST",
        "BAD_USER_INPUT",
        "DOWNSTREAM_SERVICE_ERROR",
        "FORBIDDEN",
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
        "INTERNAL_SERVER_ERROR",
        "NOT_FOUND",
        "OPERATION_RESOLUTION_FAILURE",
        "UNAUTHENTICATED",
    }
)


class _FetchOrder:
    """When each fetch node of a plan may start, and what of its answer may merge (kept with the plan)."""

    __slots__ = ("checks", "dependents", "roots", "waiting")

    def __init__(self, nodes: list[FetchNode]) -> None:
        self.roots = [node for node in nodes if not node.depends_on]
        self.waiting = {node.id: len(set(node.depends_on)) for node in nodes}
        self.dependents: dict[int, list[FetchNode]] = {node.id: [] for node in nodes}
        self.checks = {node.id: AnswerCheck(node.selection) for node in nodes}  # what may merge of each answer
        for node in nodes:
            for dependency in set(node.depends_on):
                self.dependents[dependency].append(node)


@lru_cache(maxsize=4096)  # once per representation shape (a plan's), not per object sent
def _key_names(shape: Representation) -> frozenset[str]:
    """The representation's key fields (those of a type condition's entries included)."""
    names: set[str] = set()
    stack = list(shape.entries)
    while stack:
        entry = stack.pop()
        if isinstance(entry, RepresentationField):
            if entry.is_key:
                names.add(entry.name)
        elif entry.entries:
            stack.extend(entry.entries)
    return frozenset(names)


def _dicts(value: Any):
    if value.__class__ is dict:
        yield value
    elif value.__class__ is list:
        for item in value:
            yield from _dicts(item)


def _objects_at(data: Any, path: tuple[str, ...]) -> list[dict]:
    # the parsed answers hold plain dicts and lists only (orjson, graphql-core)
    current = [data]
    for step in path:
        if step == "@":
            current = [item for value in current if value.__class__ is list for item in value]
        else:
            current = [child for value in current if value.__class__ is dict and (child := value.get(step)) is not None]
    return [value for value in current if value.__class__ is dict]


def _vouched_path(claimed: list, selection: AnswerSelection, typename: str | None, merged: Any) -> list:
    """The longest start of a subgraph's error path that the gateway can vouch for, as a response
    path below the position `selection` was asked at (of an object of `typename`; None: unknown,
    or read from the merged object there). A string must be a key the fetch asked for there (its
    answer key; the client's alias is put back; never one of the gateway's `_cg_` keys); an integer
    (not a boolean) an index within the list the gateway merged there (`merged`: the response tree
    at that position). Past a null, or where nothing merged, keys are still checked against what
    was asked, indexes cannot be."""
    vouched: list = []
    current = merged  # None: nothing merged here to check an index against
    asked: AnswerSelection | None = selection
    for step in claimed:
        if type(step) is int:
            if not isinstance(current, list) or not 0 <= step < len(current):
                break
            current = current[step]
        elif type(step) is str and asked is not None and (current is None or isinstance(current, dict)):
            if typename is None and current is not None and type(current.get("__typename")) is str:
                typename = current["__typename"]
            view = asked.view(typename)
            if step not in view.keys:
                break
            asked = dict(view.nested).get(step)  # None below a leaf: no key is asked there
            step = dict(view.renames).get(step, step)  # the response tree's key (the client's alias)
            if step.startswith("_cg_"):
                break
            current = current.get(step) if current is not None else None
            typename = None
        else:
            break  # an object, a float, a key where a list or a leaf value is, ...
        vouched.append(step)
    return vouched


def _object_paths(data: Any, path: tuple[str, ...]) -> dict[int, list]:
    """id(object) -> its response path, for the objects at a merge path (errors only)."""
    current: list[tuple[Any, list]] = [(data, [])]
    for step in path:
        following: list[tuple[Any, list]] = []
        for value, at in current:
            if step == "@":
                if isinstance(value, list):
                    following.extend((item, at + [index]) for index, item in enumerate(value))
            elif isinstance(value, dict) and value.get(step) is not None:
                following.append((value[step], at + [step]))
        current = following
    return {id(value): at for value, at in current}


def _represent(obj: dict, shape: Representation) -> dict | None:
    representation: dict[str, Any] = {"__typename": shape.typename}
    if not _fill(obj, shape.entries, representation):
        return None
    return representation


def _fill(source: dict, entries: tuple[RepresentationEntry, ...], target: dict) -> bool:
    """Write what `entries` send of `source` into `target`; False when a key field is missing or
    null (the object gets no representation)."""
    for entry in entries:
        if isinstance(entry, RepresentationField):
            key = entry.source_key
            if key not in source:
                return False
            value = source[key]
            if value is None:
                if entry.is_key:
                    return False
                target[entry.name] = None
            elif entry.entries is None:
                target[entry.name] = value
            else:
                projected = _project(value, entry.entries)
                if projected is None and entry.is_key:
                    return False
                target[entry.name] = projected
        elif source.get("__typename") in entry.types and not _fill(source, entry.entries, target):
            return False
    return True


def _project(value: Any, entries: tuple[RepresentationEntry, ...]) -> Any:
    if isinstance(value, list):
        return [_project(item, entries) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    if "__typename" in value:
        out["__typename"] = value["__typename"]
    if not _fill(value, entries, out):
        return None
    return out
