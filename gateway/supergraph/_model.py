"""The supergraph as the planner sees it: which subgraph holds which type and field.

This module only reads: it turns the `@join__*` directives of a composed supergraph into plain
data (subgraphs, entity keys, per-subgraph field facts). It never performs I/O and never
decides how to plan; the planner asks it questions such as "which subgraphs resolve T.f".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionNode,
    get_named_type,
    parse,
)

from ..errors import ConfigurationError
from ..taxonomy import common_category


class SupergraphError(ConfigurationError):
    """The supergraph document cannot be served (bad syntax, unsupported feature, ...)."""

    code = "NOT_SERVABLE"


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


# The masking strategies (docs/policy.md), the strictest first: where two annotations of one value
# meet, the stricter one wins. The one list of them: the policy's and the annotations' checks read it.
STRATEGIES = ("null", "pseudonymise", "coarsen", "partial")


def named_type(type_string: str) -> str:
    """The named type of a printed type: "[User!]!" -> "User"."""
    return type_string.replace("[", "").replace("]", "").replace("!", "").strip()


@dataclass(frozen=True, slots=True)
class PersonalField:
    category: str
    strategy: str | None = None
    # the strategies the field's type can take (None: unknown, as for an annotation alone): a
    # strategy the policy's category rules pick that does not fit masks with null instead
    fits: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class AggregateField:
    contributors: str
    min_contributors: int | None = None
    # what the value is, so that noise can be calibrated to it (docs/privacy.md, "Open data:
    # differential privacy"): "count", "sum" or "mean", and the bounds of one contributor's value
    # (sum and mean); None where the owner did not say (then no noise can be calibrated)
    statistic: str | None = None
    lower: float | None = None
    upper: float | None = None


def stricter(first: PersonalField, second: PersonalField) -> PersonalField | None:
    """Two annotations of one value, met (shared fields, an interface and its implementation): the
    nearest common category (the broader is the stricter) and the strictest strategy declared.
    None when the categories share no ancestor in the taxonomy (a conflict)."""
    category = common_category(first.category, second.category)
    if category is None:
        return None
    declared = [s for s in (first.strategy, second.strategy) if s is not None]
    known = [s for s in declared if s in STRATEGIES]
    strategy = min(known, key=STRATEGIES.index) if known else (declared[0] if declared else None)
    return PersonalField(category, strategy, first.fits)


@dataclass(slots=True)
class PrivacyAnnotations:
    """What the privacy directives (and the policy's overrides) say, by schema coordinate."""

    personal: dict[tuple[str, str], PersonalField] = field(default_factory=dict)
    subjects: dict[str, str] = field(default_factory=dict)  # type -> field naming the subject
    aggregates: dict[tuple[str, str], AggregateField] = field(default_factory=dict)
    # fields their owner (or the policy) declares non-personal: on a type with a subject, every
    # other field without an annotation is personal (default private)
    non_personal: set[tuple[str, str]] = field(default_factory=set)

    def __bool__(self) -> bool:
        # a subject alone makes its type's fields personal by default
        return bool(self.personal or self.aggregates or self.subjects)

    def update(self, overrides: PrivacyAnnotations) -> None:
        """Add `overrides`' annotations, replacing any at the same coordinate (the policy's say wins)."""
        self.personal.update(overrides.personal)
        self.non_personal.difference_update(overrides.personal)
        self.non_personal.update(overrides.non_personal)
        for coordinate in overrides.non_personal:
            self.personal.pop(coordinate, None)
        self.subjects.update(overrides.subjects)
        self.aggregates.update(overrides.aggregates)


_IDENTIFIER_NAME = re.compile(r"(^id$|Id$|_id$|ID$)")
_COORDINATE_PAIRS = (("latitude", "longitude"), ("lat", "lng"), ("lat", "lon"))


def fitting_strategies(field_type) -> frozenset[str]:
    """The masking strategies a value of this GraphQL type can take and still fit the schema:
    pseudonymise a String or ID, partial a String or ID, coarsen a String, Int or Float or an
    object with latitude/longitude floats; null anything. Lists take null only."""
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    if isinstance(field_type, GraphQLList):
        return frozenset({"null"})
    if isinstance(field_type, GraphQLScalarType) and not isinstance(field_type, GraphQLEnumType):
        return {
            "String": frozenset({"null", "partial", "coarsen", "pseudonymise"}),
            "ID": frozenset({"null", "partial", "pseudonymise"}),
            "Int": frozenset({"null", "coarsen"}),
            "Float": frozenset({"null", "coarsen"}),
        }.get(field_type.name, frozenset({"null"}))
    if isinstance(field_type, GraphQLObjectType | GraphQLInterfaceType):
        fields = field_type.fields
        for first, second in _COORDINATE_PAIRS:
            if all(
                name in fields and getattr(get_named_type(fields[name].type), "name", None) == "Float"
                for name in (first, second)
            ):
                return frozenset({"null", "coarsen"})
    return frozenset({"null"})


class PrivacyView:
    """The privacy annotations resolved per type over a schema: inherited from interfaces (the
    stricter wins where they meet the type's own) and default private (a field of a type with a
    subject is personal unless declared non-personal, a link included: that a resident's object
    leads to these others is that resident's data). Read-only; answers are cached."""

    def __init__(self, schema: GraphQLSchema, annotations: PrivacyAnnotations) -> None:
        self.schema = schema
        self.annotations = annotations
        self._personal: dict[tuple[str, str], PersonalField | None] = {}
        self._links: dict[str, bool] = {}
        # (type, field) another aggregate of the type counts its contributors in (see `aggregate`)
        self._counted: set[tuple[str, str]] | None = None

    def lineage(self, type_name: str) -> list[str]:
        """The type and the interfaces it implements."""
        named = self.schema.type_map.get(type_name)
        return [type_name, *(i.name for i in getattr(named, "interfaces", ()))]

    def subject_declarations(self, type_name: str) -> list[tuple[str, str]]:
        """(where declared, subject field): the type's own @subject, then its interfaces'."""
        subjects = self.annotations.subjects
        return [(name, subjects[name]) for name in self.lineage(type_name) if name in subjects]

    def subject_field(self, type_name: str) -> str | None:
        declarations = self.subject_declarations(type_name)
        return declarations[0][1] if declarations else None

    def explicit(self, type_name: str, field_name: str) -> PersonalField | None:
        """The @personal annotations of the field on the type and its interfaces, the stricter winning."""
        found = [
            p
            for name in self.lineage(type_name)
            if (p := self.annotations.personal.get((name, field_name))) is not None
        ]
        if not found:
            return None
        merged = found[0]
        for other in found[1:]:
            merged = stricter(merged, other) or merged  # no common category: check() refuses the supergraph
        return merged

    def aggregate(self, type_name: str, field_name: str) -> AggregateField | None:
        for name in self.lineage(type_name):
            found = self.annotations.aggregates.get((name, field_name))
            if found is not None:
                return found
        # the field another aggregate of the type counts its contributors in is itself an exact
        # count over the same residents: a count aggregate too (k, and noise under open data), or
        # it would hand out the very figure the other's noise is calibrated to hide, and what a
        # differencing attack needs (the count before and after one resident moves in); the
        # policy's k is its minimum (another aggregate's min_contributors is about that one's noise)
        if self._counted is None:
            self._counted = {
                (holder, declared.contributors)
                for (holder, _), declared in self.annotations.aggregates.items()
                if (holder, declared.contributors) not in self.annotations.aggregates
            }
        for name in self.lineage(type_name):
            if (name, field_name) in self._counted:
                return AggregateField(field_name, None, "count")
        return None

    def is_link(self, named_type: str) -> bool:
        """Whether values of this type name their own subject: a field of that type is a link. The
        link is a field of its parent like any other (personal data of the parent's subject, by
        default); the objects it leads to are decided by their own type, each value for its own
        subject. The export shows a link as a reference, not as a value of the parent."""
        known = self._links.get(named_type)
        if known is None:
            self._links[named_type] = False  # a cycle through interfaces decides nothing
            gql_type = self.schema.type_map.get(named_type)
            if isinstance(gql_type, GraphQLObjectType):
                known = self.subject_field(named_type) is not None
            elif isinstance(gql_type, GraphQLInterfaceType):
                possible = self.schema.get_possible_types(gql_type)
                known = self.subject_field(named_type) is not None or (
                    bool(possible) and all(self.is_link(t.name) for t in possible)
                )
            elif isinstance(gql_type, GraphQLUnionType):
                known = bool(gql_type.types) and all(self.is_link(t.name) for t in gql_type.types)
            else:
                known = False
            self._links[named_type] = known
        return known

    def personal(self, type_name: str, field_name: str) -> PersonalField | None:
        key = (type_name, field_name)
        if key not in self._personal:
            self._personal[key] = self._resolve(type_name, field_name)
        return self._personal[key]

    def _resolve(self, type_name: str, field_name: str) -> PersonalField | None:
        if field_name == "__typename":
            return None
        gql_type = self.schema.type_map.get(type_name)
        definition = (
            getattr(gql_type, "fields", {}).get(field_name)
            if isinstance(gql_type, GraphQLObjectType | GraphQLInterfaceType)
            else None
        )
        fits = fitting_strategies(definition.type) if definition is not None else None
        explicit = self.explicit(type_name, field_name)
        if explicit is not None:
            return PersonalField(explicit.category, explicit.strategy, fits)
        if (
            definition is None
            or (type_name, field_name) in self.annotations.non_personal
            or self.aggregate(type_name, field_name) is not None
        ):
            return None
        subject = self.subject_field(type_name)
        if subject is None:
            return None
        named = get_named_type(definition.type)
        # a link (`Resident.issuesReported: [StreetIssue]`) is decided here too, as its parent's
        # subject's data: "this resident reported these" says something of the resident, whatever
        # the linked objects' own fields are (a non-personal kind, status). Its objects are then
        # decided by their own type. Unannotated, it takes the generic `user` (no identifier type)
        if field_name == subject or self._names_the_subject(gql_type, field_name, named.name, subject):
            return PersonalField("user.unique_id", None, fits)
        return PersonalField("user", None, fits)

    @staticmethod
    def _names_the_subject(gql_type, field_name: str, named: str, subject: str) -> bool:
        """A field typed like an identifier of the subject: the subject field's type, and that type
        is ID or the field's name says it is an identifier."""
        subject_definition = gql_type.fields.get(subject)
        if subject_definition is None or getattr(get_named_type(subject_definition.type), "name", None) != named:
            return False
        return named == "ID" or bool(_IDENTIFIER_NAME.search(field_name))


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
