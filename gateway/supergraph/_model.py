"""The supergraph as the planner sees it: which subgraph holds which type and field.

This module only reads: it turns the `@join__*` directives of a composed supergraph into plain
data (subgraphs, entity keys, per-subgraph field facts). It never performs I/O and never
decides how to plan; the planner asks it questions such as "which subgraphs resolve T.f".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graphql import (
    FieldNode,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionNode,
    parse,
)


class SupergraphError(Exception):
    """The supergraph document cannot be served (bad syntax, unsupported feature, ...)."""


@dataclass(frozen=True, slots=True)
class Subgraph:
    name: str
    enum_value: str
    url: str


@dataclass(frozen=True, slots=True)
class EntityKey:
    """One `@key` of a type in one subgraph."""

    fields: str
    selections: tuple[SelectionNode, ...]
    resolvable: bool


@dataclass(slots=True)
class TypeInSubgraph:
    keys: list[EntityKey] = field(default_factory=list)
    extension: bool = False
    is_interface_object: bool = False

    def resolvable_keys(self) -> list[EntityKey]:
        return [key for key in self.keys if key.resolvable]


@dataclass(frozen=True, slots=True)
class FieldInSubgraph:
    """What one `@join__field` says about a field in one subgraph."""

    subgraph: str | None
    requires: tuple[SelectionNode, ...] | None = None
    provides: tuple[SelectionNode, ...] | None = None
    type: str | None = None
    external: bool = False
    override: str | None = None
    used_overridden: bool = False
    override_label: str | None = None


@dataclass(slots=True)
class FieldFacts:
    name: str
    api_type: str
    joins: list[FieldInSubgraph] = field(default_factory=list)


@dataclass(slots=True)
class TypeFacts:
    name: str
    kind: str  # OBJECT, INTERFACE, UNION, ENUM, INPUT_OBJECT, SCALAR
    subgraphs: dict[str, TypeInSubgraph] = field(default_factory=dict)
    fields: dict[str, FieldFacts] = field(default_factory=dict)
    # subgraph -> interfaces this type implements there (join__implements)
    implements: dict[str, set[str]] = field(default_factory=dict)
    # subgraph -> union members there (join__unionMember)
    members: dict[str, set[str]] = field(default_factory=dict)
    # subgraph -> enum values there (join__enumValue); empty means "all values everywhere"
    enum_values: dict[str, set[str]] = field(default_factory=dict)
    owner: str | None = None  # join v0.1 @join__owner


def parse_field_set(text: str) -> tuple[SelectionNode, ...]:
    """Parse a `FieldSet` string such as `id organization { id }` into selections."""
    try:
        document = parse("{" + text + "}", no_location=True)
    except Exception as exc:  # graphql-core raises GraphQLSyntaxError
        raise SupergraphError(f"invalid field set {text!r}: {exc}") from exc
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    return tuple(operation.selection_set.selections)


def field_set_names(selections: tuple[SelectionNode, ...]) -> set[str]:
    """Top-level field names of a field set (fragments flattened)."""
    names: set[str] = set()
    for selection in selections:
        if isinstance(selection, FieldNode):
            names.add(selection.name.value)
        elif isinstance(selection, InlineFragmentNode):
            names |= field_set_names(tuple(selection.selection_set.selections))
    return names


@dataclass(frozen=True, slots=True)
class PersonalField:
    category: str
    strategy: str | None = None


@dataclass(frozen=True, slots=True)
class AggregateField:
    contributors: str
    min_contributors: int | None = None


@dataclass(slots=True)
class PrivacyAnnotations:
    """What the privacy directives (and the policy's overrides) say, by schema coordinate."""

    personal: dict[tuple[str, str], PersonalField] = field(default_factory=dict)
    subjects: dict[str, str] = field(default_factory=dict)  # type -> field naming the subject
    aggregates: dict[tuple[str, str], AggregateField] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.personal or self.aggregates)

    def update(self, overrides: PrivacyAnnotations) -> None:
        """Add `overrides`' annotations, replacing any at the same coordinate (the policy's say wins)."""
        self.personal.update(overrides.personal)
        self.subjects.update(overrides.subjects)
        self.aggregates.update(overrides.aggregates)


