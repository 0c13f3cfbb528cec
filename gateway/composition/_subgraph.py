"""Reading one subgraph's SDL into plain data composition can merge.

Resolves the federation `@link` (version, imports, renames, namespace), upgrades Federation 1
subgraphs (`extend type`, `@extends`, every field shareable, key fields of extensions not truly
external), drops the federation machinery (`_service`, `_entities`, `_Any`, ...), and records
every type, field, argument and enum value with the federation directives applied to it.
Names with the gateway's reserved prefix (`_cg_`, any case) are refused: the gateway adds such
names to operations and data, and no subgraph may answer under them. Errors are collected, never
raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from graphql import (
    DirectiveDefinitionNode,
    DirectiveNode,
    EnumTypeDefinitionNode,
    EnumTypeExtensionNode,
    FieldDefinitionNode,
    GraphQLError,
    InputObjectTypeDefinitionNode,
    InputObjectTypeExtensionNode,
    InputValueDefinitionNode,
    InterfaceTypeDefinitionNode,
    InterfaceTypeExtensionNode,
    ListTypeNode,
    NamedTypeNode,
    NonNullTypeNode,
    ObjectTypeDefinitionNode,
    ObjectTypeExtensionNode,
    ScalarTypeDefinitionNode,
    ScalarTypeExtensionNode,
    SchemaDefinitionNode,
    SchemaExtensionNode,
    UnionTypeDefinitionNode,
    UnionTypeExtensionNode,
    parse,
    print_ast,
)

from ..planner import RESERVED_PREFIX
from ..supergraph import PRIVACY_SPEC, PRIVACY_SPEC_URL, SupergraphError, field_set_names, named_type, parse_field_set
from ._errors import CompositionError, location_of

FEDERATION_DIRECTIVES = frozenset(
    {
        "key",
        "external",
        "requires",
        "provides",
        "shareable",
        "override",
        "inaccessible",
        "tag",
        "extends",
        "interfaceObject",
        "composeDirective",
        "authenticated",
        "requiresScopes",
        "policy",
        "context",
        "fromContext",
        "cost",
        "listSize",
    }
)
LATEST_FEDERATION_MINOR = 11
PRIVACY_DIRECTIVES = frozenset({"personal", "subject", "aggregate", "nonPersonal"})  # Citygate's privacy spec
BUILT_IN_SCALARS = frozenset({"String", "Int", "Float", "Boolean", "ID"})
BUILT_IN_DIRECTIVES = frozenset({"deprecated", "specifiedBy", "oneOf", "skip", "include"})
_MACHINERY_TYPES = frozenset({"_Any", "_Entity", "_Service", "_FieldSet", "FieldSet", "_Empty"})
_FEDERATION_URL = re.compile(r"^https?://specs\.apollo\.dev/federation/v(\d+)\.(\d+)$")
_LINK_URL = re.compile(r"^https?://specs\.apollo\.dev/link/v\d+\.\d+$")
_KINDS = {
    ObjectTypeDefinitionNode: "OBJECT",
    ObjectTypeExtensionNode: "OBJECT",
    InterfaceTypeDefinitionNode: "INTERFACE",
    InterfaceTypeExtensionNode: "INTERFACE",
    UnionTypeDefinitionNode: "UNION",
    UnionTypeExtensionNode: "UNION",
    EnumTypeDefinitionNode: "ENUM",
    EnumTypeExtensionNode: "ENUM",
    InputObjectTypeDefinitionNode: "INPUT_OBJECT",
    InputObjectTypeExtensionNode: "INPUT_OBJECT",
    ScalarTypeDefinitionNode: "SCALAR",
    ScalarTypeExtensionNode: "SCALAR",
}
_EXTENSIONS = (
    ObjectTypeExtensionNode,
    InterfaceTypeExtensionNode,
    UnionTypeExtensionNode,
    EnumTypeExtensionNode,
    InputObjectTypeExtensionNode,
    ScalarTypeExtensionNode,
)


@dataclass(slots=True)
class AppliedDirective:
    """A non-federation directive applied to an element (kept when composed). `privacy` names a
    directive of Citygate's privacy spec by its name there ("personal", "subject", "aggregate",
    "nonPersonal"), whatever the subgraph imported it as; `subgraph` is who declared it: where
    several subgraphs annotate one coordinate, composition merges them (the stricter wins) and the
    registry asks whether the subgraph's owner owns that coordinate."""

    name: str
    node: DirectiveNode
    subgraph: str = ""
    privacy: str | None = None


