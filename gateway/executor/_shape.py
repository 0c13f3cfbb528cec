"""Shaping: turn the merged subgraph answers into exactly the response the client asked for.

Walks the client's normalized selection over the merged data: response keys and their order,
fragments by runtime type, `__typename`, enum values the API schema hides, and null propagation
per the GraphQL spec. Fields the planner added (keys, @requires) never reach the client.

Each position's fields are shaped by Python code generated once per (plan, position, runtime type)
and kept with the plan (`_compile`): the selection unrolled, lists of objects completed inline. It
shapes objects that need no privacy look-up: a type with no guarded field, or an object whose
(position, subject) the request's decisions already place whole (one look-up per object). Every
other object, and anything unusual in an answer, goes through the interpreter (`_Walk`), which
stays the reference: the generated code calls it for errors, null propagation and slices.

Shaping is pure CPU on the event loop (~0.3 µs a value: some 35 ms for a 1.5 MB answer), so a
large answer is shaped in slices (`Shaper.shape_in_slices`): the walk runs in a greenlet that hands
the loop its turn each time about SLICE units of work are done, and large answers take their
turns one at a time, so every other request is served between two slices. Small answers never
give up their turn: their walk is the same, with no slice to end.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    is_abstract_type,
    is_leaf_type,
)
from greenlet import getcurrent, greenlet

from ..planner import INTROSPECTION_ROOT_FIELDS, NSelection, QueryPlan, collect_fields
from ._merge import DISPUTED, SUBJECT_CONFLICT

_BUBBLE = object()  # a non-null position got null: its parent becomes null
_UNDECIDED = object()  # `_TypeFields.place_whole`: not every guarded field is known placed: the walk decides

_SCALAR, _ENUM, _OBJECT, _TYPENAME, _INTROSPECTION = range(5)

# Units of shaping work between two turns of the event loop: a list of n items of a field
# selecting s fields costs n * (1 + s). ~2 ms of CPU here (bench.attacks' big answer: 1.5 MB,
# ~100,000 units, ~25 ms); an answer under it is shaped in one go, as before.
SLICE = 8_000
_TURN = object()  # what a sliced walk hands its caller when the loop's turn comes
_UNSLICED = 1 << 62  # the budget of a walk that never gives up its turn


class _FieldShape:
    __slots__ = (
        "child",
        "data_key",
        "enum_values",
        "guard",
        "key",
        "kind",
        "leaf",
        "name",
        "non_null",
        "parent",
        "weight",
        "wrappers",
    )

    def __init__(self, key, name, parent, wrappers, kind, enum_values, child, guard=None, data_key=None) -> None:
        self.key = key
        self.name = name
        self.parent = parent
        self.wrappers = wrappers  # e.g. ("N", "L", "N") for [T!]!
        self.kind = kind
        self.enum_values = enum_values
        self.child = child
        self.guard = guard  # a FieldGuard for personal and aggregate fields
        self.data_key = data_key  # where this position's object has the guard's subject (or count)
        # the common case, completed inline: a scalar or enum that is not a list
        self.leaf = kind in (_SCALAR, _ENUM) and "L" not in wrappers
        self.non_null = wrappers == ("N",)
        self.weight = 1 + len(child.selections) if child is not None else 1  # units of work per list item


@dataclass(frozen=True, slots=True, eq=False)
class FieldGuard:
    """What guards one field of one type: what the privacy stage's guard lookup (GuardLookup)
    returns for it. The shaper shares one FieldGuard among every position of a plan that selects
    the field, so a request decides a (field, subject) pair once, wherever the field appears.
    Compared and hashed by identity: it keys the privacy stage's per-request verdicts."""

    kind: Literal["personal", "aggregate"]
    annotation: Any  # the field's PersonalField or AggregateField (gateway.supergraph)
    data_key: str  # where the object's subject (or contributor count) is in the data
    parent: str  # the type's name
    name: str  # the field's name
    # the subject field itself: where the client selects it under its own name, without arguments,
    # its value is the subject and nothing is added to the subgraph requests for it (gateway.privacy's
    # injection applies the same rule); None: the type has none
    stand_in: str | None = None
    sources: frozenset[str] = frozenset()  # the owners whose data the field's values are (legal bases name them)
    # by_path: a legal basis covers the field only through given fields; then the shaper gives each
    # way of reaching it a guard of its own (Shaper.field_guard): `via` holds the parent field's
    # coordinates, on the parent's type and its interfaces; otherwise `via` is empty and the guard
    # serves all positions
    by_path: bool = False
    via: frozenset[str] = frozenset()
    # an aggregate's: where the object has its entity's key; the aggregate's subject is then
    # (contributor count, the key's values), so that a question is told by its entity
    entity_keys: tuple[str, ...] = ()


