"""The query plan: what the executor runs. Plain, immutable once built, printable.

A plan is a set of fetch nodes. A root fetch sends a query (or mutation) to one subgraph and
merges the answer at the root. An entity fetch collects the objects found at its merge path,
turns each into a representation (`__typename`, key and `@requires` fields), sends them to
`_entities`, and merges the answers back into those objects. A node runs once every node it
depends on has finished; nodes without a path between them run in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._operation import NSelection

# A representation shape: ("field", out_key, source_key, sub_entries | None, is_key) or
# ("fragment", frozenset(type names), sub_entries). An object whose key field is null or
# missing gets no representation. The representation of an object is built by
# reading `source_key` from the merged data and writing it under `out_key` (the field's name):
# key and @requires fields may carry an internal alias in the data, never in the representation.
RepEntry = tuple


@dataclass(frozen=True, slots=True)
class Representation:
    typename: str  # the __typename sent to the subgraph (an interface for @interfaceObject)
    entries: tuple[RepEntry, ...]


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

    def add(self, key: str, name: str, arguments: str, variables: frozenset[str], type_: str, composite: bool) -> SField:
        existing = self.fields.get(key)
        if existing is not None:
            return existing
        added = SField(key, name, arguments, variables, type_, SSelection() if composite else None)
        self.fields[key] = added
        return added

    def add_typename(self) -> None:
        if "__typename" not in self.fields:
            self.fields["__typename"] = SField("__typename", "__typename", "", frozenset(), "String!")

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

    def has_aliases_to_undo(self) -> bool:
        for sub_field in self.fields.values():
            if sub_field.original_key is not None:
                return True
            if sub_field.selection is not None and sub_field.selection.has_aliases_to_undo():
                return True
        return any(f.has_aliases_to_undo() for f in self.fragments.values())

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
            lines.append(inner + "__typename")
        return "{\n" + "\n".join(lines) + "\n" + indent + "}"


@dataclass(frozen=True, slots=True)
class FetchNode:
    id: int
    subgraph: str
    operation_kind: str  # "query" or "mutation"
    document: str  # the operation sent to the subgraph
    variable_names: tuple[str, ...]  # client variables forwarded
    depends_on: tuple[int, ...]
    merge_path: tuple[str, ...]  # response keys from the root, "@" where a list is flattened
    # Entity fetches only: representation shape by the __typename found in the data.
    representations: dict[str, Representation] | None = None
    representations_variable: str = "representations"
    # Set when the operation aliases a field to avoid a conflict the subgraph would reject:
    # the answer is walked with this selection to restore the client's keys.
    selection_to_undo_aliases: SSelection | None = None

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

    def describe(self) -> dict:
        """A JSON-able view of the plan, for `citygate plan` and `extensions.queryPlan`."""
        return {
            "kind": self.operation_kind,
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
