"""Read a composed supergraph (Apollo's format: `@link`, `@join__*`) into a SupergraphModel.

Supports join v0.1 to v0.5 (including `@core`-style v0.1 documents), renamed feature prefixes
(`@link(as:)`), and derives the API schema: join and link machinery, `@inaccessible` elements
and feature-namespaced types removed. It never contacts a subgraph.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from graphql import (
    BooleanValueNode,
    DirectiveDefinitionNode,
    DirectiveNode,
    DocumentNode,
    EnumTypeDefinitionNode,
    EnumTypeExtensionNode,
    EnumValueNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InputObjectTypeDefinitionNode,
    InterfaceTypeDefinitionNode,
    ListValueNode,
    NamedTypeNode,
    NonNullTypeNode,
    ObjectTypeDefinitionNode,
    ScalarTypeDefinitionNode,
    SchemaDefinitionNode,
    StringValueNode,
    TypeDefinitionNode,
    UnionTypeDefinitionNode,
    build_ast_schema,
    print_ast,
)
from graphql.language.parser import Parser

from ._model import (
    AggregateField,
    EntityKey,
    FieldFacts,
    FieldInSubgraph,
    PersonalField,
    PrivacyAnnotations,
    PrivacyView,
    Subgraph,
    SupergraphError,
    SupergraphModel,
    TypeFacts,
    TypeInSubgraph,
    field_set_names,
    parse_field_set,
    stricter,
)

# Features the engine understands. A supergraph linking any other feature `for: SECURITY` or
# `for: EXECUTION` is refused: serving it while ignoring the feature would answer wrongly.
_KNOWN_FEATURES = {"link", "core", "join", "inaccessible", "tag"}
# Directives the API schema keeps when applied to elements.
_KEPT_DIRECTIVES = {"deprecated", "specifiedBy", "oneOf"}
_SPEC_URL = re.compile(r"^https?://specs\.apollo\.dev/(?P<name>[A-Za-z0-9_-]+)/v(?P<version>[0-9.]+)")
# Citygate's privacy spec: the version subgraphs link (the SDK's directives, generated connectors),
# and the versions the gateway reads (any 0.x)
PRIVACY_SPEC_URL = "https://citygate.dev/privacy/v0.1"
PRIVACY_SPEC = re.compile("^" + re.escape(PRIVACY_SPEC_URL.rsplit("/v", 1)[0]) + r"/v0\.\d+$")


@dataclass(frozen=True, slots=True)
class _Feature:
    name: str
    version: str
    prefix: str  # "join" -> directives are "@join__type", ...
    purpose: str | None


def load_supergraph(
    sdl: str, privacy_overrides: PrivacyAnnotations | None = None, owners: dict[str, str] | None = None
) -> SupergraphModel:
    """Read a supergraph; `privacy_overrides` (from the policy) add to or replace annotations;
    `owners` names the party owning each subgraph (by default each subgraph is its own owner)."""
    try:
        document = _parse_unlinked(sdl)
    except Exception as exc:
        raise SupergraphError(f"the supergraph is not valid GraphQL SDL: {exc}") from exc
    features = _read_features(document)
    privacy = _read_privacy(document)
    if privacy_overrides is not None:
        privacy.update(privacy_overrides)
    join = features.get("join")
    if join is None:
        raise SupergraphError("the document links no join spec: it is not a composed supergraph")
    inaccessible = features["inaccessible"].prefix if "inaccessible" in features else "inaccessible"

    try:
        schema = build_ast_schema(document, assume_valid_sdl=True)
    except Exception as exc:
        raise SupergraphError(f"the supergraph schema cannot be built: {exc}") from exc

    subgraphs = _read_subgraphs(document, join.prefix)
    by_enum = {sg.enum_value: sg.name for sg in subgraphs.values()}
    types = _read_types(document, join.prefix, by_enum)
    withheld = _personal_in_api(schema, privacy, types)
    if privacy or privacy.subjects:
        withheld |= _reached_by_entity_fetches(
            types, {r.name for r in (schema.query_type, schema.mutation_type, schema.subscription_type) if r}
        )
    api_schema = _build_api_schema(document, features, inaccessible, _nullable_in_api(schema, withheld))
    root_types = {}
    for kind, root in (
        ("query", schema.query_type),
        ("mutation", schema.mutation_type),
        ("subscription", schema.subscription_type),
    ):
        if root is not None:
            root_types[kind] = root.name
    return SupergraphModel(
        sdl=sdl,
        schema=schema,
        api_schema=api_schema,
        subgraphs=subgraphs,
        types=types,
        root_types=root_types,
        privacy=privacy,
        owners=dict(owners or {}),
    )


def _parse_unlinked(sdl: str) -> DocumentNode:
    """The supergraph parsed without locations (nothing reads a supergraph node's location: ~40%
    fewer objects per Engine), its lexer's token chain unlinked after: no node refers to those
    tokens then, but they refer to each other both ways, a cycle only a full collection would free
    (and a frozen one never: gateway/collector.py)."""
    parser = Parser(sdl, no_location=True)
    try:
        return parser.parse_document()
    finally:
        token = parser._lexer.token  # the chain's last token: graphql-core keeps no other handle
        while token is not None:
            previous = token.prev
            token.prev = token.next = None
            token = previous


# -- features ----------------------------------------------------------------------------------


def _schema_directives(document: DocumentNode):
    """The directives applied to the schema definition and its extensions: where features are linked."""
    for definition in document.definitions:
        if isinstance(definition, SchemaDefinitionNode) or type(definition).__name__ == "SchemaExtensionNode":
            yield from definition.directives or ()


def _read_features(document: DocumentNode) -> dict[str, _Feature]:
    features: dict[str, _Feature] = {}
    for directive in _schema_directives(document):
        if directive.name.value not in ("link", "core"):
            continue
        args = _arguments(directive)
        url = args.get("url") or args.get("feature")
        if not isinstance(url, str):
            continue
        match = _SPEC_URL.match(url)
        if not match:
            purpose = args.get("for")
            if purpose in ("SECURITY", "EXECUTION"):
                raise SupergraphError(f"unsupported feature {url} linked for {purpose}")
            continue
        name = match["name"]
        prefix = args.get("as") if isinstance(args.get("as"), str) else name
        purpose = args.get("for") if isinstance(args.get("for"), str) else None
        if name not in _KNOWN_FEATURES and purpose in ("SECURITY", "EXECUTION"):
            raise SupergraphError(
                f"unsupported feature {url} linked for {purpose}: serving it while ignoring it would answer wrongly"
            )
        features[name] = _Feature(name, match["version"], str(prefix), purpose)
    return features


def _value(node) -> object:
    if isinstance(node, (StringValueNode,)):
        return node.value
    if isinstance(node, BooleanValueNode):
        return node.value
    if isinstance(node, EnumValueNode):
        return node.value
    if isinstance(node, ListValueNode):
        return [_value(v) for v in node.values]
    return getattr(node, "value", None)


def _arguments(directive: DirectiveNode) -> dict[str, object]:
    return {arg.name.value: _value(arg.value) for arg in directive.arguments or ()}


def _directives(node, name: str) -> list[dict[str, object]]:
    return [_arguments(d) for d in node.directives or () if d.name.value == name]


# -- privacy annotations --------------------------------------------------------------------------


def _bound(value: object) -> float | None:
    """An @aggregate bound (an Int or Float literal: its text here) as a number; anything else is
    no bound, and no noise can be calibrated without one (privacy/_noise.py withholds the value)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _imports_privacy(document: DocumentNode) -> bool:
    """Whether the supergraph links the privacy spec and imports any of its directives."""
    for directive in _schema_directives(document):
        args = _arguments(directive) if directive.name.value == "link" else {}
        if PRIVACY_SPEC.match(str(args.get("url") or "")) and any(
            isinstance(item, str) and item.startswith("@")
            for item in args.get("import") or []  # type: ignore[union-attr]
        ):
            return True
    return False


