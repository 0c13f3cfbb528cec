"""Query planning: split a normalized operation into subgraph fetches.

The planner walks the client's selection from the root. At each object it asks, field by field,
which subgraph can resolve the field from here:

- the subgraph already producing the object (a *local* field), or
- another subgraph reached through an *entity jump*: the object's `@key` fields (and the
  field's `@requires` fields) are planned here first, then an `_entities` fetch carries them to
  the target subgraph. `@interfaceObject` subgraphs are reached with the interface's key, and
  an entity interface resolves the concrete type of an interface object.

Abstract positions are expanded per possible type in the subgraph at hand. What cannot be
resolved below a field is handed back to the parent as a *leftover*, which the parent re-routes
through another subgraph (for example a shareable value type fetched from two subgraphs). When
several routes exist, a local one that adds no fetch is kept untried (_kept_local); otherwise
each is tried on the plan being built, scored, and undone (_UndoLog), the cheapest winning: the
fewest fetches, then waves, then fields fetched late. Where the best route for a field alone adds
a fetch, the routes are scored again with the later siblings that could share a fetch planned
after each (_Siblings): sibling root fields and aliases share a fetch where one subgraph serves
them together. docs/engine.md, "How candidates are chosen". The planner never performs I/O, and
never copies its whole state per route.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from graphql import VariableDefinitionNode, print_ast

from ..errors import ClientRefusal
from ..supergraph import SupergraphModel, named_type
from ._operation import (
    INTROSPECTION_ROOT_FIELDS,
    NField,
    NFragment,
    NSelection,
    collect_fields,
    field_set_selections,
)
from ._plan import (
    RESERVED_PREFIX,
    FetchNode,
    QueryPlan,
    Representation,
    RepresentationEntry,
    RepresentationField,
    RepresentationFragment,
    SField,
    SSelection,
)

_COMPOSITE_KINDS = ("OBJECT", "INTERFACE", "UNION")
_DRY_RUN_BUDGET = 400


class PlanningError(ClientRefusal):
    """No subgraph route resolves part of the operation."""

    code = "QUERY_PLANNING_FAILED"


class PlanningBudgetExceeded(PlanningError):
    """Planning took longer than its budget (QUERY_PLANNING_BUDGET_EXCEEDED): the event loop is
    never held longer than that by one operation's plan."""

    code = "QUERY_PLANNING_BUDGET_EXCEEDED"


class _Infeasible(Exception):
    """A route cannot be taken (e.g. an entity key cannot be obtained)."""


@dataclass(slots=True, eq=False)
class _PendingRepresentation:
    """What an entity fetch being planned sends for the objects of one type found in the data: the
    lists grow (undoably) as jumps join the fetch; `_fetch_node` turns it into a Representation."""

    typename: str  # the __typename sent (an interface for @interfaceObject)
    key_fields: list[NSelection]
    required_fields: list[NSelection]


@dataclass(eq=False)
class _Fetch:
    id: int
    subgraph: str
    operation_kind: str
    entity: bool
    merge_path: tuple[str, ...]
    stage: int
    selection: SSelection = field(default_factory=SSelection)
    depends_on: set[int] = field(default_factory=set)
    # typename found in the data -> what is sent for such objects
    representations: dict[str, _PendingRepresentation] = field(default_factory=dict)


@dataclass(eq=False)
class _State:
    fetches: list[_Fetch] = field(default_factory=list)
    # registry of response keys per data position (path without list markers):
    # key -> set of (field name, printed arguments) selected under it
    keys: dict[tuple[str, ...], dict[str, set[tuple[str, str]]]] = field(default_factory=dict)
    next_alias: int = 0
    stage: int = 0

    def cost(self) -> tuple[int, int, int]:
        by_id = {f.id: f for f in self.fetches}
        depth: dict[int, int] = {}

        def depth_of(fetch_id: int) -> int:
            if fetch_id not in depth:
                depth[fetch_id] = 0
                fetch = by_id[fetch_id]
                depth[fetch_id] = 1 + max((depth_of(d) for d in fetch.depends_on if d in by_id), default=0)
            return depth[fetch_id]

        longest = max((depth_of(f.id) for f in self.fetches), default=0)
        # fields fetched in later waves weigh more: resolve as much as possible early
        weighted = sum(_count_fields(f.selection) * depth_of(f.id) for f in self.fetches)
        return (len(self.fetches), longest, weighted)


# What a route trial changed, undone in reverse order (see _UndoLog)
_DELETE_KEY = 0  # (_DELETE_KEY, dict, key): a key was added
_TRUNCATE = 1  # (_TRUNCATE, list, length): items were appended past `length`
_SET_ATTRIBUTE = 2  # (_SET_ATTRIBUTE, (object, attribute name), value before)


class _UndoLog:
    """The changes a route trial made to the planning state, so that they can be undone.

    Routes are tried on the state itself (see QueryPlanner._rank_routes): every change the
    planner makes to fetches, their selections and the response-key registry goes through
    `QueryPlanner` methods that enter it here while a trial runs. Undoing restores the state
    exactly (dictionaries keep their order: keys added are the last ones). Whatever a trial
    created (new fetches, new selections) simply falls away.
    """

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[tuple] = []

    def undo_to(self, mark: int) -> None:
        entries = self.entries
        while len(entries) > mark:
            kind, target, value = entries.pop()
            if kind == _DELETE_KEY:
                del target[value]
            elif kind == _TRUNCATE:
                del target[value:]
            else:
                setattr(target[0], target[1], value)


