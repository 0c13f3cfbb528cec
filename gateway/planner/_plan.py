"""The query plan: what the executor runs. Plain, immutable once built, printable.

A plan is a set of fetch nodes. A root fetch sends a query (or mutation) to one subgraph and
merges the answer at the root. An entity fetch collects the objects found at its merge path,
turns each into a representation (`__typename`, key and `@requires` fields), sends them to
`_entities`, and merges the answers back into those objects. A node runs once every node it
depends on has finished; nodes without a path between them run in parallel.

Each node carries what its operation asked for (`AnswerSelection`): only those keys of a
subgraph's answer ever reach the response tree. Every name the gateway adds to an operation or
to the data starts with RESERVED_PREFIX, which no client alias and no registered schema may use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from ._operation import NSelection

# The prefix of every name the gateway adds to subgraph operations and to the response tree
# (internal aliases, the privacy stage's subject and contributor keys). Client aliases with it
# are refused (Planner.prepare), and so are schema names with it, in any case (composition).
RESERVED_PREFIX = "_cg_"


@dataclass(frozen=True, slots=True)
class RepresentationField:
    """A key or `@requires` field of a representation: read `source_key` from the merged data and
    write it under `name` (key and @requires fields may carry an internal alias in the data, never
    in the representation). An object whose key field is null or missing gets no representation;
    a null @requires field is sent as null."""

    name: str  # the field's name, the key in the representation
    source_key: str  # the response key the value sits under in the merged data
    entries: tuple[RepresentationEntry, ...] | None  # what is sent of a composite value; None: a leaf
    is_key: bool  # a key field (else a @requires field)


@dataclass(frozen=True, slots=True)
class RepresentationFragment:
    """Fields sent only for an object whose `__typename` is one of `types` (a field set's inline
    fragment on an abstract type)."""

    types: frozenset[str]
    entries: tuple[RepresentationEntry, ...]


RepresentationEntry = RepresentationField | RepresentationFragment


@dataclass(frozen=True, slots=True)
class Representation:
    """How an entity fetch turns an object of the merged data into a representation."""

    typename: str  # the __typename sent to the subgraph (an interface for @interfaceObject)
    entries: tuple[RepresentationEntry, ...]

    @property
    def single_key(self) -> RepresentationField | None:
        """The one key field of a leaf type when the representation is that and nothing else
        (`@key(fields: "id")`, the common case: the executor's fast path), else None."""
        if len(self.entries) == 1:
            entry = self.entries[0]
            if isinstance(entry, RepresentationField) and entry.entries is None and entry.is_key:
                return entry
        return None


@dataclass(slots=True, eq=False)
class SField:
    """A field of a subgraph operation."""

    key: str  # the response key sent to the subgraph
    name: str
    arguments: str
    variables: frozenset[str]
    type: str  # the field's type in that subgraph, e.g. "[Product!]!"
    selection: SSelection | None = None
    original_key: str | None = None  # set when the key is an alias that the result must undo


@dataclass(slots=True, eq=False)
class SSelection:
    """A selection set of a subgraph operation: fields, then fragments by type condition."""

    fields: dict[str, SField] = field(default_factory=dict)
    fragments: dict[str, SSelection] = field(default_factory=dict)

    def add(
        self, key: str, name: str, arguments: str, variables: frozenset[str], type_: str, composite: bool
    ) -> SField:
        existing = self.fields.get(key)
        if existing is not None:
            return existing
        added = SField(key, name, arguments, variables, type_, SSelection() if composite else None)
        self.fields[key] = added
        return added

    def add_typename(self) -> None:
        if "__typename" not in self.fields:
            self.fields["__typename"] = SField("__typename", "__typename", "", frozenset(), "String!")

    def asked(self, types_matching: Callable[[str], frozenset[str]]) -> AnswerSelection:
        """What this selection, as printed, asks of the subgraph: see AnswerSelection. Call it after
        `print`, which completes empty selections with `__typename`."""
        fields = tuple(
            AskedField(
                sub_field.key,
                sub_field.original_key or sub_field.key,
                sub_field.name,
                sub_field.arguments,
                sub_field.selection.asked(types_matching) if sub_field.selection is not None else None,
            )
            for sub_field in self.fields.values()
        )
        fragments = tuple(
            (types_matching(condition), fragment.asked(types_matching))
            for condition, fragment in self.fragments.items()
            if not fragment.is_empty()
        )
        return AnswerSelection(fields, fragments)

    def fragment(self, type_condition: str) -> SSelection:
        selection = self.fragments.get(type_condition)
        if selection is None:
            selection = self.fragments[type_condition] = SSelection()
        return selection

    def is_empty(self) -> bool:
        return not self.fields and all(f.is_empty() for f in self.fragments.values())

    def variables(self) -> set[str]:
        used: set[str] = set()
        for sub_field in self.fields.values():
            used |= sub_field.variables
            if sub_field.selection is not None:
                used |= sub_field.selection.variables()
        for fragment in self.fragments.values():
            used |= fragment.variables()
        return used

    def print(self, indent: str = "") -> str:
        inner = indent + "  "
        lines = []
        for sub_field in self.fields.values():
            head = sub_field.name if sub_field.key == sub_field.name else f"{sub_field.key}: {sub_field.name}"
            head += sub_field.arguments
            if sub_field.selection is not None:
                if sub_field.selection.is_empty():
                    sub_field.selection.add_typename()
                head += " " + sub_field.selection.print(inner)
            lines.append(inner + head)
        for condition, fragment in self.fragments.items():
            if fragment.is_empty():
                continue
            lines.append(f"{inner}... on {condition} " + fragment.print(inner))
        if not lines:
            self.add_typename()  # what is printed is what is asked (see `asked`)
            lines.append(inner + "__typename")
        return "{\n" + "\n".join(lines) + "\n" + indent + "}"


@dataclass(frozen=True, slots=True)
class AskedField:
    """A field a fetch asked for, as the answer carries it and as the response tree keeps it."""

    answer_key: str  # the response key in the subgraph's answer
    tree_key: str  # the key in the response tree: the client's, where the operation used an alias
    name: str
    arguments: str
    selection: AnswerSelection | None  # composite fields


class AnswerView(NamedTuple):
    """An AnswerSelection for one runtime type: its fields and the fragments that apply, flattened."""

    keys: frozenset[str]  # answer keys asked: any other key of the answer is dropped
    nested: tuple[tuple[str, AnswerSelection], ...]  # answer key -> what was asked below it
    renames: tuple[tuple[str, str], ...]  # (answer key, tree key) where an alias is undone
    # tree keys holding one field (same name and arguments) several times: their values must agree
    same_field: tuple[tuple[str, ...], ...]


class AnswerSelection:
    """What one fetch asked for at one position of its answer: the only keys that may merge.

    Built from the fetch's SSelection as printed, so it is exactly the operation that was sent:
    fields by response key, fragments by the types they apply to (matched against the answer's
    `__typename`, or the representation's for an entity). Immutable once built; its flattened view
    per runtime type is computed on first use and kept with the plan.
    """

    __slots__ = ("_views", "fields", "fixed", "fragments", "leaf_keys", "mentions_typename", "named_types")

    def __init__(
        self, fields: tuple[AskedField, ...], fragments: tuple[tuple[frozenset[str], AnswerSelection], ...]
    ) -> None:
        self.fields = fields
        self.fragments = fragments  # ((the types a fragment applies to, its selection), ...)
        # whether `__typename` is asked here or in one of the fragments (it then picks the fragments)
        self.mentions_typename = any(f.name == "__typename" for f in fields) or any(
            s.mentions_typename for _, s in fragments
        )
        # every type a fragment here (or in a fragment of one) applies to: any other name has one view
        self.named_types: frozenset[str] = frozenset().union(
            *(types | selection.named_types for types, selection in fragments)
        )
        self._views: dict[str | None, AnswerView] = {}
        # the common cases, for the executor's walk: no fragments, so one view for every type...
        self.fixed = self._flatten(None) if not fragments else None
        # ...and of those, the ones asking only for leaves under their own names: a key check
        fixed = self.fixed
        self.leaf_keys = (
            fixed.keys if fixed is not None and not (fixed.nested or fixed.renames or fixed.same_field) else None
        )

    def view(self, typename: str | None) -> AnswerView:
        """The fields asked of an object of `typename`. None: the type is not known (an answer that
        leaves out the `__typename` it was asked for): every fragment's fields, since any may
        apply; shaping then knows no concrete type either, and the privacy stage no subject."""
        typename = self.view_key(typename)
        view = self._views.get(typename)
        if view is None:
            view = self._views[typename] = self._flatten(typename)
        return view

    def view_key(self, typename: str | None) -> str | None:
        """`typename`, or "" for every name no fragment applies to (a name the answer chose): the
        views, and what is compiled from them, stay as many as the plan's own type names."""
        return typename if typename is None or typename in self.named_types else ""

    def _collect(self, typename: str | None, into: list[AskedField]) -> None:
        into.extend(self.fields)
        for types, fragment in self.fragments:
            if typename is None or typename in types:
                fragment._collect(typename, into)

    def _flatten(self, typename: str | None) -> AnswerView:
        asked: list[AskedField] = []
        self._collect(typename, asked)
        keys: set[str] = set()
        below: dict[str, list[AnswerSelection]] = {}
        renames: dict[str, str] = {}
        same_field: dict[tuple[str, str], list[str]] = {}
        for asked_field in asked:
            keys.add(asked_field.answer_key)
            if asked_field.selection is not None:
                selections = below.setdefault(asked_field.answer_key, [])
                if all(s is not asked_field.selection for s in selections):
                    selections.append(asked_field.selection)
            if asked_field.tree_key != asked_field.answer_key:
                renames[asked_field.answer_key] = asked_field.tree_key
            if asked_field.name != "__typename":
                tree_keys = same_field.setdefault((asked_field.name, asked_field.arguments), [])
                if asked_field.tree_key not in tree_keys:
                    tree_keys.append(asked_field.tree_key)
        nested = tuple(
            # one key asked in several fragments: what is asked below it is the union of them
            (
                key,
                selections[0]
                if len(selections) == 1
                else AnswerSelection(
                    tuple(f for s in selections for f in s.fields), tuple(f for s in selections for f in s.fragments)
                ),
            )
            for key, selections in below.items()
        )
        return AnswerView(
            frozenset(keys), nested, tuple(renames.items()), tuple(tuple(k) for k in same_field.values() if len(k) > 1)
        )


@dataclass(frozen=True, slots=True)
class FetchNode:
    id: int
    subgraph: str
    operation_kind: str  # "query" or "mutation"
    document: str  # the operation sent to the subgraph
    variable_names: tuple[str, ...]  # client variables forwarded
    depends_on: tuple[int, ...]
    merge_path: tuple[str, ...]  # response keys from the root, "@" where a list is flattened
    # What the operation asks for: for an entity fetch, inside `_entities`. Only these keys of the
    # answer merge into the response tree (aliases the planner added to avoid a conflict the
    # subgraph would reject are undone on the way).
    selection: AnswerSelection = field(default_factory=lambda: AnswerSelection((), ()))
    # Entity fetches only: representation shape by the __typename found in the data.
    representations: dict[str, Representation] | None = None
    representations_variable: str = "representations"
    # the shapes that are one plain key field: __typename found in the data -> that field
    single_keys: dict[str, RepresentationField] = field(init=False, default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for typename, shape in (self.representations or {}).items():
            single = shape.single_key
            if single is not None:
                self.single_keys[typename] = single

    @property
    def is_entity_fetch(self) -> bool:
        return self.representations is not None


@dataclass(frozen=True, slots=True)
class QueryPlan:
    operation_kind: str
    root_type: str
    nodes: tuple[FetchNode, ...]  # in an order where every node follows its dependencies
    selections: tuple[NSelection, ...]  # the client's normalized selection, for shaping
    has_introspection: bool = False
    # filled by the executor: its compiled view of `selections` (shapes per runtime type)
    compiled: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def waves(self) -> int:
        """The longest chain of fetches that wait for one another: 1 when all run at once."""
        depth: dict[int, int] = {}
        for node in self.nodes:  # every node follows its dependencies
            depth[node.id] = 1 + max((depth[d] for d in node.depends_on), default=0)
        return max(depth.values(), default=0)

    def describe(self) -> dict:
        """A JSON-able view of the plan, for `citygate plan` and `extensions.queryPlan`: its cost
        (fetches, waves of dependent fetches: what the planner minimises, in that order) and its
        fetch nodes."""
        return {
            "kind": self.operation_kind,
            "cost": {"fetches": len(self.nodes), "waves": self.waves},
            "nodes": [
                {
                    "id": node.id,
                    "subgraph": node.subgraph,
                    "dependsOn": list(node.depends_on),
                    "mergePath": list(node.merge_path),
                    "entity": node.is_entity_fetch,
                    "operation": node.document,
                }
                for node in self.nodes
            ],
        }