def _read_privacy(document: DocumentNode) -> PrivacyAnnotations:
    """The privacy directives, by their names in the spec (imports are not renamed). Our composition
    prints one merged annotation per coordinate; should a document carry several, they meet as
    composition merges them: the stricter wins, and @nonPersonal only where nothing says personal."""
    annotations = PrivacyAnnotations()
    if not _imports_privacy(document):
        return annotations
    for definition in document.definitions:
        if not isinstance(definition, (ObjectTypeDefinitionNode, InterfaceTypeDefinitionNode)):
            continue
        type_name = definition.name.value
        for args in _directives(definition, "subject"):
            subject = str(args.get("field"))
            if annotations.subjects.get(type_name, subject) != subject:
                raise SupergraphError(f"{type_name} names two different subject fields")
            annotations.subjects[type_name] = subject
        for field_node in definition.fields or ():
            coordinate = (type_name, field_node.name.value)
            for args in _directives(field_node, "personal"):
                strategy = args.get("strategy")
                read = PersonalField(str(args.get("category")), str(strategy) if strategy else None)
                known = annotations.personal.get(coordinate)
                annotations.personal[coordinate] = (
                    read if known is None else (stricter(known, read) or PersonalField("user", "null"))
                )
            for args in _directives(field_node, "aggregate"):
                minimum, lower, upper = args.get("minContributors"), args.get("lower"), args.get("upper")
                annotations.aggregates[coordinate] = AggregateField(
                    str(args.get("contributors")),
                    int(minimum) if minimum is not None else None,
                    str(args["statistic"]) if args.get("statistic") is not None else None,
                    _bound(lower),
                    _bound(upper),
                )
            if _directives(field_node, "nonPersonal") and coordinate not in annotations.personal:
                annotations.non_personal.add(coordinate)
        annotations.non_personal.difference_update(annotations.personal)
    return annotations


