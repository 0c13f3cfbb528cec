"""Recorded usage: which schema coordinates each client's operations select, per day, counts only.

The schema checks (gateway/registry/_checks.py) read it: a change that breaks a coordinate some
client's operation selected in the usage window is refused unless the operator accepts it.

The request path calls `record(client, prepared, schema)` once per operation that planned; while
no `UsageRecorder` is installed that costs one global read. An installed one adds one to a counter
in memory per request, keyed by (day, client, operation), and writes the counters to the store
every `flush_every` seconds (and when it is closed): a replica that stops abruptly loses at most
that many seconds of counts. What an operation selects is computed once per distinct document
(cached by its text and operation name, for the schema served), never per request.

Recorded per operation: the coordinates it selects (`Type.field`, `Type.field(arg:)` for each
argument given, `Input.field` and `Enum.VALUE` written as literals, `Type` for type conditions and
variable types, `@directive` and `@directive(arg:)` for directives beyond the built-in ones), and
its identity: the hash of its document with every literal value blanked out. This module must
never keep or store a document's text, a literal, a variable, a resident or anything a request's
values could be read back from.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from cachetools import LRUCache
from graphql import (
    BooleanValueNode,
    DocumentNode,
    FloatValueNode,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLSchema,
    IntValueNode,
    ListValueNode,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    is_specified_directive,
    is_specified_scalar_type,
    print_ast,
    visit,
)

logger = logging.getLogger("citygate.usage")

_CLIENT_LENGTH = 100  # the store's column
_OPERATIONS_CACHED = 10_000  # distinct (document, operation name) pairs whose description is kept
# operations not yet in the store that one flush window (and one day) takes: a client inventing a
# new document per request grows neither this process nor the store's tables without bound (beyond
# them, their usage is not recorded: a schema check may then call a change unused)
_NEW_OPERATIONS_PER_FLUSH = 1_000
_NEW_OPERATIONS_PER_DAY = 20_000  # and per day, per process: what the store's tables take at most


@dataclass(frozen=True, slots=True)
class Operation:
    """An operation as usage records it: the hash naming it and the coordinates it selects."""

    id: str
    coordinates: frozenset[str]


class _Blanked(Visitor):
    """Every literal value replaced by one of its kind: what the document asks, not with which values
    (an id, a name, a date written in a query names nobody in the usage store)."""

    def enter_string_value(self, node, *_args):
        return StringValueNode(value="")

    def enter_int_value(self, node, *_args):
        return IntValueNode(value="0")

    def enter_float_value(self, node, *_args):
        return FloatValueNode(value="0")

    def enter_boolean_value(self, node, *_args):
        return BooleanValueNode(value=False)

    def enter_list_value(self, node, *_args):
        return ListValueNode(values=())


class _Selected(Visitor):
    """The schema coordinates an operation selects (see the module's docstring)."""

    def __init__(self, schema: GraphQLSchema, type_info: TypeInfo) -> None:
        super().__init__()
        self.schema = schema
        self.type_info = type_info
        self.found: set[str] = set()
        self.fields: list[str] = []  # the coordinate of each field being walked, innermost last

    def enter_field(self, node, *_args) -> None:
        parent = self.type_info.get_parent_type()
        name = node.name.value
        coordinate = (
            f"{parent.name}.{name}"
            if parent is not None and not name.startswith("__") and not parent.name.startswith("__")
            else ""
        )
        if coordinate:
            self.found.add(coordinate)
        self.fields.append(coordinate)

    def leave_field(self, *_args) -> None:
        self.fields.pop()

    def enter_argument(self, node, *_args) -> None:
        directive = self.type_info.get_directive()
        if directive is not None:
            if not is_specified_directive(directive):
                self.found.add(f"@{directive.name}({node.name.value}:)")
        elif self.fields and self.fields[-1]:
            self.found.add(f"{self.fields[-1]}({node.name.value}:)")

    def enter_directive(self, node, *_args) -> None:
        directive = self.type_info.get_directive()
        if directive is not None and not is_specified_directive(directive):
            self.found.add(f"@{directive.name}")

    def enter_object_value(self, *_args) -> None:
        named = get_named_type(self.type_info.get_input_type())
        if isinstance(named, GraphQLInputObjectType):
            self.found.add(named.name)

    def enter_object_field(self, node, *_args) -> None:
        named = get_named_type(self.type_info.get_parent_input_type())
        if isinstance(named, GraphQLInputObjectType):
            self.found.add(f"{named.name}.{node.name.value}")

    def enter_enum_value(self, node, *_args) -> None:
        named = get_named_type(self.type_info.get_input_type())
        if isinstance(named, GraphQLEnumType):
            self.found.add(f"{named.name}.{node.value}")

    def enter_named_type(self, node, *_args) -> None:  # type conditions and variables' types
        named = self.schema.get_type(node.name.value)
        if named is not None and not is_specified_scalar_type(named) and not named.name.startswith("__"):
            self.found.add(named.name)


def describe(prepared: Any, schema: GraphQLSchema) -> Operation:
    """The operation `prepared` (a planner's PreparedOperation, validated against `schema`) as usage records it."""
    definitions = [prepared.operation, *(prepared.fragments[name] for name in sorted(_reachable(prepared)))]
    type_info = TypeInfo(schema)
    selected = _Selected(schema, type_info)
    for definition in definitions:
        visit(definition, TypeInfoVisitor(type_info, selected))
    blanked = print_ast(visit(DocumentNode(definitions=tuple(definitions)), _Blanked()))
    digest = hashlib.sha256(f"{prepared.name or ''}\n{blanked}".encode()).hexdigest()[:32]
    return Operation(digest, frozenset(selected.found))


def _reachable(prepared: Any) -> set[str]:
    """The fragments the operation spreads, directly or through other fragments."""

    class Spreads(Visitor):
        def __init__(self) -> None:
            super().__init__()
            self.names: list[str] = []

        def enter_fragment_spread(self, node, *_args) -> None:
            self.names.append(node.name.value)

    reached: set[str] = set()
    pending = [prepared.operation]
    while pending:
        spreads = Spreads()
        visit(pending.pop(), spreads)
        for name in spreads.names:
            if name not in reached and name in prepared.fragments:
                reached.add(name)
                pending.append(prepared.fragments[name])
    return reached


class UsageRecorder:
    """Counts operations per (day, client) in memory and adds them to the store's every `flush_every` seconds."""

    def __init__(self, store: Any, *, flush_every: float = 10.0, retention_days: int = 31) -> None:
        self.store = store  # gateway.store.Store: add_usage, purge_usage
        self.flush_every = flush_every
        self.retention_days = retention_days
        self._schema: GraphQLSchema | None = None
        # (text, operation name) -> Operation, for _schema; a plain dict emptied when full: an LRU's
        # bookkeeping cost more than the rest of a request's record
        self._operations: dict[tuple[str, str | None], Operation] = {}
        self._written: LRUCache = LRUCache(_OPERATIONS_CACHED)  # operation ids whose coordinates the store holds
        self._pending: dict[tuple[str, str, str], int] = {}  # (day, client, operation id) -> requests
        self._unwritten: dict[str, frozenset[str]] = {}  # operation id -> coordinates, for the next flush
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._purged: str | None = None  # the day the store's old counts were last purged
        self._dropped = 0  # requests not recorded since the last flush (_NEW_OPERATIONS_PER_FLUSH)
        self._new_on, self._new_today = "", 0  # new operations taken today (_NEW_OPERATIONS_PER_DAY)

    def record(self, client: str, prepared: Any, schema: GraphQLSchema) -> None:
        if schema is not self._schema:  # another supergraph served: the same text may select other types
            self._schema = schema
            self._operations.clear()
        key = (prepared.text, prepared.name)
        operation = self._operations.get(key)
        if operation is None:
            if len(self._operations) >= _OPERATIONS_CACHED:
                self._operations.clear()
            try:
                operation = describe(prepared, schema)
            except Exception:  # never the request's failure: its usage goes unrecorded, logged
                logger.exception("the usage of an operation could not be described")
                return
            self._operations[key] = operation
        if operation.id not in self._written and operation.id not in self._unwritten:
            today = _today()
            if self._new_on != today:
                self._new_on, self._new_today = today, 0
            if len(self._unwritten) >= _NEW_OPERATIONS_PER_FLUSH or self._new_today >= _NEW_OPERATIONS_PER_DAY:
                self._dropped += 1
                return
            self._new_today += 1
            self._unwritten[operation.id] = operation.coordinates
        counter = (_today(), client[:_CLIENT_LENGTH], operation.id)
        self._pending[counter] = self._pending.get(counter, 0) + 1

    def start(self) -> None:
        """Flush every `flush_every` seconds, from the running loop, until `close`."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_every)
            await self.flush()

    async def flush(self) -> None:
        """Add what was counted since the last flush to the store. A store that fails keeps the counts here for the next one."""
        async with self._lock:
            counts, self._pending = self._pending, {}
            coordinates, self._unwritten = self._unwritten, {}
            if self._dropped:
                logger.warning(
                    "usage of %d requests not recorded: over %d new operations in one flush window",
                    self._dropped,
                    _NEW_OPERATIONS_PER_FLUSH,
                )
                self._dropped = 0
            if not counts and not coordinates:
                return
            try:
                await self.store.add_usage(counts, coordinates)
            except Exception as error:
                for counter, requests in counts.items():
                    self._pending[counter] = self._pending.get(counter, 0) + requests
                for operation, selected in coordinates.items():
                    self._unwritten.setdefault(operation, selected)
                logger.warning(
                    "recorded usage not written to the store yet (%s): kept for the next flush", type(error).__name__
                )
                return
            for operation in coordinates:
                self._written[operation] = True
            today = _today()
            if self._purged != today:
                self._purged = today
                try:
                    await self.store.purge_usage(
                        (date.fromisoformat(today) - timedelta(days=self.retention_days)).isoformat()
                    )
                except Exception as error:
                    logger.warning("old recorded usage not purged (%s)", type(error).__name__)
                self._written.clear()  # an operation purged and sent again is described again

    async def close(self) -> None:
        """Stop flushing on a timer and flush what remains."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()


_day: tuple[int, str] = (-1, "")  # (days since the epoch, its ISO date), UTC


def _today() -> str:
    global _day
    number = int(time.time() // 86400)
    if number != _day[0]:  # formatting a date costs more than the rest of a request's record
        _day = (number, (date(1970, 1, 1) + timedelta(days=number)).isoformat())
    return _day[1]


_current: UsageRecorder | None = None


def current() -> UsageRecorder | None:
    return _current


def record(client: str, prepared: Any, schema: GraphQLSchema) -> None:
    """The request path's hook: `client` (the policy's client id, or "public") sent `prepared`,
    which planned against `schema` (the served API schema)."""
    recorder = _current
    if recorder is not None:
        recorder.record(client, prepared, schema)


def install(store: Any, *, flush_every: float = 10.0, retention_days: int = 31) -> UsageRecorder:
    """Record usage into `store` from now on (call from the running loop: it flushes on a timer there)."""
    global _current
    recorder = UsageRecorder(store, flush_every=flush_every, retention_days=retention_days)
    recorder.start()
    _current = recorder
    return recorder


async def uninstall(recorder: UsageRecorder) -> None:
    """Stop recording with `recorder` (if it is the one installed) and flush what it counted."""
    global _current
    if _current is recorder:
        _current = None
    await recorder.close()