@dataclass(slots=True)
class Argument:
    name: str
    type: str
    default: str | None
    description: str | None
    inaccessible: bool = False
    tags: list[str] = field(default_factory=list)
    deprecated: str | None = None
    node: InputValueDefinitionNode | None = None


@dataclass(slots=True)
class Field:
    name: str
    type: str
    description: str | None
    arguments: dict[str, Argument] = field(default_factory=dict)
    default: str | None = None  # input fields
    external: bool = False
    shareable: bool = False
    inaccessible: bool = False
    requires: str | None = None
    provides: str | None = None
    override: str | None = None
    override_label: str | None = None
    deprecated: str | None = None
    tags: list[str] = field(default_factory=list)
    applied: list[AppliedDirective] = field(default_factory=list)
    node: FieldDefinitionNode | InputValueDefinitionNode | None = None


@dataclass(slots=True)
class EnumValue:
    name: str
    description: str | None
    inaccessible: bool = False
    deprecated: str | None = None
    tags: list[str] = field(default_factory=list)
    applied: list[AppliedDirective] = field(default_factory=list)


@dataclass(slots=True)
class Key:
    fields: str
    resolvable: bool
    node: DirectiveNode | None = None


@dataclass(slots=True)
class TypeDef:
    name: str
    kind: str
    description: str | None = None
    fields: dict[str, Field] = field(default_factory=dict)
    interfaces: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    values: dict[str, EnumValue] = field(default_factory=dict)
    keys: list[Key] = field(default_factory=list)
    extension: bool = True  # until a plain definition is seen
    extends: bool = False
    interface_object: bool = False
    inaccessible: bool = False
    tags: list[str] = field(default_factory=list)
    applied: list[AppliedDirective] = field(default_factory=list)
    nodes: list = field(default_factory=list)

    @property
    def is_extension(self) -> bool:
        return self.extension or self.extends

    def key_field_names(self) -> set[str]:
        names: set[str] = set()
        for key in self.keys:
            names |= _top_level_names(key.fields)
        return names


@dataclass(slots=True)
class LinkedSpec:
    """A non-federation spec linked by the subgraph (kept for @composeDirective)."""

    url: str
    imports: dict[str, str]  # name in the schema ("@personal") -> name in the spec
    namespace: str


@dataclass(slots=True)
class Subgraph:
    name: str
    url: str
    federation: tuple[int, int] | None  # None for Federation 1
    types: dict[str, TypeDef] = field(default_factory=dict)
    directive_definitions: dict[str, DirectiveDefinitionNode] = field(default_factory=dict)
    composed_directives: list[str] = field(default_factory=list)  # names, without "@"
    linked_specs: list[LinkedSpec] = field(default_factory=list)

    @property
    def is_fed1(self) -> bool:
        return self.federation is None


def _top_level_names(field_set: str) -> set[str]:
    try:
        return field_set_names(parse_field_set(field_set))
    except SupergraphError:
        return set()


def _description(node) -> str | None:
    description = getattr(node, "description", None)
    return description.value if description is not None else None


def _argument_values(directive: DirectiveNode) -> dict[str, object]:
    return {argument.name.value: _plain(argument.value) for argument in directive.arguments or ()}


def _plain(value) -> object:
    if hasattr(value, "fields"):
        return {f.name.value: _plain(f.value) for f in value.fields}
    if hasattr(value, "values"):
        return [_plain(v) for v in value.values]
    return getattr(value, "value", None)