# -- subgraphs and join facts -------------------------------------------------------------------


def _read_subgraphs(document: DocumentNode, join: str) -> dict[str, Subgraph]:
    subgraphs: dict[str, Subgraph] = {}
    for definition in document.definitions:
        if isinstance(definition, EnumTypeDefinitionNode) and definition.name.value == f"{join}__Graph":
            for value in definition.values or ():
                for args in _directives(value, f"{join}__graph"):
                    name = str(args.get("name") or value.name.value.lower())
                    url = str(args.get("url") or "")
                    subgraphs[name] = Subgraph(name=name, enum_value=value.name.value, url=url)
    if not subgraphs:
        raise SupergraphError(f"the supergraph declares no subgraph (enum {join}__Graph is empty)")
    return subgraphs


def _graph(args: dict[str, object], by_enum: dict[str, str]) -> str | None:
    value = args.get("graph")
    if value is None:
        return None
    if value not in by_enum:
        raise SupergraphError(f"unknown subgraph {value!r} in a join directive")
    return by_enum[str(value)]


_KINDS = {
    ObjectTypeDefinitionNode: "OBJECT",
    InterfaceTypeDefinitionNode: "INTERFACE",
    UnionTypeDefinitionNode: "UNION",
    EnumTypeDefinitionNode: "ENUM",
    InputObjectTypeDefinitionNode: "INPUT_OBJECT",
    ScalarTypeDefinitionNode: "SCALAR",
}


def _read_types(document: DocumentNode, join: str, by_enum: dict[str, str]) -> dict[str, TypeFacts]:
    types: dict[str, TypeFacts] = {}
    for definition in document.definitions:
        kind = _KINDS.get(type(definition))
        if kind is None:
            continue
        assert isinstance(definition, TypeDefinitionNode)
        name = definition.name.value
        facts = types.setdefault(name, TypeFacts(name=name, kind=kind))
        for args in _directives(definition, f"{join}__owner"):
            facts.owner = _graph(args, by_enum)
        for args in _directives(definition, f"{join}__type"):
            graph = _graph(args, by_enum)
            if graph is None:
                continue
            in_graph = facts.subgraphs.setdefault(graph, TypeInSubgraph())
            key = args.get("key")
            if isinstance(key, str):
                in_graph.keys.append(
                    EntityKey(
                        fields=key,
                        selections=parse_field_set(key),
                        resolvable=args.get("resolvable", True) is not False,
                    )
                )
            if args.get("extension") is True:
                in_graph.extension = True
            if args.get("isInterfaceObject") is True:
                in_graph.is_interface_object = True
        for args in _directives(definition, f"{join}__implements"):
            graph = _graph(args, by_enum)
            if graph is not None:
                facts.implements.setdefault(graph, set()).add(str(args["interface"]))
        for args in _directives(definition, f"{join}__unionMember"):
            graph = _graph(args, by_enum)
            if graph is not None:
                facts.members.setdefault(graph, set()).add(str(args["member"]))
        if isinstance(definition, EnumTypeDefinitionNode):
            for value in definition.values or ():
                for args in _directives(value, f"{join}__enumValue"):
                    graph = _graph(args, by_enum)
                    if graph is not None:
                        facts.enum_values.setdefault(graph, set()).add(value.name.value)
        for field_node in getattr(definition, "fields", None) or ():
            field_facts = FieldFacts(name=field_node.name.value, api_type=print_ast(field_node.type))
            for args in _directives(field_node, f"{join}__field"):
                requires = args.get("requires")
                provides = args.get("provides")
                field_facts.joins.append(
                    FieldInSubgraph(
                        subgraph=_graph(args, by_enum),
                        requires=parse_field_set(requires) if isinstance(requires, str) and requires.strip() else None,
                        provides=parse_field_set(provides) if isinstance(provides, str) and provides.strip() else None,
                        type=args.get("type") if isinstance(args.get("type"), str) else None,  # type: ignore[arg-type]
                        external=args.get("external") is True,
                        override=args.get("override") if isinstance(args.get("override"), str) else None,  # type: ignore[arg-type]
                        used_overridden=args.get("usedOverridden") is True,
                        override_label=args.get("overrideLabel")
                        if isinstance(args.get("overrideLabel"), str)
                        else None,  # type: ignore[arg-type]
                    )
                )
            facts.fields[field_facts.name] = field_facts
        # A type with no join__type at all (join v0.1 value types) lives in every subgraph.
        if not facts.subgraphs and facts.owner is None and not _is_machinery(name, join):
            for graph in by_enum.values():
                facts.subgraphs[graph] = TypeInSubgraph()
        if facts.owner is not None and facts.owner not in facts.subgraphs:
            facts.subgraphs[facts.owner] = TypeInSubgraph()
    return types