@dataclass(frozen=True, eq=False)
class _Position:
    fetch: _Fetch | None  # None at the operation root, before any subgraph is chosen
    selection: SSelection | None
    path: tuple[str, ...]  # merge path, "@" for list levels
    type_name: str  # the type in `subgraph` (object, interface object, or abstract)
    subgraph: str | None
    provided: tuple[NSelection, ...] | None = None  # fields made available by @provides

    @property
    def key_path(self) -> tuple[str, ...]:
        return tuple(p for p in self.path if p != "@")


class _Siblings:
    """The fields planned one after the other at one position (the root, an object, one possible
    type of an abstract position). A route of one of them is scored with the later ones that could
    share a fetch with it planned after it (QueryPlanner._rank_routes): the plan of the selection
    set, not of the field alone, decides."""

    __slots__ = ("fields", "reachable")

    def __init__(self, fields: list[NField]) -> None:
        self.fields = fields
        # per field, once asked: the subgraphs a route other than the local one would fetch from
        self.reachable: list[frozenset[str] | None] = [None] * len(fields)


@dataclass(frozen=True)
class _Route:
    subgraph: str
    target_type: str | None  # None: resolve locally in `subgraph`
    representation_typename: str | None = None
    requires: tuple[NSelection, ...] | None = None


def _count_fields(selection: SSelection) -> int:
    total = 0
    for sub_field in selection.fields.values():
        total += 1
        if sub_field.selection is not None:
            total += _count_fields(sub_field.selection)
    for fragment in selection.fragments.values():
        total += _count_fields(fragment)
    return total


def _selection_weight(selections) -> int:
    total = 0
    for selection in selections:
        if isinstance(selection, NField):
            total += 1 + (_selection_weight(selection.selections) if selection.selections else 0)
        else:
            total += _selection_weight(selection.selections)
    return total


def _list_depth(type_str: str) -> int:
    return type_str.count("[")