@dataclass(slots=True)
class SupergraphModel:
    """Everything the planner needs to know about a supergraph."""

    sdl: str
    schema: GraphQLSchema  # the full supergraph schema, inaccessible elements included
    api_schema: GraphQLSchema  # what clients see
    subgraphs: dict[str, Subgraph]
    types: dict[str, TypeFacts]
    root_types: dict[str, str]  # operation kind ("query", ...) -> type name
    privacy: PrivacyAnnotations = field(default_factory=PrivacyAnnotations)
    # subgraph -> the party that owns it (a connector's `owner`: a partner, or the city); a
    # subgraph not listed is its own owner. Privacy decisions name owners as recipients and scope
    # legal bases by them; the planner never asks.
    owners: dict[str, str] = field(default_factory=dict)

    def owner_of(self, subgraph: str) -> str:
        return self.owners.get(subgraph, subgraph)

    # -- questions the planner asks ---------------------------------------------------------

    def type_in(self, type_name: str, subgraph: str) -> TypeInSubgraph | None:
        facts = self.types.get(type_name)
        return facts.subgraphs.get(subgraph) if facts else None

    def field_join(self, type_name: str, field_name: str, subgraph: str) -> FieldInSubgraph | None:
        """The facts of `type.field` in `subgraph`, or None when the subgraph lacks it.

        A field without any `@join__field` lives in every subgraph that defines its type. A
        `@join__field` without a graph marks a field that only an `@interfaceObject` provides.
        """
        facts = self.types.get(type_name)
        if facts is None or subgraph not in facts.subgraphs:
            return None
        field_facts = facts.fields.get(field_name)
        if field_facts is None:
            return None
        if not field_facts.joins:
            if facts.owner is not None and facts.owner != subgraph:
                return None
            return _PLAIN_FIELD
        for join in field_facts.joins:
            if join.subgraph == subgraph:
                return join
        return None

    def resolves(self, type_name: str, field_name: str, subgraph: str) -> FieldInSubgraph | None:
        """`field_join` restricted to a subgraph that can resolve the field itself."""
        join = self.field_join(type_name, field_name, subgraph)
        if join is None or join.external or join.used_overridden:
            return None
        return join

    def subgraphs_resolving(self, type_name: str, field_name: str) -> list[str]:
        facts = self.types.get(type_name)
        if facts is None:
            return []
        return [name for name in facts.subgraphs if self.resolves(type_name, field_name, name)]

    def is_abstract(self, type_name: str) -> bool:
        facts = self.types.get(type_name)
        return facts is not None and facts.kind in ("INTERFACE", "UNION")

    def is_interface_object(self, type_name: str, subgraph: str) -> bool:
        in_graph = self.type_in(type_name, subgraph)
        return in_graph is not None and in_graph.is_interface_object

    def possible_types_in(self, type_name: str, subgraph: str) -> list[str]:
        """Object types a subgraph may return where it declares `type_name`."""
        facts = self.types[type_name]
        if facts.kind == "OBJECT":
            return [type_name]
        if facts.kind == "UNION":
            if facts.members:
                return sorted(facts.members.get(subgraph, ()))
            return [t.name for t in self.schema.get_possible_types(self.schema.type_map[type_name])]
        if facts.kind == "INTERFACE":
            if self.is_interface_object(type_name, subgraph):
                return []
            result = []
            for candidate in self.types.values():
                if candidate.kind == "OBJECT" and type_name in candidate.implements.get(subgraph, ()):
                    result.append(candidate.name)
            return sorted(result)
        return []

    def api_possible_types(self, type_name: str) -> frozenset[str]:
        gql_type = self.api_schema.type_map.get(type_name)
        if gql_type is None:
            return frozenset()
        if getattr(gql_type, "fields", None) is not None and not self.is_abstract(type_name):
            return frozenset((type_name,))
        try:
            return frozenset(t.name for t in self.api_schema.get_possible_types(gql_type))  # type: ignore[arg-type]
        except Exception:
            return frozenset()

    def interfaces_of(self, type_name: str) -> list[str]:
        gql_type = self.schema.type_map.get(type_name)
        return [i.name for i in getattr(gql_type, "interfaces", ())]

    def entity_interfaces_with_object(self, interface_name: str) -> list[str]:
        """Subgraphs holding `interface_name` as an `@interfaceObject`."""
        facts = self.types.get(interface_name)
        if facts is None:
            return []
        return [name for name, t in facts.subgraphs.items() if t.is_interface_object]


_PLAIN_FIELD = FieldInSubgraph(subgraph=None)