# (type name, field name) -> the field's FieldGuard, or None when nothing guards it (the privacy
# stage's lookup: gateway.engine.Engine._guarded)
GuardLookup = Callable[[str, str], FieldGuard | None]


class PrivacyDecisions(Protocol):
    """Decides each personal or aggregate value while the response is shaped (gateway.privacy).

    The shaper asks before it places each guarded value, and reads one thing of the decider's
    state: `placed_whole`, the fast path. An object whose (position and runtime type, subject) is
    in it has every guarded field placed as it is, so it is shaped as if nothing in it were
    guarded, by the position's compiled code: one look-up per object instead of one call per
    value (thousands of values of a few subjects in a typical answer). Every other guarded value
    goes through `place`, and `object_placed` after its object, which may add the pair.
    """

    # (type fields, subject) -> anything (the decider's own record of what it disclosed): the
    # pairs met in this response whose every guarded field goes in as it is
    placed_whole: Mapping[tuple, Any]

    def place(self, field_guard: FieldGuard, subject: Any, value: Any, node: tuple | None, key: str) -> Any:
        """What goes in the response for `value` of `field_guard`'s field, of `subject` (the
        object's subject or contributor count; None when unusable; SUBJECT_CONFLICT when
        disputed), placed at (parent path node, response key): the value, a masked value or null."""
        ...

    def withholds(self, field_guard: FieldGuard, subject: Any) -> bool:
        """Whether a guarded object field's value is withheld whole (masked to null): asked before
        the object is shaped, so that nothing in an object the requester does not get is decided,
        placed or audited; its value then goes through `place`, unshaped."""
        ...

    def known_object(self, object_key: tuple) -> bool:
        """Whether earlier requests found every guarded field of (type fields, subject) placed as
        it is (then it is in `placed_whole` from now on)."""
        ...

    def object_placed(self, object_key: tuple, guards: tuple[FieldGuard, ...]) -> None:
        """Called after an object whose fields went through `place`: remembers the pair in
        `placed_whole` when every one of them went in as it is."""
        ...