def _is_machinery(name: str, join: str) -> bool:
    return "__" in name


# -- API schema ---------------------------------------------------------------------------------


def _personal_in_api(
    schema: GraphQLSchema, privacy: PrivacyAnnotations, types: dict[str, TypeFacts]
) -> set[tuple[str, str]]:
    """The fields whose values may be withheld: annotated personal, and personal by default (on a
    type with a subject), except key fields personal by default only: a key keeps its type in the
    API (a withheld key value is still null in the answer, where the shaper keeps its parent)."""
    personal = set(privacy.personal)
    if not privacy.subjects:
        return personal
    view = PrivacyView(schema, privacy)
    for type_name, gql_type in schema.type_map.items():
        if (
            not isinstance(gql_type, GraphQLObjectType | GraphQLInterfaceType)
            or type_name.startswith("__")
            or view.subject_field(type_name) is None
        ):
            continue
        facts = types.get(type_name)
        keys: set[str] = set()
        for in_graph in facts.subgraphs.values() if facts is not None else ():
            for key in in_graph.keys:
                keys |= field_set_names(key.selections)
        for field_name in gql_type.fields:
            if field_name not in keys and view.personal(type_name, field_name) is not None:
                personal.add((type_name, field_name))
    return personal


def _reached_by_entity_fetches(types: dict[str, TypeFacts], root_types: set[str]) -> set[tuple[str, str]]:
    """Fields of an entity that some subgraph holding it cannot resolve: reached from there through
    an entity fetch, whose representation the privacy stage may keep from leaving (a personal key
    or @requires value; see executor/_fetch.py, flows) and whose subgraph may be down. Such a field
    is nullable in the API, so that neither erases the object: only that field is lost."""
    fields: set[tuple[str, str]] = set()
    for facts in types.values():
        if facts.kind not in ("OBJECT", "INTERFACE") or facts.name in root_types or len(facts.subgraphs) < 2:
            continue
        if not any(in_graph.resolvable_keys() for in_graph in facts.subgraphs.values()):
            continue  # a value type: no entity fetch reaches its fields
        holders = set(facts.subgraphs)
        for field_facts in facts.fields.values():
            if not field_facts.joins:
                continue  # in every subgraph of its type
            resolvers = {
                j.subgraph
                for j in field_facts.joins
                if j.subgraph is not None and not j.external and not j.used_overridden
            }
            if not holders <= resolvers:
                fields.add((facts.name, field_facts.name))
    return fields