class QueryPlanner:
    """Builds one QueryPlan. Create one per operation; `plan()` once."""

    def __init__(
        self,
        model: SupergraphModel,
        operation_kind: str,
        selections: tuple[NSelection, ...],
        variable_definitions: tuple[VariableDefinitionNode, ...] = (),
        operation_name: str | None = None,
        deadline: float | None = None,
    ) -> None:
        self.model = model
        self.deadline = deadline  # time.monotonic() past which planning gives up; None: never
        self.kind = operation_kind
        self.root_type = model.root_types.get(operation_kind, "")
        self.selections = selections
        self.variable_definitions = {v.variable.name.value: print_ast(v) for v in variable_definitions}
        self.operation_name = operation_name
        self.state = _State()
        self.budget = _DRY_RUN_BUDGET
        self.jumps_in_progress: set[tuple] = set()
        self.touch_log: list[set[int]] = []  # fetch ids used while planning a jump's requirements
        self.undo: _UndoLog | None = None  # while a route is tried: its changes, to be undone
        self.looking_ahead = False  # while later siblings are planned to score a route (no deeper look)
        self._field_set_cache: dict[int, tuple[NSelection, ...]] = {}
        self._jump_route_cache: dict[tuple[str, str], list[tuple[bool, _Route]]] = {}
        self._coverage_cache: dict[tuple[int, str], int] = {}

    # -- entry point -------------------------------------------------------------------------

    def plan(self) -> QueryPlan:
        if not self.root_type:
            raise PlanningError(f"the schema has no {self.kind} type")
        self._register_client_keys((), self.selections)
        root = _Position(None, None, (), self.root_type, None)
        fields = collect_fields(self.selections, lambda c: self._applies(c, self.root_type), self._is_concrete)
        has_introspection = any(c.field.name in INTROSPECTION_ROOT_FIELDS for c in fields.values())
        planned = [
            c.field
            for c in fields.values()
            if c.field.name != "__typename" and c.field.name not in INTROSPECTION_ROOT_FIELDS
        ]
        # mutation fields run in order, each chosen on its own; query fields share fetches
        siblings = _Siblings(planned) if self.kind != "mutation" else None
        for index, root_field in enumerate(planned):
            if self.kind == "mutation":
                self.state.stage += 1
            leftover = self._route_field(root, root_field, frozenset(), siblings, index)
            if leftover is not None:
                raise PlanningError(self._unplannable_message(self.root_type, leftover))
        return QueryPlan(
            operation_kind=self.kind,
            root_type=self.root_type,
            nodes=self._finish(),
            selections=self.selections,
            has_introspection=has_introspection,
        )

    def _unplannable_message(self, parent: str, leftover: NField) -> str:
        path = [leftover.key]
        node: NSelection = leftover
        while isinstance(node, NField) and node.selections:
            node = node.selections[0]
            while isinstance(node, NFragment) and node.selections:
                node = node.selections[0]
            if isinstance(node, NField):
                path.append(node.key)
        return f"no subgraph can resolve {'.'.join(path)} of {parent} with the given supergraph"

    # -- response keys ------------------------------------------------------------------------

    def _register_client_keys(self, path: tuple[str, ...], selections) -> None:
        registry = self.state.keys.setdefault(path, {})
        for selection in selections:
            if isinstance(selection, NField):
                registry.setdefault(selection.key, set()).add((selection.name, selection.arguments))
                if selection.selections:
                    self._register_client_keys(path + (selection.key,), selection.selections)
            else:
                self._register_client_keys(path, selection.selections)

    def _internal_key(self, path: tuple[str, ...], name: str, arguments: str) -> str:
        """The response key a key or @requires field is read from at `path`: one already selected
        there for the same field if any, else its name, else an alias of the gateway's own."""
        registry = self.state.keys.get(path)
        if registry is None:
            registry = self._enter(self.state.keys, path, {})
        signature = (name, arguments)
        if registry.get(name) == {signature}:
            return name
        # a key the gateway added for the same field (the privacy stage's subject) wins over a
        # client alias: a representation then names the entity that the privacy guard decides on,
        # and no answer can give the one under a key and the other under another
        chosen = None
        for key, signatures in registry.items():
            if signatures == {signature}:
                if key.startswith(RESERVED_PREFIX):
                    return key
                if chosen is None:
                    chosen = key
        if chosen is not None:
            return chosen
        if name not in registry:
            self._enter(registry, name, {signature})
            return name
        while True:
            self._set(self.state, "next_alias", self.state.next_alias + 1)
            alias = f"{RESERVED_PREFIX}{self.state.next_alias}_{name}"
            if alias not in registry:
                self._enter(registry, alias, {signature})
                return alias

    def _internal_fields(self, path: tuple[str, ...], selections: tuple[NSelection, ...]) -> tuple[NSelection, ...]:
        result: list[NSelection] = []
        for selection in selections:
            if isinstance(selection, NField):
                key = self._internal_key(path, selection.name, selection.arguments)
                sub = self._internal_fields(path + (key,), selection.selections) if selection.selections else None
                result.append(NField(key, selection.name, selection.arguments, selection.variables, sub))
            else:
                result.append(NFragment(selection.type_condition, self._internal_fields(path, selection.selections)))
        return tuple(result)

    def _field_set(self, selections) -> tuple[NSelection, ...]:
        cached = self._field_set_cache.get(id(selections))
        if cached is None:
            cached = self._field_set_cache[id(selections)] = field_set_selections(selections)
        return cached

    # -- changes to the state: undoable while a route is tried -----------------------------------

    def _enter(self, mapping: dict, key, value):
        """`mapping[key] = value` for a key not in `mapping`."""
        if self.undo is not None:
            self.undo.entries.append((_DELETE_KEY, mapping, key))
        mapping[key] = value
        return value

    def _extend(self, items: list, added) -> None:
        if self.undo is not None:
            self.undo.entries.append((_TRUNCATE, items, len(items)))
        items.extend(added)

    def _set(self, target, attribute: str, value) -> None:
        if self.undo is not None:
            self.undo.entries.append((_SET_ATTRIBUTE, (target, attribute), getattr(target, attribute)))
        setattr(target, attribute, value)

    def _add_typename(self, selection: SSelection) -> None:
        if self.undo is not None and "__typename" not in selection.fields:
            self.undo.entries.append((_DELETE_KEY, selection.fields, "__typename"))
        selection.add_typename()

    def _add_field(self, selection: SSelection, f: NField, type_: str, composite: bool) -> SField:
        if self.undo is not None and f.key not in selection.fields:
            self.undo.entries.append((_DELETE_KEY, selection.fields, f.key))
        return selection.add(f.key, f.name, f.arguments, f.variables, type_, composite)

    def _fragment(self, selection: SSelection, type_condition: str) -> SSelection:
        if self.undo is not None and type_condition not in selection.fragments:
            self.undo.entries.append((_DELETE_KEY, selection.fragments, type_condition))
        return selection.fragment(type_condition)

    # -- types --------------------------------------------------------------------------------

    def _is_concrete(self, type_name: str) -> bool:
        facts = self.model.types.get(type_name)
        return facts is not None and facts.kind == "OBJECT"

    def _applies(self, condition: str, runtime_type: str) -> bool:
        if condition == runtime_type:
            return True
        if not self.model.is_abstract(condition):
            return False
        if self.model.is_abstract(runtime_type):
            # an interface object position: only the interface's own fragments apply
            return condition in self.model.interfaces_of(runtime_type)
        schema = self.model.schema
        return schema.is_sub_type(schema.type_map[condition], schema.type_map[runtime_type])  # type: ignore[arg-type]

    def _field_type(self, type_name: str, field_name: str, subgraph: str | None) -> tuple[str, str]:
        """(type in the subgraph, type in the supergraph) of a field."""
        facts = self.model.types[type_name].fields.get(field_name)
        if facts is None:
            raise PlanningError(f"{type_name} has no field {field_name}")
        local = facts.api_type
        if subgraph is not None:
            join = self.model.field_join(type_name, field_name, subgraph)
            if join is not None and join.type:
                local = join.type
        return local, facts.api_type

    def _provided(self, pos: _Position, name: str) -> NField | None:
        if not pos.provided:
            return None
        fields = collect_fields(pos.provided, lambda c: self._applies(c, pos.type_name), self._is_concrete)
        for collected in fields.values():
            if collected.field.name == name:
                return collected.field
        return None

    # -- routes --------------------------------------------------------------------------------

    def _local_join(self, pos: _Position, name: str):
        """The join facts when `name` resolves in the position's subgraph without a jump."""
        assert pos.subgraph is not None
        join = self.model.field_join(pos.type_name, name, pos.subgraph)
        if join is None or join.used_overridden or join.requires:
            return None
        if join.external and self._provided(pos, name) is None:
            return None
        return join

    def _routes(self, pos: _Position, f: NField) -> list[_Route]:
        model = self.model
        if pos.fetch is None:
            candidates = model.subgraphs_resolving(self.root_type, f.name)
            if len(candidates) > 1:
                used = {fetch.subgraph for fetch in self.state.fetches if not fetch.entity}
                candidates.sort(key=lambda s: (s not in used, -self._root_coverage(f, s), s))
            return [_Route(s, self.root_type) for s in candidates]
        routes: list[_Route] = []
        if self._local_join(pos, f.name) is not None:
            routes.append(_Route(pos.subgraph, None))  # type: ignore[arg-type]
        jump_types = [pos.type_name]
        if self._is_concrete(pos.type_name):
            jump_types += [i for i in model.interfaces_of(pos.type_name) if model.entity_interfaces_with_object(i)]
        for target in jump_types:
            for is_interface_object, route in self._jump_routes(target, f.name):
                if target != pos.type_name and not is_interface_object:
                    continue
                if route.subgraph == pos.subgraph and target == pos.type_name and route.requires is None:
                    continue  # that is the local route
                routes.append(route)
        existing = {(fetch.subgraph, fetch.merge_path) for fetch in self.state.fetches if fetch.entity}
        routes.sort(
            key=lambda r: (
                r.target_type is not None,
                (r.subgraph, pos.path) not in existing,
                r.requires is not None,
                r.subgraph,
            )
        )
        return routes

    def _root_coverage(self, f: NField, subgraph: str) -> int:
        """How much of root field `f`'s selection `subgraph` resolves itself: among subgraphs that
        plan it at the same cost, the one that knows more of what is asked (its own fields, what
        its `@provides` promise) is taken, not the first by name. Once per field and subgraph."""
        cache_key = (id(f), subgraph)
        coverage = self._coverage_cache.get(cache_key)
        if coverage is None:
            root = _Position(None, None, (), self.root_type, subgraph)
            coverage = self._coverage_cache[cache_key] = self._coverage(root, (f,))
        return coverage

    def _coverage(self, pos: _Position, selections) -> int:
        """The number of fields of `selections` the position's subgraph resolves without a jump."""
        assert pos.subgraph is not None
        types = [pos.type_name]
        if self.model.is_abstract(pos.type_name) and not self.model.is_interface_object(pos.type_name, pos.subgraph):
            types = self.model.possible_types_in(pos.type_name, pos.subgraph) or types
        count = 0
        for type_name in types:
            at = replace(pos, type_name=type_name)
            fields = collect_fields(selections, lambda c, t=type_name: self._applies(c, t), self._is_concrete)
            for collected in fields.values():
                sub_field = collected.field
                join = self._local_join(at, sub_field.name) if sub_field.name != "__typename" else None
                if join is None:
                    continue
                count += 1
                if sub_field.selections:
                    local_type, _ = self._field_type(type_name, sub_field.name, pos.subgraph)
                    if join.provides:
                        provided: tuple[NSelection, ...] | None = self._field_set(join.provides)
                    else:
                        provided_field = self._provided(at, sub_field.name)
                        provided = provided_field.selections if provided_field is not None else None
                    child = _Position(None, None, (), named_type(local_type), pos.subgraph, provided)
                    count += self._coverage(child, sub_field.selections)
        return count

    def _jump_routes(self, target: str, field_name: str) -> list[tuple[bool, _Route]]:
        """(is an interface object there, route) for each subgraph that resolves `target.field_name`
        and has a resolvable key for `target`, in the supergraph's order. It depends on the
        supergraph alone, so it is worked out once per planner: with a hundred subgraphs sharing
        an entity, scanning them for every field tried was most of the planning time."""
        cache_key = (target, field_name)
        routes = self._jump_route_cache.get(cache_key)
        if routes is None:
            routes = []
            facts = self.model.types.get(target)
            for subgraph, in_graph in facts.subgraphs.items() if facts is not None else ():
                if not in_graph.resolvable_keys():
                    continue
                join = self.model.resolves(target, field_name, subgraph)
                if join is None:
                    continue
                requires = self._field_set(join.requires) if join.requires else None
                routes.append((in_graph.is_interface_object, _Route(subgraph, target, target, requires)))
            self._jump_route_cache[cache_key] = routes
        return routes

    def _route_field(
        self, pos: _Position, f: NField, exclude: frozenset[str], siblings: _Siblings | None = None, index: int = 0
    ) -> NField | None:
        """Plan `f` at `pos`; return what could not be planned (None when all of it was). `f` is
        `siblings.fields[index]` when it is planned among siblings (see _Siblings)."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise PlanningBudgetExceeded("planning the operation took longer than its budget: ask for less at once")
        if pos.fetch is None and self.kind == "mutation" and exclude:
            return f  # a mutation field is never sent twice
        routes = [r for r in self._routes(pos, f) if r.subgraph not in exclude]
        if not routes:
            return f
        if len(routes) > 1 and self.budget > 0:
            if routes[0].target_type is None and self._kept_local(pos, f, routes[0]):
                return None
            routes = self._rank_routes(pos, f, routes, exclude, siblings, index)
            if not routes:
                return f
        for route in routes:
            try:
                return self._apply_and_reroute(pos, f, route, exclude, siblings, index)
            except _Infeasible:
                continue
        return f

    def _kept_local(self, pos: _Position, f: NField, route: _Route) -> bool:
        """Plan `f` in the subgraph at hand and keep it when that needs no fetch more, makes no
        fetch wait longer and leaves nothing unplanned: no other route can then be cheaper (each
        adds a fetch, or puts the field in a later one), for the field alone or with its siblings,
        so none is tried. Otherwise undo it. Most fields of a plan end here, which leaves the
        trials to the real choices (the benchmark's heavy query has none left)."""
        outermost = self.undo is None
        if outermost:
            self.undo = _UndoLog()
        undo = self.undo
        assert undo is not None
        mark = len(undo.entries)
        fetches_before = len(self.state.fetches)
        saved_touches = [set(touched) for touched in self.touch_log]
        kept = False
        try:
            kept = (
                self._apply_route(pos, f, route) is None
                and len(self.state.fetches) == fetches_before
                and not any(
                    kind == _SET_ATTRIBUTE and target[1] == "depends_on" for kind, target, _ in undo.entries[mark:]
                )
            )
        finally:
            if not kept:
                undo.undo_to(mark)
                for touched, before in zip(self.touch_log, saved_touches, strict=True):
                    touched.clear()
                    touched.update(before)
            if outermost:
                self.undo = None
        return kept

    def _sharing_siblings(
        self, pos: _Position, routes: list[_Route], siblings: _Siblings | None, index: int
    ) -> list[NField]:
        """The siblings planned after `siblings.fields[index]` that could share a fetch with one of
        its `routes`: a route of theirs leaves `pos` (root field, entity jump) for a subgraph one of
        these routes leaves for. A sibling resolved only locally shares nothing a choice here can
        change (what its selection needs below is planned at other merge paths)."""
        if siblings is None or self.looking_ahead:
            return []
        reachable = {route.subgraph for route in routes if route.target_type is not None}
        if not reachable:
            return []
        sharing = []
        for later in range(index + 1, len(siblings.fields)):
            theirs = siblings.reachable[later]
            if theirs is None:
                theirs = siblings.reachable[later] = frozenset(
                    route.subgraph
                    for route in self._routes(pos, siblings.fields[later])
                    if route.target_type is not None
                )
            if theirs & reachable:
                sharing.append(siblings.fields[later])
        return sharing

    def _rank_routes(
        self,
        pos: _Position,
        f: NField,
        routes: list[_Route],
        exclude: frozenset[str],
        siblings: _Siblings | None,
        index: int,
    ) -> list[_Route]:
        """Try each route on the state itself, score it, and undo what it changed (no copy of the
        state per route: a trial costs what it changes).

        When the route best for the field alone adds a fetch, the routes are tried again, each
        with the later siblings that could share a fetch with it planned after it (each ranking
        its own routes, without looking further ahead): `{ media { id } y: media { animals { id }
        } }` then sends both fields to the subgraph that can answer the second, where `media { id }`
        alone ties between two. A route that adds no fetch cannot be beaten that way (what another
        route's fetches would save the siblings, they cost first), so then nothing is tried again.
        Ties on the whole keep the route cheaper for the field alone, then the routes' order."""
        fetches_before = len(self.state.fetches)
        alone = self._try_routes(pos, f, routes, exclude, siblings, index, [])
        if not alone:
            return []
        alone.sort(key=lambda item: item[0])
        best_cost = alone[0][0][1]
        if best_cost[0] > fetches_before:
            later = self._sharing_siblings(pos, routes, siblings, index)
            if later:
                alone_cost = {id(route): key for key, route in alone}
                together = self._try_routes(pos, f, [route for _, route in alone], exclude, siblings, index, later)
                together.sort(key=lambda item: (item[0][:3], alone_cost[id(item[1])]))
                return [route for _, route in together]
        return [route for _, route in alone]

    def _try_routes(
        self,
        pos: _Position,
        f: NField,
        routes: list[_Route],
        exclude: frozenset[str],
        siblings: _Siblings | None,
        index: int,
        later: list[NField],
    ) -> list[tuple[tuple, _Route]]:
        """(score, route) of each feasible route: (weight of what it leaves unplanned, cost of the
        plan, order) or, with `later` siblings planned after it, (weight left of the field, of the
        siblings, cost of the plan)."""
        scored: list[tuple[tuple, _Route]] = []
        outermost = self.undo is None
        if outermost:
            self.undo = _UndoLog()
        undo = self.undo
        assert undo is not None
        try:
            for order, route in enumerate(routes):
                self.budget -= 1
                saved_touches = [set(touched) for touched in self.touch_log]
                mark = len(undo.entries)
                try:
                    leftover = self._apply_and_reroute(pos, f, route, exclude, siblings, index)
                    weight = _selection_weight((leftover,)) if leftover is not None else 0
                    if not later:
                        scored.append(((weight, self.state.cost(), order), route))
                        continue
                    later_weight = 0
                    self.looking_ahead = True
                    try:
                        for sibling in later:
                            left = self._route_field(pos, sibling, frozenset())
                            if left is not None:
                                later_weight += _selection_weight((left,))
                    finally:
                        self.looking_ahead = False
                    scored.append(((weight, later_weight, self.state.cost()), route))
                except _Infeasible:
                    pass
                finally:
                    undo.undo_to(mark)
                    for touched, before in zip(self.touch_log, saved_touches, strict=True):
                        touched.clear()
                        touched.update(before)
        finally:
            if outermost:
                self.undo = None
        return scored

    def _apply_and_reroute(
        self,
        pos: _Position,
        f: NField,
        route: _Route,
        exclude: frozenset[str],
        siblings: _Siblings | None = None,
        index: int = 0,
    ) -> NField | None:
        leftover = self._apply_route(pos, f, route)
        if leftover is not None:
            return self._route_field(pos, leftover, exclude | {route.subgraph}, siblings, index)
        return None

    def _apply_route(self, pos: _Position, f: NField, route: _Route) -> NField | None:
        if route.target_type is None:
            return self._add_local(pos, f)
        if pos.fetch is None:
            fetch = self._root_fetch(route.subgraph)
            root = _Position(fetch, fetch.selection, (), self.root_type, route.subgraph)
            return self._add_local(root, f)
        target = self._jump(pos, route)
        if self.model.is_abstract(target.type_name) and not self.model.is_interface_object(
            target.type_name, target.subgraph
        ):
            leftovers = self._plan_abstract(target, (f,))
            return f if leftovers else None
        return self._add_local(target, f)

    # -- fields ---------------------------------------------------------------------------------

    def _add_local(self, pos: _Position, f: NField) -> NField | None:
        assert pos.selection is not None and pos.fetch is not None
        for touched in self.touch_log:
            touched.add(pos.fetch.id)
        if f.name == "__typename":
            self._add_typename(pos.selection)
            return None
        local_type, supergraph_type = self._field_type(pos.type_name, f.name, pos.subgraph)
        named = named_type(local_type)
        facts = self.model.types.get(named)
        composite = facts is not None and facts.kind in _COMPOSITE_KINDS
        added = self._add_field(pos.selection, f, local_type, composite)
        if not composite or added.selection is None:
            return None
        join = self.model.field_join(pos.type_name, f.name, pos.subgraph)  # type: ignore[arg-type]
        if join is not None and join.provides:
            provided: tuple[NSelection, ...] | None = self._field_set(join.provides)
        else:
            provided_field = self._provided(pos, f.name)
            provided = provided_field.selections if provided_field is not None else None
        if self.model.is_abstract(named_type(supergraph_type)):
            self._add_typename(added.selection)
        child = _Position(
            pos.fetch,
            added.selection,
            pos.path + (f.key,) + ("@",) * _list_depth(supergraph_type),
            named,
            pos.subgraph,
            provided,
        )
        leftovers = self._plan_selections(child, f.selections or ())
        if leftovers:
            return f.with_selections(tuple(leftovers))
        return None

    def _plan_selections(self, pos: _Position, selections) -> list[NSelection]:
        if self.model.is_abstract(pos.type_name):
            if self.model.is_interface_object(pos.type_name, pos.subgraph):  # type: ignore[arg-type]
                return self._plan_interface_object(pos, selections)
            return self._plan_abstract(pos, selections)
        return self._plan_object(pos, selections)

    def _plan_object(self, pos: _Position, selections) -> list[NSelection]:
        leftovers: list[NSelection] = []
        fields = collect_fields(selections, lambda c: self._applies(c, pos.type_name), self._is_concrete)
        # the shaper knows the type of a concrete position: no __typename asked for it
        siblings = _Siblings([c.field for c in fields.values() if c.field.name != "__typename"])
        for index, sibling in enumerate(siblings.fields):
            leftover = self._route_field(pos, sibling, frozenset(), siblings, index)
            if leftover is not None:
                leftovers.append(leftover)
        return leftovers

    def _plan_abstract(self, pos: _Position, selections) -> list[NSelection]:
        assert pos.selection is not None and pos.subgraph is not None
        self._add_typename(pos.selection)
        possible = self.model.possible_types_in(pos.type_name, pos.subgraph)
        if not possible and self.model.types[pos.type_name].kind == "INTERFACE":
            # no implementation here: the interface's own fields must still have a route
            return self._plan_object(pos, selections)
        leftovers: list[NSelection] = []
        bubbled: set[str] = set()
        for concrete in possible:
            fields = collect_fields(selections, lambda c, t=concrete: self._applies(c, t), self._is_concrete)
            wanted = [c for c in fields.values() if c.field.name != "__typename"]
            if not wanted:
                continue
            concrete_pos = replace(pos, selection=self._fragment(pos.selection, concrete), type_name=concrete)
            siblings = _Siblings([c.field for c in wanted])
            for index, collected in enumerate(wanted):
                leftover = self._route_field(concrete_pos, collected.field, frozenset(), siblings, index)
                if leftover is None:
                    continue
                if collected.conditioned:
                    leftovers.append(NFragment(concrete, (leftover,)))
                elif collected.field.key not in bubbled:
                    # selected on the abstract type: it must be re-planned for every type at once
                    bubbled.add(collected.field.key)
                    leftovers.append(collected.field)
        return leftovers

    def _plan_interface_object(self, pos: _Position, selections) -> list[NSelection]:
        """An interface seen through an `@interfaceObject`: the concrete type is unknown here."""
        interface = pos.type_name
        here: list[NSelection] = []
        needs_type: list[NSelection] = []

        def split(items) -> None:
            for item in items:
                if isinstance(item, NField):
                    (needs_type if item.name == "__typename" else here).append(item)
                elif item.type_condition is None or item.type_condition == interface:
                    split(item.selections)
                else:
                    needs_type.append(item)

        split(selections)
        leftovers = self._plan_object(pos, here)
        if needs_type:
            leftovers += self._resolve_interface_type(pos, tuple(needs_type))
        return leftovers

    def _resolve_interface_type(self, pos: _Position, selections: tuple[NSelection, ...]) -> list[NSelection]:
        facts = self.model.types[pos.type_name]
        for subgraph, in_graph in sorted(facts.subgraphs.items()):
            if in_graph.is_interface_object or not in_graph.resolvable_keys():
                continue
            try:
                target = self._jump(pos, _Route(subgraph, pos.type_name, pos.type_name))
            except _Infeasible:
                continue
            return self._plan_abstract(target, selections)
        return list(selections)

    # -- fetches and jumps ----------------------------------------------------------------------

    def _new_fetch(self, subgraph: str, entity: bool, merge_path: tuple[str, ...]) -> _Fetch:
        fetch = _Fetch(
            id=len(self.state.fetches),
            subgraph=subgraph,
            operation_kind=self.kind if not entity else "query",
            entity=entity,
            merge_path=merge_path,
            stage=self.state.stage,
        )
        self._extend(self.state.fetches, (fetch,))
        return fetch

    def _root_fetch(self, subgraph: str) -> _Fetch:
        roots = [f for f in self.state.fetches if not f.entity]
        if self.kind == "mutation":
            # consecutive mutation fields of one subgraph share a fetch (the subgraph runs them
            # in order) unless something already depends on the earlier one
            last = self.state.fetches[-1] if self.state.fetches else None
            if last is not None and not last.entity and last.subgraph == subgraph:
                self._set(last, "stage", self.state.stage)
                return last
            fetch = self._new_fetch(subgraph, False, ())
            fetch.depends_on = {f.id for f in self.state.fetches if f is not fetch}
            return fetch
        for fetch in roots:
            if fetch.subgraph == subgraph:
                return fetch
        return self._new_fetch(subgraph, False, ())

    def _ancestors(self, fetch_ids: set[int]) -> set[int]:
        by_id = {f.id: f for f in self.state.fetches}
        seen: set[int] = set()
        stack = list(fetch_ids)
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            stack.extend(by_id[current].depends_on)
        return seen

    def _entity_fetch(self, subgraph: str, merge_path: tuple[str, ...], depends_on: set[int], fits) -> _Fetch:
        ancestors = self._ancestors(depends_on)
        for fetch in self.state.fetches:
            if (
                fetch.entity
                and fetch.subgraph == subgraph
                and fetch.merge_path == merge_path
                and fetch.stage == self.state.stage
                and fetch.id not in ancestors
                and fits(fetch)
            ):
                if not depends_on <= fetch.depends_on:
                    self._set(fetch, "depends_on", fetch.depends_on | depends_on)
                return fetch
        fetch = self._new_fetch(subgraph, True, merge_path)
        fetch.depends_on = set(depends_on)
        return fetch

    def _jump(self, pos: _Position, route: _Route) -> _Position:
        """Establish an entity fetch to `route.subgraph` for the objects at `pos`."""
        assert pos.fetch is not None and pos.selection is not None
        marker = (pos.path, pos.type_name, route.subgraph, route.target_type, route.requires)
        if marker in self.jumps_in_progress:
            raise _Infeasible()
        in_graph = self.model.type_in(route.target_type, route.subgraph)  # type: ignore[arg-type]
        keys = in_graph.resolvable_keys() if in_graph else []
        if not keys:
            raise _Infeasible()
        keys.sort(key=lambda k: not self._locally_available(pos, self._field_set(k.selections)))
        self.jumps_in_progress.add(marker)
        try:
            for key in keys:
                touched: set[int] = set()
                self.touch_log.append(touched)
                try:
                    planned = self._plan_requirements(pos, key, route)
                finally:
                    self.touch_log.pop()
                if planned is None:
                    continue
                self._add_typename(pos.selection)
                depends_on = touched | {pos.fetch.id}
                key_fields, required_fields = planned
                fetch = self._entity_fetch(
                    route.subgraph,
                    pos.path,
                    depends_on,
                    lambda candidate, wanted=key_fields + required_fields: _compatible(
                        candidate.representations.get(pos.type_name), wanted
                    ),
                )
                representation = fetch.representations.get(pos.type_name)
                if representation is None:
                    sent = route.representation_typename or route.target_type
                    self._enter(
                        fetch.representations,
                        pos.type_name,
                        _PendingRepresentation(sent, list(key_fields), list(required_fields)),
                    )
                else:
                    self._extend(representation.key_fields, key_fields)
                    self._extend(representation.required_fields, required_fields)
                return _Position(
                    fetch,
                    self._fragment(fetch.selection, route.target_type),  # type: ignore[arg-type]
                    pos.path,
                    route.target_type,  # type: ignore[arg-type]
                    route.subgraph,
                )
            raise _Infeasible()
        finally:
            self.jumps_in_progress.discard(marker)

    def _plan_requirements(self, pos: _Position, key, route: _Route) -> tuple[tuple, tuple] | None:
        """Plan the key (and @requires) fields of a jump at `pos`; None when one is out of reach."""
        key_fields = self._internal_fields(pos.key_path, self._field_set(key.selections))
        if self._plan_selections(pos, key_fields):
            return None
        required: tuple[NSelection, ...] = ()
        if route.requires:
            required = self._internal_fields(pos.key_path, route.requires)
            if self._plan_selections(pos, required):
                return None
        return key_fields, required

    def _locally_available(self, pos: _Position, selections: tuple[NSelection, ...]) -> bool:
        for selection in selections:
            if isinstance(selection, NFragment):
                if not self._locally_available(pos, selection.selections):
                    return False
                continue
            if self.model.is_abstract(pos.type_name):
                return False
            join = self._local_join(pos, selection.name)
            if join is None:
                return False
            if selection.selections:
                local_type, _ = self._field_type(pos.type_name, selection.name, pos.subgraph)
                child = replace(pos, type_name=named_type(local_type), provided=None)
                if not self._locally_available(child, selection.selections):
                    return False
        return True

    # -- finishing --------------------------------------------------------------------------------

    def _finish(self) -> tuple[FetchNode, ...]:
        fetches = [f for f in self.state.fetches if not f.selection.is_empty()]
        kept = {f.id for f in fetches}
        by_id = {f.id: f for f in self.state.fetches}

        def kept_dependencies(fetch: _Fetch) -> set[int]:
            result: set[int] = set()
            for dep in fetch.depends_on:
                if dep in kept:
                    result.add(dep)
                elif dep in by_id and dep != fetch.id:
                    result |= kept_dependencies(by_id[dep])
            return result

        ordered: list[_Fetch] = []
        placed: set[int] = set()
        pending = list(fetches)
        dependencies = {f.id: kept_dependencies(f) - {f.id} for f in fetches}
        while pending:
            progressed = False
            for fetch in list(pending):
                if dependencies[fetch.id] <= placed:
                    ordered.append(fetch)
                    placed.add(fetch.id)
                    pending.remove(fetch)
                    progressed = True
            if not progressed:
                raise PlanningError("the plan has a dependency cycle")
        renumber = {f.id: index for index, f in enumerate(ordered)}
        return tuple(
            self._fetch_node(f, renumber[f.id], tuple(sorted(renumber[d] for d in dependencies[f.id]))) for f in ordered
        )

    def _types_matching(self, condition: str) -> frozenset[str]:
        """The types a fragment on `condition` applies to: itself and its possible types."""
        gql_type = self.model.schema.type_map.get(condition)
        if gql_type is None or not self.model.is_abstract(condition):
            return frozenset((condition,))
        possible = {t.name for t in self.model.schema.get_possible_types(gql_type)}  # type: ignore[arg-type]
        return frozenset(possible | self.model.api_possible_types(condition) | {condition})

    def _fetch_node(self, fetch: _Fetch, node_id: int, depends_on: tuple[int, ...]) -> FetchNode:
        _alias_conflicts([fetch.selection])
        used = sorted(fetch.selection.variables())
        definitions = [self.variable_definitions[name] for name in used if name in self.variable_definitions]
        name = ""
        if self.operation_name:
            name = f" {self.operation_name}__{fetch.subgraph}__{node_id}"
        if not fetch.entity:
            header = fetch.operation_kind + name
            if definitions:
                header += "(" + ", ".join(definitions) + ")"
            document = header + " " + fetch.selection.print()
            return FetchNode(
                id=node_id,
                subgraph=fetch.subgraph,
                operation_kind=fetch.operation_kind,
                document=document,
                variable_names=tuple(used),
                depends_on=depends_on,
                merge_path=(),
                selection=fetch.selection.asked(self._types_matching),
            )
        variable = "representations" if "representations" not in used else f"{RESERVED_PREFIX}representations"
        definitions.insert(0, f"${variable}: [_Any!]!")
        document = (
            f"query{name}(" + ", ".join(definitions) + ") {\n"
            f"  _entities(representations: ${variable}) " + fetch.selection.print("  ") + "\n}"
        )
        representations = {
            typename: Representation(
                pending.typename,
                _representation_entries(self, pending.key_fields, True)
                + _representation_entries(self, pending.required_fields, False),
            )
            for typename, pending in fetch.representations.items()
        }
        # An object whose concrete type became known later still uses its interface's shape.
        for typename, facts in self.model.types.items():
            if facts.kind != "OBJECT" or typename in representations:
                continue
            for interface in self.model.interfaces_of(typename):
                if interface in representations:
                    representations[typename] = representations[interface]
                    break
        return FetchNode(
            id=node_id,
            subgraph=fetch.subgraph,
            operation_kind="query",
            document=document,
            variable_names=tuple(used),
            depends_on=depends_on,
            merge_path=fetch.merge_path,
            selection=fetch.selection.asked(self._types_matching),
            representations=representations,
            representations_variable=variable,
        )


def _compatible(existing: _PendingRepresentation | None, added: tuple[NSelection, ...]) -> bool:
    """Whether one representation can carry both: a field may appear once, with one alias."""
    if existing is None:
        return True

    def keys_by_name(selections, into: dict[tuple, set[str]], prefix: tuple = ()) -> dict[tuple, set[str]]:
        for selection in selections:
            if isinstance(selection, NField):
                into.setdefault((*prefix, selection.name), set()).add(selection.key)
                if selection.selections:
                    keys_by_name(selection.selections, into, (*prefix, selection.name))
            else:
                keys_by_name(selection.selections, into, prefix)
        return into

    merged = keys_by_name(added, keys_by_name(existing.key_fields + existing.required_fields, {}))
    return all(len(keys) == 1 for keys in merged.values())


def _representation_entries(planner: QueryPlanner, selections, is_key: bool) -> tuple[RepresentationEntry, ...]:
    """Merge the key or @requires selections of a representation into its entries: one per field
    name (the selections below a field selected twice merged), then the fragments."""
    merged: dict[str, tuple[str, list[NSelection], bool]] = {}  # name -> (source key, selections below, composite)
    fragments: list[RepresentationEntry] = []
    for selection in selections:
        if isinstance(selection, NField):
            entry = merged.get(selection.name)
            if entry is None:
                merged[selection.name] = (
                    selection.key,
                    list(selection.selections or ()),
                    selection.selections is not None,
                )
            else:
                entry[1].extend(selection.selections or ())
        else:
            condition = selection.type_condition
            types = frozenset(planner.model.api_possible_types(condition) | {condition}) if condition else frozenset()
            fragments.append(
                RepresentationFragment(types, _representation_entries(planner, selection.selections, is_key))
            )
    fields = tuple(
        RepresentationField(name, key, _representation_entries(planner, below, is_key) if composite else None, is_key)
        for name, (key, below, composite) in merged.items()
    )
    return fields + tuple(fragments)


def _alias_conflicts(selections: list[SSelection]) -> bool:
    """Alias fields that share a response key with different types across fragments.

    A subgraph validates its operation: `... on A { id } ... on B { id }` is rejected when
    `A.id` is `ID!` and `B.id` is `ID`. Such fields get an alias of the gateway's own (reserved
    prefix), undone as the answer merges (AnswerSelection).
    """
    groups: dict[str, list[SField]] = {}
    owners: dict[int, SSelection] = {}

    def gather(selection: SSelection) -> None:
        for sub_field in selection.fields.values():
            groups.setdefault(sub_field.key, []).append(sub_field)
            owners[id(sub_field)] = selection
        for fragment in selection.fragments.values():
            gather(fragment)

    for selection in selections:
        gather(selection)
    aliased = False
    for key, fields in groups.items():
        if key == "__typename":
            continue
        by_type: dict[str, list[SField]] = {}
        for sub_field in fields:
            by_type.setdefault(sub_field.type, []).append(sub_field)
        for index, same_type in enumerate(by_type.values()):
            if index > 0:
                aliased = True
                alias = f"{RESERVED_PREFIX}{key}_{index}"
                for sub_field in same_type:
                    owner = owners[id(sub_field)]
                    owner.fields = {(alias if k == key else k): v for k, v in owner.fields.items()}
                    sub_field.original_key = key
                    sub_field.key = alias
            children = [f.selection for f in same_type if f.selection is not None]
            if children and _alias_conflicts(children):
                aliased = True
    return aliased