class _TypeFields:
    """The fields one position selects on one runtime type, and the code that shapes them."""

    __slots__ = ("fields", "free", "guarded", "guards", "placed", "subject_key", "whole_key")

    def __init__(self, fields: list[_FieldShape], typename: str) -> None:
        self.fields = fields
        self.guards = tuple(f.guard for f in fields if f.guard is not None)
        self.guarded = bool(self.guards)
        # where every guarded field finds its subject, when they all find it in the same place
        # (personal fields): one look-up per object then tells whether all of them are placed
        keys = {f.data_key for f in fields if f.guard is not None}
        self.subject_key = keys.pop() if len(keys) == 1 and all(g.kind == "personal" for g in self.guards) else None
        # `placed(obj, node, walk)`: the object shaped as if nothing in it were guarded, by code
        # generated for these fields (see _compile); None where the interpreter is used instead
        self.placed: Callable[[dict, tuple | None, _Walk], Any] | None = _compile(fields, typename)
        # the same, for objects that need no privacy look-up at all (no guarded field)
        self.free = None if self.guarded else self.placed
        # where the compiled code may place a guarded object whole after one look-up (place_whole)
        self.whole_key = self.subject_key if self.guarded and self.placed is not None else None

    def place_whole(self, obj: dict[str, Any], node: tuple | None, walk: _Walk) -> Any:
        """The object shaped by `placed` when every guarded field of it is known to be placed as it
        is for its subject (the one look-up `_Walk.object` starts with), else _UNDECIDED: the walk
        then decides field by field. Called from the compiled code of the parent position only for
        a plain `__typename` (never a disputed one) and a type with a `whole_key`."""
        privacy = walk.privacy
        if privacy is not None:
            subject = obj.get(self.whole_key)  # type: ignore[arg-type]
            if subject.__class__ is str or subject.__class__ is int:
                object_key = (self, subject)
                if object_key in privacy.placed_whole or privacy.known_object(object_key):
                    return self.placed(obj, node, walk)  # type: ignore[misc]
        return _UNDECIDED


class _ObjectShape:
    """The selection at one composite position, compiled lazily per runtime type."""

    __slots__ = ("by_type", "selections", "shaper", "static_type", "via")

    def __init__(
        self, shaper: Shaper, static_type: str, selections: tuple[NSelection, ...], via: frozenset[str] = frozenset()
    ) -> None:
        self.shaper = shaper
        self.static_type = static_type
        self.selections = selections
        # the field that led here: its coordinates on the parent's runtime type and the interfaces
        # that type implements (legal bases scoped by path match them); empty at the root
        self.via = via
        self.by_type: dict[str, _TypeFields] = {}

    def fields_for(self, typename: str) -> _TypeFields:
        fields = self.by_type.get(typename)
        if fields is None:
            fields = self.by_type[typename] = self.shaper.compile_fields(self, typename)
        return fields