def _nullable_in_api(schema: GraphQLSchema, personal: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Personal fields, and the same field on the interfaces and implementations they are shared
    with: a withheld value may be null wherever it can appear, and an interface's field type must
    stay a supertype of its implementations'."""
    nullable = set(personal)
    for type_name, field_name in personal:
        named = schema.get_type(type_name)
        if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            continue
        related = list(named.interfaces)
        if isinstance(named, GraphQLInterfaceType):
            implementations = schema.get_implementations(named)
            related += implementations.objects + implementations.interfaces
        nullable.update((other.name, field_name) for other in related if field_name in other.fields)
    return nullable


def _build_api_schema(
    document: DocumentNode, features: dict[str, _Feature], inaccessible: str, personal: set[tuple[str, str]]
) -> GraphQLSchema:
    api = _ApiView(document, features, inaccessible, personal)
    definitions = [kept for definition in document.definitions if (kept := api.definition(definition)) is not None]
    try:
        return build_ast_schema(DocumentNode(definitions=tuple(definitions)), assume_valid_sdl=True)
    except Exception as exc:
        raise SupergraphError(f"the API schema derived from the supergraph is invalid: {exc}") from exc


class _ApiView:
    """What clients see of a supergraph's definitions: feature machinery (link, join, renamed
    prefixes) and @inaccessible elements removed, with whatever refers to them; only the
    directives in _KEPT_DIRECTIVES kept applied; personal fields nullable."""

    def __init__(
        self, document: DocumentNode, features: dict[str, _Feature], inaccessible: str, personal: set[tuple[str, str]]
    ) -> None:
        self.prefixes = {f.prefix for f in features.values()} | {"link", "join", "core"}
        self.inaccessible = inaccessible
        self.personal = personal
        self.hidden_types: set[str] = set()
        for definition in document.definitions:
            name_node = getattr(definition, "name", None)
            if name_node is None or isinstance(definition, DirectiveDefinitionNode):
                continue
            if self.is_feature_element(name_node.value) or self.is_inaccessible(definition):
                self.hidden_types.add(name_node.value)

    def is_feature_element(self, name: str) -> bool:
        return name in self.prefixes or any(name.startswith(p + "__") for p in self.prefixes)

    def is_inaccessible(self, node) -> bool:
        return any(d.name.value == self.inaccessible for d in getattr(node, "directives", None) or ())

    def type_hidden(self, type_node) -> bool:
        while not isinstance(type_node, NamedTypeNode):
            type_node = type_node.type
        return type_node.name.value in self.hidden_types

    def definition(self, definition):
        """The definition as clients see it, or None when they do not see it at all."""
        if isinstance(definition, DirectiveDefinitionNode):
            return None if self.is_feature_element(definition.name.value) else definition
        if isinstance(definition, SchemaDefinitionNode):
            return definition.__class__(
                description=definition.description,
                directives=(),
                operation_types=tuple(
                    op for op in definition.operation_types if op.type.name.value not in self.hidden_types
                ),
            )
        name_node = getattr(definition, "name", None)
        if name_node is None or name_node.value in self.hidden_types:
            return None
        changes: dict[str, object] = {"directives": _kept_directives(definition)}
        if getattr(definition, "fields", None) is not None:
            changes["fields"] = tuple(
                self._field(name_node.value, field_node)
                for field_node in definition.fields
                if not self.is_inaccessible(field_node) and not self.type_hidden(field_node.type)
            )
        if getattr(definition, "interfaces", None) is not None:
            changes["interfaces"] = tuple(i for i in definition.interfaces if i.name.value not in self.hidden_types)
        if isinstance(definition, UnionTypeDefinitionNode):
            changes["types"] = tuple(t for t in definition.types or () if t.name.value not in self.hidden_types)
        if isinstance(definition, (EnumTypeDefinitionNode, EnumTypeExtensionNode)):
            changes["values"] = tuple(
                _copy(v, directives=_kept_directives(v)) for v in definition.values or () if not self.is_inaccessible(v)
            )
        return _copy(definition, **changes)

    def _field(self, type_name: str, field_node):
        """A field (or input field) kept in the API, with its arguments as clients see them."""
        changes: dict[str, object] = {"directives": _kept_directives(field_node)}
        if (type_name, field_node.name.value) in self.personal and isinstance(field_node.type, NonNullTypeNode):
            # withholding a personal value must never erase its parent: nullable in the API
            changes["type"] = field_node.type.type
        if getattr(field_node, "arguments", None) is not None:
            changes["arguments"] = tuple(
                _copy(arg, directives=_kept_directives(arg))
                for arg in field_node.arguments
                if not self.is_inaccessible(arg) and not self.type_hidden(arg.type)
            )
        return _copy(field_node, **changes)


def _kept_directives(node):
    return tuple(d for d in node.directives or () if d.name.value in _KEPT_DIRECTIVES)


def _copy(node, **changes):
    kwargs = {key: getattr(node, key) for key in node.keys if key != "loc"}
    kwargs.update(changes)
    return node.__class__(**kwargs)


__all__ = ["FieldInSubgraph", "load_supergraph"]