def _imported(item) -> tuple[object, object]:
    """An `import:` entry of @link, "@name" or {name: "@name", as: "@alias"}, as (name, alias)."""
    if isinstance(item, dict):
        return item.get("name"), item.get("as") or item.get("name")
    return item, item


def _read_common(element, canonical: str, directive: DirectiveNode) -> None:
    """@inaccessible, @tag and @deprecated, read the same way on every kind of element."""
    if canonical == "inaccessible":
        element.inaccessible = True
    elif canonical == "tag":
        element.tags.append(str(_argument_values(directive).get("name")))
    elif canonical == "deprecated" and hasattr(element, "deprecated"):
        element.deprecated = str(_argument_values(directive).get("reason") or "No longer supported")


class _Reader:
    def __init__(self, name: str, sdl: str, url: str) -> None:
        self.name = name
        self.sdl = sdl
        self.url = url
        self.errors: list[CompositionError] = []
        self.renamed_roots: dict[str, str] = {}
        self.canonical: dict[str, str] = {}  # directive name used in the schema -> federation name
        self.custom_directives: set[str] = set()
        self.privacy_names: dict[str, str] = {}  # a privacy directive's name in the schema -> in the spec

    def error(self, code: str, message: str, node=None) -> None:
        self.errors.append(CompositionError(code, message, self.name, location_of(node)))

    # -- reading ------------------------------------------------------------------------------

    def read(self) -> Subgraph | None:
        try:
            document = parse(self.sdl)
        except GraphQLError as error:
            locations = tuple((loc.line, loc.column) for loc in error.locations or ())
            self.errors.append(CompositionError("INVALID_GRAPHQL", error.message, self.name, locations))
            return None
        self._refuse_reserved_names(document)
        subgraph = Subgraph(name=self.name, url=self.url, federation=None)
        schema_nodes = [d for d in document.definitions if isinstance(d, (SchemaDefinitionNode, SchemaExtensionNode))]
        self._read_links(subgraph, schema_nodes)
        for definition in document.definitions:
            if isinstance(definition, DirectiveDefinitionNode):
                name = definition.name.value
                if (
                    self.canonical.get(name) in FEDERATION_DIRECTIVES
                    or name in FEDERATION_DIRECTIVES
                    or name == "link"
                    or name.startswith(("federation__", "link__"))
                ):
                    continue
                subgraph.directive_definitions[name] = definition
                self.custom_directives.add(name)
        for node in schema_nodes:
            for operation in getattr(node, "operation_types", None) or ():
                standard = {"query": "Query", "mutation": "Mutation", "subscription": "Subscription"}[
                    operation.operation.value
                ]
                if operation.type.name.value != standard:
                    self.renamed_roots[operation.type.name.value] = standard
        for definition in document.definitions:
            kind = _KINDS.get(type(definition))
            if kind is None:
                continue
            name = self.renamed_roots.get(definition.name.value, definition.name.value)
            if name in _MACHINERY_TYPES or name.startswith(("link__", "federation__", "join__")):
                continue
            self._read_type(subgraph, definition, kind, name)
        self._finish(subgraph)
        return subgraph

    def _refuse_reserved_names(self, document) -> None:
        """RESERVED_NAME for every type, field, argument, enum value, input field and directive
        definition named with the gateway's prefix, in any case (`_CG_x` too)."""

        def check(name_node, what: str) -> None:
            if name_node.value.lower().startswith(RESERVED_PREFIX):
                self.error(
                    "RESERVED_NAME",
                    f'{what}: names starting with "{RESERVED_PREFIX}" (in any case) are reserved for the gateway',
                    name_node,
                )

        for definition in document.definitions:
            if isinstance(definition, DirectiveDefinitionNode):
                directive = definition.name.value
                check(definition.name, f'directive "@{directive}"')
                for argument in definition.arguments or ():
                    check(argument.name, f'argument "@{directive}({argument.name.value}:)"')
                continue
            kind = _KINDS.get(type(definition))
            if kind is None:
                continue
            type_name = definition.name.value
            check(definition.name, f'type "{type_name}"')
            for field_node in getattr(definition, "fields", None) or ():
                coordinate = f"{type_name}.{field_node.name.value}"
                check(field_node.name, f'{"input field" if kind == "INPUT_OBJECT" else "field"} "{coordinate}"')
                for argument in getattr(field_node, "arguments", None) or ():
                    check(argument.name, f'argument "{coordinate}({argument.name.value}:)"')
            for value in getattr(definition, "values", None) or ():
                check(value.name, f'enum value "{type_name}.{value.name.value}"')

    def _read_links(self, subgraph: Subgraph, schema_nodes) -> None:
        for node in schema_nodes:
            for directive in node.directives or ():
                if directive.name.value != "link":
                    continue
                args = _argument_values(directive)
                url = str(args.get("url") or "")
                imports = args.get("import") or []
                match = _FEDERATION_URL.match(url)
                if match:
                    major, minor = int(match[1]), int(match[2])
                    if major != 2 or minor > LATEST_FEDERATION_MINOR:
                        self.error(
                            "UNKNOWN_FEDERATION_LINK_VERSION", f"unknown federation version v{major}.{minor}", directive
                        )
                        minor = LATEST_FEDERATION_MINOR
                    subgraph.federation = (2, minor)
                    namespace = str(args.get("as") or "federation")
                    for directive_name in FEDERATION_DIRECTIVES:
                        self.canonical[f"{namespace}__{directive_name}"] = directive_name
                    for item in imports:  # type: ignore[union-attr]
                        original, alias = _imported(item)
                        if not isinstance(original, str) or not original.startswith("@"):
                            continue
                        if original[1:] not in FEDERATION_DIRECTIVES:
                            self.error(
                                "INVALID_LINK_DIRECTIVE_USAGE", f"{original} is not a federation directive", directive
                            )
                            continue
                        self.canonical[str(alias)[1:]] = original[1:]
                elif not _LINK_URL.match(url):
                    mapping = {}
                    for item in imports:  # type: ignore[union-attr]
                        original, alias = _imported(item)
                        if isinstance(original, str) and original.startswith("@"):
                            mapping[str(alias)[1:]] = original[1:]
                    segments = url.rstrip("/").split("/")
                    namespace = str(args.get("as") or (segments[-2] if len(segments) >= 2 else url))
                    subgraph.linked_specs.append(LinkedSpec(url=url, imports=mapping, namespace=namespace))
                    if PRIVACY_SPEC.match(url):
                        self.privacy_names.update({f"{namespace}__{name}": name for name in PRIVACY_DIRECTIVES})
                        self.privacy_names.update(
                            {alias: name for alias, name in mapping.items() if name in PRIVACY_DIRECTIVES}
                        )
                        for alias, name in mapping.items():
                            if name in PRIVACY_DIRECTIVES and alias != name:
                                # the supergraph knows the privacy directives by their own names only:
                                # a renamed one would vanish from it (an @aggregate published unguarded)
                                self.error(
                                    "RESERVED_NAME",
                                    f"@{name} of the privacy spec is imported as @{alias}: import it under its own name",
                                    directive,
                                )
        if subgraph.federation is None:
            for directive_name in FEDERATION_DIRECTIVES:
                self.canonical[directive_name] = directive_name
        for node in schema_nodes:
            for directive in node.directives or ():
                if self.canonical.get(directive.name.value) == "composeDirective":
                    name = str(_argument_values(directive).get("name") or "")
                    if not name.startswith("@"):
                        self.error(
                            "DIRECTIVE_COMPOSITION_ERROR",
                            f"@composeDirective needs a directive name starting with '@', got {name!r}",
                            directive,
                        )
                        continue
                    subgraph.composed_directives.append(name[1:])
        for name in subgraph.composed_directives:
            if name in PRIVACY_DIRECTIVES and self.privacy_names.get(name) != name:
                # only the privacy spec's own directives may carry its names into the supergraph,
                # where they decide (a look-alike @nonPersonal would unguard the city's fields)
                self.error(
                    "RESERVED_NAME",
                    f"@{name} is a name of the privacy spec: import it from {PRIVACY_SPEC_URL}, or name your directive otherwise",
                    schema_nodes[0] if schema_nodes else None,
                )

    def _federation_directives(self, node) -> tuple[list[tuple[str, DirectiveNode]], list[AppliedDirective]]:
        federation: list[tuple[str, DirectiveNode]] = []
        applied: list[AppliedDirective] = []
        for directive in node.directives or ():
            name = directive.name.value
            canonical = self.canonical.get(name)
            if canonical is not None:
                federation.append((canonical, directive))
            elif name in BUILT_IN_DIRECTIVES:
                federation.append((name, directive))
            elif name in self.custom_directives:
                applied.append(AppliedDirective(name, directive, self.name, self.privacy_names.get(name)))
            elif name in FEDERATION_DIRECTIVES:
                self.error(
                    "INVALID_GRAPHQL",
                    f'unknown directive "@{name}": import it in the @link to the federation spec or write "@federation__{name}"',
                    directive,
                )
            else:
                self.error("INVALID_GRAPHQL", f'unknown directive "@{name}"', directive)
        return federation, applied

    def _type_string(self, type_node) -> str:
        if isinstance(type_node, NonNullTypeNode):
            return self._type_string(type_node.type) + "!"
        if isinstance(type_node, ListTypeNode):
            return "[" + self._type_string(type_node.type) + "]"
        assert isinstance(type_node, NamedTypeNode)
        name = type_node.name.value
        return self.renamed_roots.get(name, name)

    def _read_type(self, subgraph: Subgraph, definition, kind: str, name: str) -> None:
        type_def = subgraph.types.get(name)
        if type_def is None:
            type_def = subgraph.types[name] = TypeDef(name=name, kind=kind)
        elif type_def.kind != kind:
            self.error("INVALID_GRAPHQL", f"{name} is declared both as {type_def.kind} and {kind}", definition)
            return
        type_def.nodes.append(definition)
        if not isinstance(definition, _EXTENSIONS):
            type_def.extension = False
        type_def.description = type_def.description or _description(definition)
        federation, applied = self._federation_directives(definition)
        type_def.applied += applied
        block_shareable = False
        block_external = False
        for canonical, directive in federation:
            if canonical == "key":
                args = _argument_values(directive)
                fields_arg = args.get("fields")
                if not isinstance(fields_arg, str):
                    self.error("KEY_INVALID_FIELDS", f"@key on {name} needs a 'fields' string", directive)
                    continue
                type_def.keys.append(Key(fields_arg, args.get("resolvable", True) is not False, directive))
            elif canonical == "extends":
                type_def.extends = True
            elif canonical == "shareable":
                block_shareable = True
            elif canonical == "interfaceObject":
                type_def.interface_object = True
            elif canonical == "external":
                block_external = True  # @external on a type: every field of this block is external
            else:
                _read_common(type_def, canonical, directive)
        for interface in getattr(definition, "interfaces", None) or ():
            if interface.name.value not in type_def.interfaces:
                type_def.interfaces.append(interface.name.value)
        for member in getattr(definition, "types", None) or ():
            member_name = self.renamed_roots.get(member.name.value, member.name.value)
            if member_name not in type_def.members:
                type_def.members.append(member_name)
        for value in getattr(definition, "values", None) or ():
            value_federation, value_applied = self._federation_directives(value)
            enum_value = EnumValue(value.name.value, _description(value), applied=value_applied)
            for canonical, directive in value_federation:
                _read_common(enum_value, canonical, directive)
            type_def.values[value.name.value] = enum_value
        for field_node in getattr(definition, "fields", None) or ():
            field_name = field_node.name.value
            if name == "Query" and field_name in ("_service", "_entities"):
                continue
            read = self._read_field(field_node)
            if block_shareable:
                read.shareable = True
            if block_external:
                read.external = True
            if field_name in type_def.fields:
                self.error("INVALID_GRAPHQL", f"{name}.{field_name} is declared twice", field_node)
            type_def.fields[field_name] = read

    def _read_field(self, node) -> Field:
        read = Field(
            name=node.name.value,
            type=self._type_string(node.type),
            description=_description(node),
            node=node,
        )
        if isinstance(node, InputValueDefinitionNode) and node.default_value is not None:
            read.default = print_ast(node.default_value)
        federation, read.applied = self._federation_directives(node)
        for canonical, directive in federation:
            args = _argument_values(directive)
            if canonical == "external":
                read.external = True
            elif canonical == "shareable":
                read.shareable = True
            elif canonical == "requires":
                read.requires = str(args.get("fields") or "")
            elif canonical == "provides":
                read.provides = str(args.get("fields") or "")
            elif canonical == "override":
                read.override = str(args.get("from") or "")
                label = args.get("label")
                read.override_label = str(label) if label is not None else None
            else:
                _read_common(read, canonical, directive)
        for argument_node in getattr(node, "arguments", None) or ():
            argument = Argument(
                name=argument_node.name.value,
                type=self._type_string(argument_node.type),
                default=print_ast(argument_node.default_value) if argument_node.default_value is not None else None,
                description=_description(argument_node),
                node=argument_node,
            )
            argument_federation, _ = self._federation_directives(argument_node)
            for canonical, directive in argument_federation:
                _read_common(argument, canonical, directive)
            read.arguments[argument.name] = argument
        return read

    def _finish(self, subgraph: Subgraph) -> None:
        # Root types that only carried _service/_entities do not exist for composition.
        for root in ("Query", "Mutation", "Subscription"):
            type_def = subgraph.types.get(root)
            if type_def is not None and not type_def.fields:
                del subgraph.types[root]
        for type_def in subgraph.types.values():
            if type_def.kind not in ("OBJECT", "INTERFACE"):
                continue
            key_fields = type_def.key_field_names()
            for field_def in type_def.fields.values():
                if subgraph.is_fed1:
                    field_def.shareable = True
                if field_def.name in key_fields:
                    field_def.shareable = True
                    # a key field marked @external on an extension is provided by this subgraph
                    if field_def.external and type_def.is_extension:
                        field_def.external = False
        self._check_references(subgraph)

    def _check_references(self, subgraph: Subgraph) -> None:
        known = set(subgraph.types) | BUILT_IN_SCALARS
        for type_def in subgraph.types.values():
            for field_def in type_def.fields.values():
                self._known(field_def.type, known, f"{type_def.name}.{field_def.name}", field_def.node)
                for argument in field_def.arguments.values():
                    self._known(
                        argument.type, known, f"{type_def.name}.{field_def.name}({argument.name}:)", argument.node
                    )
            for member in type_def.members:
                if member not in known:
                    self.error(
                        "INVALID_GRAPHQL", f"union {type_def.name} has an unknown member {member}", type_def.nodes[0]
                    )
            for interface in type_def.interfaces:
                if interface not in known:
                    self.error(
                        "INVALID_GRAPHQL",
                        f"{type_def.name} implements an unknown interface {interface}",
                        type_def.nodes[0],
                    )

    def _known(self, type_string: str, known: set[str], where: str, node) -> None:
        named = named_type(type_string)
        if named not in known:
            self.error("INVALID_GRAPHQL", f'unknown type "{named}" used by {where}', node)


def read_subgraph(name: str, sdl: str, url: str = "") -> tuple[Subgraph | None, list[CompositionError]]:
    reader = _Reader(name, sdl, url)
    subgraph = reader.read()
    return subgraph, reader.errors