class Shaper:
    def __init__(self, api_schema: GraphQLSchema, guarded: GuardLookup | None = None) -> None:
        self.schema = api_schema
        self.guarded = guarded
        # (type, field) -> its guard; (type, field, via) -> the guard of the positions reached through via
        self._guards: dict[tuple, FieldGuard | None] = {}
        self.concrete_types = frozenset(
            name
            for name, t in api_schema.type_map.items()
            if isinstance(t, GraphQLObjectType) and not name.startswith("__")
        )

    def _root_shape(self, plan: QueryPlan) -> _ObjectShape:
        shape = plan.compiled.get("shape")
        if shape is None:
            shape = plan.compiled["shape"] = _ObjectShape(self, plan.root_type, plan.selections)
        return shape

    def field_guard(self, typename: str, name: str, via: frozenset[str] = frozenset()) -> FieldGuard | None:
        if self.guarded is None:
            return None
        cache_key: tuple = (typename, name)
        if cache_key not in self._guards:
            self._guards[cache_key] = self.guarded(typename, name)
        guard = self._guards[cache_key]
        if guard is None or not guard.by_path or not via:
            return guard  # the common case: one guard for every position of the field
        # a legal basis covers the field only through given fields: a guard per way of reaching it,
        # so that verdicts, made per (guard, subject), are made per way
        cache_key = (typename, name, via)
        scoped = self._guards.get(cache_key)
        if scoped is None:
            scoped = self._guards[cache_key] = replace(guard, via=via)
        return scoped

    def compile_fields(self, shape: _ObjectShape, typename: str) -> _TypeFields:
        schema = self.schema
        typename_key = typename  # what `__typename` answers, even where the fields are the static type's
        runtime = schema.type_map.get(typename)
        if runtime is None or not hasattr(runtime, "fields"):
            runtime = schema.type_map[shape.static_type]
            typename = shape.static_type

        def applies(condition: str) -> bool:
            if condition == typename:
                return True
            condition_type = schema.type_map.get(condition)
            if condition_type is None or not is_abstract_type(condition_type):
                return False
            if not isinstance(runtime, GraphQLObjectType):
                return False
            return schema.is_sub_type(condition_type, runtime)  # type: ignore[arg-type]

        result = []
        collected = collect_fields(shape.selections, applies, lambda name: name in self.concrete_types)
        # response keys that hold their own field's value, unaliased and without arguments
        plain_keys = frozenset(
            key for key, item in collected.items() if item.field.name == key and not item.field.arguments
        )
        for key, item in collected.items():
            name = item.field.name
            if name == "__typename":
                result.append(_FieldShape(key, name, typename, (), _TYPENAME, None, None))
                continue
            if name in INTROSPECTION_ROOT_FIELDS and shape.static_type == (
                schema.query_type.name if schema.query_type else None
            ):
                result.append(_FieldShape(key, name, typename, (), _INTROSPECTION, None, None))
                continue
            definition = runtime.fields.get(name)  # type: ignore[union-attr]
            if definition is None:
                continue
            wrappers = []
            gql_type = definition.type
            while isinstance(gql_type, (GraphQLNonNull, GraphQLList)):
                wrappers.append("N" if isinstance(gql_type, GraphQLNonNull) else "L")
                gql_type = gql_type.of_type
            guard = self.field_guard(typename, name, shape.via)
            data_key = None
            if guard is not None:
                data_key = (
                    guard.stand_in if guard.stand_in is not None and guard.stand_in in plain_keys else guard.data_key
                )
            if isinstance(gql_type, GraphQLEnumType):
                result.append(
                    _FieldShape(
                        key, name, typename, tuple(wrappers), _ENUM, frozenset(gql_type.values), None, guard, data_key
                    )
                )
            elif is_leaf_type(gql_type):
                result.append(_FieldShape(key, name, typename, tuple(wrappers), _SCALAR, None, None, guard, data_key))
            else:
                via = frozenset(
                    f"{parent}.{name}" for parent in (typename, *(i.name for i in getattr(runtime, "interfaces", ())))
                )
                child = _ObjectShape(self, gql_type.name, item.field.selections or (), via)
                result.append(_FieldShape(key, name, typename, tuple(wrappers), _OBJECT, None, child, guard, data_key))
        return _TypeFields(result, typename_key)

    def shape(
        self,
        plan: QueryPlan,
        data: dict[str, Any],
        errors: list[dict[str, Any]],
        privacy: PrivacyDecisions | None = None,
    ) -> dict[str, Any] | None:
        """The client's response; personal and aggregate values as `privacy` decides (else null)."""
        walk = _Walk(self, errors, privacy)
        result = walk.object(data, self._root_shape(plan))
        return None if result is _BUBBLE or result is None else result

    async def shape_in_slices(
        self,
        plan: QueryPlan,
        data: dict[str, Any],
        errors: list[dict[str, Any]],
        privacy: PrivacyDecisions | None = None,
    ) -> dict[str, Any] | None:
        """`shape`, giving the event loop its turn every SLICE units of work; the same response.

        The walk is `shape`'s (a recursion), run in a greenlet that switches back here when its
        slice is spent; this coroutine then yields to the loop, after the other large answers'
        slices (one large answer at a time: `_turns`). Everything still runs on the loop's thread,
        so the privacy decisions and the caches the walk shares with other requests are only ever
        touched by one of them at a time (unlike a worker thread). An answer under one slice
        never yields."""
        walk = _Walk(self, errors, privacy)
        walk.budget = SLICE
        walk.caller = getcurrent()
        worker = greenlet(walk.object)
        result = worker.switch(data, self._root_shape(plan))
        if result is _TURN:
            turns = _turns(asyncio.get_running_loop())
            try:
                async with turns:
                    while result is _TURN:
                        await asyncio.sleep(0)
                        result = worker.switch()
            finally:
                if not worker.dead:  # cancelled between two slices: the walk ends where it was
                    worker.throw()
        return None if result is _BUBBLE or result is None else result


_TURNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _turns(loop: asyncio.AbstractEventLoop) -> asyncio.Lock:
    """The loop's large answers take their slices one answer at a time: with eight of them
    interleaved, a small request would wait eight slices for each of its own steps."""
    lock = _TURNS.get(loop)
    if lock is None:
        lock = _TURNS[loop] = asyncio.Lock()
    return lock


def path_of(node: tuple | None) -> list:
    """A response path from its linked form: (parent node, key) pairs, built only when needed."""
    parts: list = []
    while node is not None:
        node, key = node
        parts.append(key)
    parts.reverse()
    return parts


class _Walk:
    __slots__ = ("_error_paths", "budget", "caller", "errors", "privacy", "shaper")

    def __init__(self, shaper: Shaper, errors: list[dict[str, Any]], privacy: PrivacyDecisions | None) -> None:
        self.shaper = shaper
        self.errors = errors
        self._error_paths: list[tuple] | None = None
        self.privacy = privacy
        self.budget = _UNSLICED  # units of work left in this slice (see SLICE)
        self.caller: greenlet | None = None  # shape_in_slices, waiting for the end of a slice

    def _end_slice(self) -> None:
        self.budget = SLICE
        self.caller.switch(_TURN)  # type: ignore[union-attr]  # back here at the loop's next turn

    def object(self, obj: dict[str, Any], shape: _ObjectShape, node: tuple | None = None) -> Any:
        typename = obj.get("__typename")
        if typename not in self.shaper.concrete_types:
            if typename is not None and typename not in self.shaper.schema.type_map:
                return None  # a type the API does not expose (@inaccessible): the client sees null
            typename = (
                shape.static_type if typename is None or shape.static_type in self.shaper.concrete_types else typename
            )
        type_fields = shape.fields_for(typename)
        if type_fields.free is not None:
            return type_fields.free(obj, node, self)
        privacy = self.privacy
        guarded = type_fields.guarded
        object_key = None  # (type fields, subject) of an object whose guarded fields are placed one by one
        # two answers named two types for this object (see _merge.py): whose data it is, is disputed
        type_disputed = obj.get("__typename").__class__ in DISPUTED
        if guarded and privacy is not None and type_fields.subject_key is not None and not type_disputed:
            subject = obj.get(type_fields.subject_key)
            if subject.__class__ is str or subject.__class__ is int:
                object_key = (type_fields, subject)
                if object_key in privacy.placed_whole or privacy.known_object(object_key):
                    # every guarded field goes in as it is for this subject here
                    if type_fields.placed is not None:
                        return type_fields.placed(obj, node, self)
                    guarded = False
                    object_key = None
        out: dict[str, Any] = {}
        for field_shape in type_fields.fields:
            key = field_shape.key
            if field_shape.leaf:
                value = obj.get(key)
                if value is None:
                    if field_shape.non_null:
                        self._null_violation(field_shape, (node, key))
                        return _BUBBLE
                elif field_shape.kind == _ENUM and (not isinstance(value, str) or value not in field_shape.enum_values):
                    self._bad_enum(field_shape, (node, key))
                    if field_shape.non_null:
                        return _BUBBLE
                    value = None
            else:
                kind = field_shape.kind
                if kind == _TYPENAME:
                    out[key] = typename
                    continue
                if kind == _INTROSPECTION:
                    out[key] = obj.get(key)
                    continue
                if guarded and field_shape.guard is not None and privacy is not None and kind == _OBJECT:
                    # an object withheld whole is not shaped: the audit lists no field of it
                    subject = obj.get(field_shape.data_key)
                    if type_disputed or (subject.__class__ is not str and subject.__class__ is not int):  # as below
                        subject = SUBJECT_CONFLICT if type_disputed or isinstance(subject, DISPUTED) else None
                    if privacy.withholds(field_shape.guard, subject):
                        out[key] = privacy.place(field_shape.guard, subject, obj.get(key), node, key)
                        continue
                value = self.value(obj.get(key), field_shape, 0, (node, key))
                if value is _BUBBLE:
                    return _BUBBLE
            if not guarded or field_shape.guard is None:
                out[key] = value
                continue
            # the privacy stage decides on every value, here as it is placed (fail closed: no
            # decider, no value)
            if privacy is None:
                out[key] = None
                continue
            guard = field_shape.guard
            subject = obj.get(field_shape.data_key)
            if type_disputed or (subject.__class__ is not str and subject.__class__ is not int):
                # no usable subject (or contributor count): decided as unknown; one that answers
                # disputed, or an object of disputed type (see _merge.py): decided as a conflict
                subject = SUBJECT_CONFLICT if type_disputed or isinstance(subject, DISPUTED) else None
            elif guard.entity_keys and subject.__class__ is int:
                subject = (subject, _entity(obj, guard.entity_keys))
            out[key] = privacy.place(guard, subject, value, node, key)
        if object_key is not None:
            privacy.object_placed(object_key, type_fields.guards)  # type: ignore[union-attr]
        return out

    def value(self, value: Any, field_shape: _FieldShape, depth: int, node: tuple) -> Any:
        wrappers = field_shape.wrappers
        if depth < len(wrappers):
            if wrappers[depth] == "N":
                result = self.value(value, field_shape, depth + 1, node)
                if result is None:
                    self._null_violation(field_shape, node)
                    return _BUBBLE
                return result
            if value is None:
                return None
            if not isinstance(value, list):
                self._error(f"{field_shape.parent}.{field_shape.name} expected a list from its subgraph", node)
                return None
            self.budget -= len(value) * field_shape.weight
            if self.budget < 0:
                return self._list_in_slices(value, field_shape, depth, node)
            items = []
            for index, item in enumerate(value):
                completed = self.value(item, field_shape, depth + 1, (node, index))
                if completed is _BUBBLE:
                    return None
                items.append(completed)
            return items
        if value is None:
            return None
        kind = field_shape.kind
        if kind == _SCALAR:
            return value
        if kind == _ENUM:
            if isinstance(value, str) and value in field_shape.enum_values:
                return value
            self._bad_enum(field_shape, node)
            return None
        if not isinstance(value, dict):
            self._error(f"{field_shape.parent}.{field_shape.name} expected an object from its subgraph", node)
            return None
        result = self.object(value, field_shape.child, node)
        return None if result is _BUBBLE else result  # None: hidden type, null in its place

    def _list_in_slices(self, value: list, field_shape: _FieldShape, depth: int, node: tuple) -> Any:
        """A list met once the slice is spent (only in a sliced walk): the loop gets its turn
        before it, and between its items each time another slice is spent."""
        self._end_slice()
        weight = field_shape.weight
        items = []
        for index, item in enumerate(value):
            self.budget -= weight
            if self.budget < 0:
                self._end_slice()
            completed = self.value(item, field_shape, depth + 1, (node, index))
            if completed is _BUBBLE:
                return None
            items.append(completed)
        return items

    def _violated(self, field_shape: _FieldShape, node: tuple) -> Any:
        self._null_violation(field_shape, node)
        return _BUBBLE

    def _bad_enum(self, field_shape: _FieldShape, node: tuple) -> None:
        self._error(f"{field_shape.parent}.{field_shape.name} got an enum value the API does not expose", node)

    def _error(self, message: str, node: tuple) -> None:
        self.errors.append(
            {"message": message, "path": path_of(node), "extensions": {"code": "INVALID_SUBGRAPH_RESULT"}}
        )

    def _null_violation(self, field_shape: _FieldShape, node: tuple) -> None:
        if self._error_paths is None:
            self._error_paths = [tuple(e["path"]) for e in self.errors if e.get("path")]
        path = path_of(node)
        here = tuple(path)
        for other in self._error_paths:
            size = min(len(other), len(here))
            if other[:size] == here[:size]:
                return  # an error already explains this null
        self._error_paths.append(here)
        self.errors.append(
            {
                "message": f"Cannot return null for non-nullable field {field_shape.parent}.{field_shape.name}.",
                "path": path,
            }
        )


def _entity(obj: dict[str, Any], keys: tuple[str, ...]) -> tuple | None:
    """The key of the entity `obj` is, or None where a key field is missing or disputed (the
    aggregate is then not recognised as a question asked before)."""
    values = tuple(obj.get(key) for key in keys)
    return values if all(v.__class__ is str or v.__class__ is int for v in values) else None


# A position selecting more fields than this is shaped by the interpreter (_Walk.object): the
# generated function would hold one local per field.
_MAX_COMPILED_FIELDS = 250


def _compile(fields: list[_FieldShape], typename: str) -> Callable[[dict, tuple | None, _Walk], Any] | None:
    """Python code shaping an object of one position and runtime type as if nothing in it were
    guarded: what `_Walk.object` does for these fields, unrolled (no loop over the selection, no
    dispatch on each field's kind per value), and lists of objects completed inline.

    The code is generated once per (plan, position, runtime type) and kept with the plan. It only
    names response keys (GraphQL names, written as Python literals with repr) and constants passed
    in its namespace; anything unusual (a list of lists, a value of the wrong kind, a type this
    position has not met yet, a guarded object) is handed to the interpreter, so errors, null
    propagation and the slices' budget are the interpreter's own."""
    if len(fields) > _MAX_COMPILED_FIELDS:
        return None
    namespace: dict[str, Any] = {
        "_BUBBLE": _BUBBLE,
        "_UNDECIDED": _UNDECIDED,
        "_dict": dict,
        "_list": list,
        "_str": str,
        "_len": len,
        "_enumerate": enumerate,
        "_isinstance": isinstance,
        "T": typename,
    }
    body: list[str] = []
    entries: list[str] = []
    for index, field_shape in enumerate(fields):
        v, key, wrappers = f"v{index}", repr(field_shape.key), field_shape.wrappers
        namespace[f"F{index}"] = field_shape
        here = f"(node, {key})"
        if field_shape.kind == _TYPENAME:
            entries.append(f"{key}: T")
            continue
        entries.append(f"{key}: {v}")
        body.append(f"{v} = get({key})")
        if field_shape.kind == _INTROSPECTION:
            continue
        if field_shape.leaf:
            if field_shape.non_null:
                body += [f"if {v} is None:", f"    return walk._violated(F{index}, {here})"]
            if field_shape.kind == _ENUM:
                namespace[f"E{index}"] = field_shape.enum_values
                body += [
                    f"{'elif' if field_shape.non_null else 'if'} {v} is not None and (not _isinstance({v}, _str) or {v} not in E{index}):",
                    f"    walk._bad_enum(F{index}, {here})",
                    "    return _BUBBLE" if field_shape.non_null else f"    {v} = None",
                ]
            continue
        outer_non_null = bool(wrappers) and wrappers[0] == "N"
        otherwise = [
            "else:" if outer_non_null else f"elif {v} is not None:",
            f"    {v} = walk.value({v}, F{index}, 0, {here})",
            f"    if {v} is _BUBBLE:",
            "        return _BUBBLE",
        ]
        if field_shape.kind == _OBJECT and wrappers in ((), ("N",)):
            namespace[f"C{index}"] = field_shape.child
            namespace[f"B{index}"] = field_shape.child.by_type.get  # type: ignore[union-attr]
            namespace[f"S{index}"] = field_shape.child.static_type  # type: ignore[union-attr]
            body += [f"if {v}.__class__ is _dict:", *_indent(_complete_object(v, index, here), 1)]
            if outer_non_null:
                body += [f"    if {v} is None:", f"        return walk._violated(F{index}, {here})"]
            body += otherwise
        elif field_shape.kind == _OBJECT and wrappers in (("L",), ("L", "N"), ("N", "L"), ("N", "L", "N")):
            depth = wrappers.index("L")
            item_non_null = wrappers[depth + 1 :] == ("N",)
            namespace[f"C{index}"] = field_shape.child
            namespace[f"B{index}"] = field_shape.child.by_type.get  # type: ignore[union-attr]
            namespace[f"S{index}"] = field_shape.child.static_type  # type: ignore[union-attr]
            item = f"r{index}"
            loop = [
                f"n{index} = {here}",
                f"items{index} = []",
                f"for i{index}, item{index} in _enumerate({v}):",
                f"    if item{index}.__class__ is _dict:",
                *_indent(_complete_object(item, index, f"(n{index}, i{index})", source=f"item{index}"), 2),
            ]
            if item_non_null:
                loop += [
                    f"        if {item} is None:",
                    f"            walk._violated(F{index}, (n{index}, i{index}))",
                    f"            items{index} = None",
                    "            break",
                ]
            loop += [
                "    else:",
                f"        {item} = walk.value(item{index}, F{index}, {depth + 1}, (n{index}, i{index}))",
                f"        if {item} is _BUBBLE:",
                f"            items{index} = None",
                "            break",
                f"    items{index}.append({item})",
                f"{v} = items{index}",
            ]
            body += [
                f"if {v}.__class__ is _list:",
                f"    walk.budget -= _len({v}) * {field_shape.weight}",
                "    if walk.budget < 0:",
                f"        {v} = walk._list_in_slices({v}, F{index}, {depth}, {here})",
                "    else:",
                *_indent(loop, 2),
            ]
            if outer_non_null:
                body += [f"    if {v} is None:", f"        return walk._violated(F{index}, {here})"]
            body += otherwise
        else:  # lists of leaves, lists of lists: the interpreter
            body += [
                f"if {v} is not None:" if not outer_non_null else "if True:",
                f"    {v} = walk.value({v}, F{index}, 0, {here})",
                f"    if {v} is _BUBBLE:",
                "        return _BUBBLE",
            ]
    source = "\n".join(
        [
            "def placed(obj, node, walk):",
            "    get = obj.get",
            *_indent(body, 1),
            f"    return {{{', '.join(entries)}}}",
            "",
        ]
    )
    exec(compile(source, f"<shaping {typename}>", "exec"), namespace)  # our own code: names and literals only
    return namespace.pop("placed")  # not kept in its own globals: no cycle to outlive a released Engine


def _complete_object(target: str, index: int, here: str, source: str | None = None) -> list[str]:
    """Lines shaping the dict in `source` (default: `target`) at a position whose selection is
    C{index}: by its type's compiled code when that needs no privacy look-up, or when one look-up
    finds every guarded field of it placed as it is for its subject; else by the walk. An object
    without `__typename` is of the position's static type (as in `_Walk.object`); a type met for
    the first time, or not a plain name (a disputed one), goes through the walk."""
    source = source or target
    return [
        f"t = {source}.get('__typename')",
        f"t = B{index}(t if t is not None else S{index}) if t is None or t.__class__ is _str else None",
        "if t is not None and t.free is not None:",
        f"    {target} = t.free({source}, {here}, walk)",
        f"elif t is not None and t.whole_key is not None and (w := t.place_whole({source}, {here}, walk)) is not _UNDECIDED:",
        f"    {target} = w",
        "else:",
        f"    {target} = walk.object({source}, C{index}, {here})",
        f"if {target} is _BUBBLE:",
        f"    {target} = None",
    ]


def _indent(lines: list[str], levels: int) -> list[str]:
    pad = "    " * levels
    return [pad + line for line in lines]
