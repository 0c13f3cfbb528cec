"""Reading a REST connector's SDL: its `@source` / `@connect` directives, validated against the
schema, into the model the client runs and the SDL composition reads.

Every problem is collected with its line:column in the SDL (inside a mapping or URL string, the
place of the offending character) and they are raised together (ConnectError). Nothing here
performs I/O; it never runs a partner's code, only reads its text.

Codes (ConnectProblem.code):
- CONNECT_INVALID_SCHEMA     the SDL does not parse or does not build into a schema
- CONNECT_INVALID_LINK       no (or an unknown version of the) connect @link where @connect is used
- CONNECT_INVALID_DIRECTIVE  a @source/@connect argument missing, unknown or of the wrong kind,
                             or a directive where it cannot go (interfaces, subscriptions, ...)
- CONNECT_UNKNOWN_SOURCE     @connect(source:) names no @source
- CONNECT_INVALID_URL        a URL template that does not parse, is not http(s), has an
                             expression in its origin, or is relative with no base to join
- CONNECT_URL_ORIGIN         a URL (@source baseURL or absolute @connect URL) off the origin of
                             the connector's registered `url`
- CONNECT_INVALID_SELECTION  a mapping (selection, body, queryParams) that does not parse, or does
                             not fit the GraphQL type (an object field without { ... }, ...)
- CONNECT_UNKNOWN_FIELD      a mapping names a field the output type does not have, or $this names
                             a field the parent type does not have
- CONNECT_INVALID_VARIABLE   a variable where it cannot be ($this on a root field, $batch off a
                             type's connector, $args of an unknown argument, $config/$context/...)
- CONNECT_HEADER_REFUSED     a header forwarded from the client (`from:`), or a reserved header
- CONNECT_MISSING_RESOLVER   a root field without @connect, or an output field that nothing
                             resolves (no @connect, not a key, not selected where its type is made)
- CONNECT_INVALID_KEY        an entity connector whose $this/$batch fields no @key of its type names
                             (fields a @requires of the type names may be read besides the key:
                             the representation carries them), or that reads no key field

Keys: a type with a type-level @connect (or the type of a Query field with `entity: true`) is an
entity. If it has no @key, `composition_sdl` gives it `@key(fields: ...)` made of the fields its
entity connectors read from `$this` / `$batch` (or the field's arguments), so composition and the
planner know how to reach it; if it has @key, those fields must be part of one of them.
Fields of the type named by a @requires are read from `$this` / `$batch` besides the key (the
planner sends them in the representation); they are not part of the key. An entity connector
need not select the type's @external fields: the planner asks this connector for them only
where a @provides says a selection gives them.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DirectiveDefinitionNode,
    DirectiveNode,
    DocumentNode,
    FieldDefinitionNode,
    GraphQLError,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    InterfaceTypeDefinitionNode,
    InterfaceTypeExtensionNode,
    ObjectTypeDefinitionNode,
    ObjectTypeExtensionNode,
    ObjectValueNode,
    SchemaDefinitionNode,
    SchemaExtensionNode,
    StringValueNode,
    TypeDefinitionNode,
    build_ast_schema,
    is_enum_type,
    is_specified_scalar_type,
    parse,
    print_ast,
    value_from_ast_untyped,
)
from graphql.language import Source

from ._selection import (
    REFUSED_VARIABLES,
    Item,
    Path,
    Selection,
    SelectionError,
    paths_of,
    variable_keys,
)
from ._template import Template, UrlProblem, UrlTemplate, origin_of, parse_template, parse_url

MAX_PROBLEMS = 200  # problems one reading reports (a partner's SDL may hold any number)
_LINE_BREAK = re.compile(r"\r\n|[\n\r]")  # graphql-core's line breaks

CONNECT_SPEC = "https://specs.apollo.dev/connect/"
CONNECT_VERSIONS = ("v0.1", "v0.2", "v0.3")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_FEDERATION_URL = re.compile(r"^https?://specs\.apollo\.dev/federation/v(\d+)\.(\d+)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# headers the gateway sets itself, or that would change how the request is carried
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "expect",
        "accept-encoding",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
    }
)
_MACHINERY = frozenset({"_Any", "_Entity", "_Service", "_FieldSet", "FieldSet", "_Empty"})
_REFUSAL_REASONS = {
    "$config": "the connector's secrets travel in its manifest's headers, not in $config",
    "$context": "a requester's context never reaches a partner",
    "$request": "a requester's request never reaches a partner",
    "$env": "the gateway's environment never reaches a partner",
    "$response": "$response is not supported",
    "$status": "$status is not supported",
}


@dataclass(frozen=True)
class ConnectProblem:
    """One validation problem: a stable code, a message naming the coordinate, where in the SDL."""

    code: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        at = f" (at {self.line}:{self.column})" if self.line is not None else ""
        return f"{self.code}: {self.message}{at}"


class ConnectError(Exception):
    """The SDL cannot serve as a REST connector; `problems` lists every problem found."""

    def __init__(self, problems: list[ConnectProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Connector:
    """One @connect: where it sits, the request it makes and how its answer maps."""

    coordinate: str  # "Query.spots", "District.bikeStations", or "Station" for a type's connector
    kind: str  # "root", "field" or "entity" (on a type)
    type_name: str  # the parent type (the entity type for a type's connector)
    field_name: str | None
    method: str
    base: str  # origin and base path, no trailing slash
    url: UrlTemplate
    headers: tuple[tuple[str, Template], ...]
    body: Selection | None
    query_params: Selection | None
    selection: Selection
    batch: bool = False  # reads $batch: one call for many entities
    max_batch: int | None = None
    key_paths: tuple[tuple[str, ...], ...] = ()  # $this/$batch key fields (or `entity: true` arguments)
    read_paths: tuple[tuple[str, ...], ...] = ()  # every $this/$batch field: the key and @requires'd ones
    entity_arguments: tuple[str, ...] | None = None  # a Query field with `entity: true`


@dataclass(frozen=True)
class ConnectModel:
    """What the client runs: the executable SDL and the connectors by place."""

    executable_sdl: str
    query_type: str
    mutation_type: str | None
    field_connectors: dict[tuple[str, str], Connector]
    entity_resolvers: dict[str, tuple[Connector, ...]]
    entity_types: frozenset[str]


@dataclass(frozen=True)
class ConnectSchema:
    """A validated REST connector SDL (immutable; built once per registration)."""

    sdl: str
    composition_sdl: str
    origins: frozenset[str]
    model: ConnectModel = field(repr=False, compare=False)


def read_connect_sdl(sdl: str, *, base_url: str | None = None) -> ConnectSchema:
    """The connector SDL validated, or ConnectError listing every problem found with locations.

    `base_url` is the connector's registered URL (the partner API's base): a @source without
    baseURL uses it, and every URL the SDL declares must be on its origin (where the connector's
    secrets may go). Without it, the @source baseURLs and absolute @connect URLs are the origins.
    """
    return _Reader(sdl, base_url).read()


# ---------------------------------------------------------------------------------------------


@dataclass
class _Source:
    name: str
    base: str
    headers: tuple[tuple[str, Template], ...]


@dataclass
class _Production:
    """A selection that makes objects of a type: which fields it gives them."""

    coordinate: str
    fields: set[str]
    entity: bool  # an entity connector's own selection


def _unwrap(gtype: Any) -> Any:
    while isinstance(gtype, (GraphQLNonNull, GraphQLList)):
        gtype = gtype.of_type
    return gtype


def _is_list(gtype: Any) -> bool:
    if isinstance(gtype, GraphQLNonNull):
        gtype = gtype.of_type
    return isinstance(gtype, GraphQLList)


def _string_offsets(node: StringValueNode, sdl: str) -> list[int] | None:
    """For each character of the string's value (and one past its end), its offset in the SDL;
    None when the string's text cannot be followed (then problems point at the string)."""
    if node.loc is None:
        return None
    raw_start, raw_end = node.loc.start, node.loc.end
    raw = sdl[raw_start:raw_end]
    offsets: list[int] = []
    chars: list[str] = []
    if node.block:
        content_start = raw_start + 3
        content = raw[3:-3]
        lines: list[tuple[int, str]] = []
        position = 0
        for line in re.split(r"(\r\n|\n|\r)", content)[::2]:
            lines.append((content_start + position, line))
            position += len(line)
            rest = content[position:]
            position += 2 if rest.startswith("\r\n") else (1 if rest[:1] in ("\n", "\r") else 0)
        indents = [len(line) - len(line.lstrip(" \t")) for _, line in lines[1:] if line.strip(" \t")]
        common = min(indents) if indents else 0
        kept = [
            (start, line) if index == 0 else (start + min(common, len(line)), line[common:])
            for index, (start, line) in enumerate(lines)
        ]
        while kept and not kept[0][1].strip(" \t"):
            kept.pop(0)
        while kept and not kept[-1][1].strip(" \t"):
            kept.pop()
        for index, (start, line) in enumerate(kept):
            if index:
                chars.append("\n")
                offsets.append(start - 1)
            for column, char in enumerate(line):
                chars.append(char)
                offsets.append(start + column)
        offsets.append(kept[-1][0] + len(kept[-1][1]) if kept else content_start)
    else:
        position = raw_start + 1
        end = raw_end - 1
        while position < end:
            char = sdl[position]
            if char == "\\":
                escaped = sdl[position + 1 : position + 2]
                if escaped == "u":
                    chars.append(chr(int(sdl[position + 2 : position + 6], 16)))
                    offsets.append(position)
                    position += 6
                    continue
                chars.append({"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(escaped, escaped))
                offsets.append(position)
                position += 2
                continue
            chars.append(char)
            offsets.append(position)
            position += 1
        offsets.append(end)
    if "".join(chars) != node.value:
        return None
    return offsets


def _line_column(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1


def _object_field(node: Any, key: str) -> Any:
    if isinstance(node, ObjectValueNode):
        for item in node.fields:
            if item.name.value == key:
                return item.value
    return None


class _Reader:
    def __init__(self, sdl: str, base_url: str | None) -> None:
        self.sdl = sdl
        self.base_url = base_url
        self.problems: list[ConnectProblem] = []
        self.source = Source(sdl)
        self._line_starts: list[int] | None = None  # offsets where each line begins (problem())
        self.base: str | None = None
        self.base_origin: str | None = None
        self.origins: set[str] = set()
        self.sources: dict[str, _Source] = {}
        self.broken_sources: set[str] = set()
        self.source_names: set[str] = set()
        self.connect_names: set[str] = set()
        self.key_name = "key"
        self.requires_names = {"requires", "federation__requires"}
        self.external_names = {"external", "federation__external"}
        self.required: dict[str, set[tuple[str, ...]]] = {}  # per type: fields its @requires name
        self.external: dict[str, set[str]] = {}  # per type: its @external fields
        self.blanks: list[tuple[int, int]] = []  # SDL ranges composition does not see
        self.productions: dict[str, list[_Production]] = {}
        self.connectors: list[Connector] = []
        self.connected_fields: set[tuple[str, str]] = set()
        self.field_nodes: dict[tuple[str, str], FieldDefinitionNode] = {}
        self.incomplete = False  # a @connect that could not be read: coverage is not judged

    # -- problems

    def problem(self, code: str, message: str, node: Any = None, offset: int | None = None) -> None:
        if offset is None and node is not None and getattr(node, "loc", None) is not None:
            offset = node.loc.start
        if len(self.problems) >= MAX_PROBLEMS:
            return  # the report stays bounded; the SDL is refused all the same
        if offset is None:
            self.problems.append(ConnectProblem(code, message))
            return
        # lines found once per SDL and offsets placed by bisection: graphql-core's get_location
        # scans from the start at each call, minutes for a partner's SDL with thousands of problems
        if self._line_starts is None:
            self._line_starts = [0] + [match.end() for match in _LINE_BREAK.finditer(self.source.body)]
        line = bisect_right(self._line_starts, offset)
        self.problems.append(ConnectProblem(code, message, line, offset - self._line_starts[line - 1] + 1))

    def string_problem(
        self, code: str, coordinate: str, what: str, message: str, node: Any, value: str, offset: int
    ) -> None:
        """A problem at `offset` inside the string `value` of `node` (a mapping, a URL, ...)."""
        line, column = _line_column(value, min(offset, len(value)))
        where: int | None = None
        if isinstance(node, StringValueNode):
            offsets = _string_offsets(node, self.sdl)
            if offsets is not None:
                where = offsets[min(offset, len(offsets) - 1)]
        self.problem(code, f"{coordinate}: {what}: {message} at {line}:{column}", node, where)

    # -- reading

    def read(self) -> ConnectSchema:
        try:
            document = parse(self.source)
        except GraphQLError as error:
            place = (error.locations or [None])[0]
            self.problems.append(
                ConnectProblem(
                    "CONNECT_INVALID_SCHEMA", error.message, *((place.line, place.column) if place else (None, None))
                )
            )
            raise ConnectError(self.problems) from None
        if self.base_url is not None:
            try:
                origin, path = origin_of(self.base_url)
                self.base_origin, self.base = origin, origin + path
            except UrlProblem as problem:
                self.problem("CONNECT_INVALID_URL", f"the connector's url: {problem.message}")
        self._read_links(document)
        schema = self._build(document)
        if schema is None or self.problems:
            raise ConnectError(self.problems)
        self._read_sources(document)
        self._read_requires(document)
        self._read_connects(document, schema)
        keys = self._read_keys(document, schema)
        entity_resolvers: dict[str, list[Connector]] = {}
        for connector in self.connectors:
            if connector.kind == "entity" or connector.entity_arguments is not None:
                entity_name = (
                    connector.type_name if connector.kind == "entity" else self._output_name(schema, connector)
                )
                entity_resolvers.setdefault(entity_name, []).append(connector)
        added_keys = self._check_keys(schema, keys, entity_resolvers)
        entity_types = frozenset(set(keys) | set(entity_resolvers))
        self._check_coverage(schema, keys, entity_resolvers)
        if self.problems:
            raise ConnectError(self.problems)
        composition_sdl = self._composition_sdl(document, added_keys)
        executable = self._executable_sdl(document, schema, entity_types)
        model = ConnectModel(
            executable_sdl=executable,
            query_type=schema.query_type.name if schema.query_type else "Query",
            mutation_type=schema.mutation_type.name if schema.mutation_type else None,
            field_connectors={(c.type_name, c.field_name): c for c in self.connectors if c.field_name is not None},
            entity_resolvers={name: tuple(resolvers) for name, resolvers in entity_resolvers.items()},
            entity_types=entity_types,
        )
        if self.base_origin is not None and any(c.base == self.base for c in self.connectors):
            self.origins.add(self.base_origin)
        return ConnectSchema(self.sdl, composition_sdl, frozenset(self.origins), model)

    def _output_name(self, schema: GraphQLSchema, connector: Connector) -> str:
        parent = schema.get_type(connector.type_name)
        assert isinstance(parent, GraphQLObjectType) and connector.field_name is not None
        return _unwrap(parent.fields[connector.field_name].type).name

    def _read_links(self, document: DocumentNode) -> None:
        connect_link = None
        for definition in document.definitions:
            if not isinstance(definition, (SchemaDefinitionNode, SchemaExtensionNode)):
                continue
            for directive in definition.directives or ():
                if directive.name.value != "link":
                    continue
                args = {a.name.value: value_from_ast_untyped(a.value) for a in directive.arguments or ()}
                url = str(args.get("url") or "")
                imports = args.get("import") or []
                if url.startswith(CONNECT_SPEC):
                    connect_link = directive
                    self.blanks.append((directive.loc.start, directive.loc.end) if directive.loc else (0, 0))
                    version = url[len(CONNECT_SPEC) :].strip("/")
                    if version not in CONNECT_VERSIONS:
                        self.problem(
                            "CONNECT_INVALID_LINK",
                            f"unknown connect spec version {version!r} (known: {', '.join(CONNECT_VERSIONS)})",
                            directive,
                        )
                    namespace = str(args.get("as") or "connect")
                    self.source_names.add(f"{namespace}__source")
                    self.connect_names.add(f"{namespace}__connect")
                    for item in imports if isinstance(imports, list) else []:
                        original, alias = (
                            (item.get("name"), item.get("as") or item.get("name"))
                            if isinstance(item, dict)
                            else (item, item)
                        )
                        if original == "@source" and isinstance(alias, str):
                            self.source_names.add(alias.lstrip("@"))
                        elif original == "@connect" and isinstance(alias, str):
                            self.connect_names.add(alias.lstrip("@"))
                    continue
                match = _FEDERATION_URL.match(url)
                if match:
                    namespace = str(args.get("as") or "federation")
                    self.key_name = f"{namespace}__key"
                    self.requires_names.add(f"{namespace}__requires")
                    self.external_names.add(f"{namespace}__external")
                    for item in imports if isinstance(imports, list) else []:
                        original, alias = (
                            (item.get("name"), item.get("as") or item.get("name"))
                            if isinstance(item, dict)
                            else (item, item)
                        )
                        if original == "@key" and isinstance(alias, str):
                            self.key_name = alias.lstrip("@")
                        elif original == "@requires" and isinstance(alias, str):
                            self.requires_names.add(alias.lstrip("@"))
                        elif original == "@external" and isinstance(alias, str):
                            self.external_names.add(alias.lstrip("@"))
        if connect_link is None:
            used = [d for d in _all_directives(document) if d.name.value in ("connect", "source")]
            if used:
                self.problem(
                    "CONNECT_INVALID_LINK",
                    f'@{used[0].name.value} needs the connect spec: extend schema @link(url: "{CONNECT_SPEC}v0.1", import: ["@connect", "@source"])',
                    used[0],
                )
        for definition in document.definitions:
            connect_directive = (
                isinstance(definition, DirectiveDefinitionNode)
                and definition.name.value in self.source_names | self.connect_names
            )
            connect_type = isinstance(definition, TypeDefinitionNode) and definition.name.value.startswith("connect__")
            if connect_directive or connect_type:
                self.blanks.append((definition.loc.start, definition.loc.end) if definition.loc else (0, 0))

    def _base_document(self, document: DocumentNode, extra: str) -> str:
        """The SDL graphql-core builds: without directive definitions, federation machinery and
        the connect spec's types, Federation 1 extensions of undefined types made definitions."""
        defined = {d.name.value for d in document.definitions if isinstance(d, TypeDefinitionNode)}
        kept: list[str] = []
        for definition in document.definitions:
            if isinstance(definition, DirectiveDefinitionNode):
                continue
            if isinstance(definition, SchemaExtensionNode):
                if definition.operation_types:
                    kept.append(
                        "extend schema { "
                        + " ".join(f"{o.operation.value}: {o.type.name.value}" for o in definition.operation_types)
                        + " }"
                    )
                continue
            if isinstance(definition, SchemaDefinitionNode):
                kept.append(
                    "schema { "
                    + " ".join(f"{o.operation.value}: {o.type.name.value}" for o in definition.operation_types)
                    + " }"
                )
                continue
            name = getattr(getattr(definition, "name", None), "value", "")
            if name in _MACHINERY or name.startswith(("connect__", "link__", "federation__", "join__")):
                continue
            fields = getattr(definition, "fields", None)
            if fields is not None and isinstance(definition, (ObjectTypeDefinitionNode, ObjectTypeExtensionNode)):
                fields = tuple(f for f in fields if f.name.value not in ("_service", "_entities"))
                if not fields and name not in defined and isinstance(definition, ObjectTypeExtensionNode):
                    continue
            text = print_ast(_without_directives(definition, fields))
            if isinstance(definition, (ObjectTypeExtensionNode, InterfaceTypeExtensionNode)) and name not in defined:
                text = text[len("extend ") :]
                defined.add(name)
            kept.append(text)
        return "\n\n".join(kept) + "\n\n" + extra

    def _build(self, document: DocumentNode) -> GraphQLSchema | None:
        roots = {"Query"}
        for definition in document.definitions:
            if isinstance(definition, (SchemaDefinitionNode, SchemaExtensionNode)):
                for operation in definition.operation_types or ():
                    if operation.operation.value == "query":
                        roots = {operation.type.name.value}
        has_query = any(
            isinstance(d, (ObjectTypeDefinitionNode, ObjectTypeExtensionNode)) and d.name.value in roots
            for d in document.definitions
        )
        extra = _MACHINERY_SDL + ("" if has_query else "type Query { _service: _Service! }\n")
        try:
            schema = build_ast_schema(parse(self._base_document(document, extra)), assume_valid_sdl=True)
        except (GraphQLError, TypeError) as error:
            self.problem("CONNECT_INVALID_SCHEMA", f"the SDL does not build into a schema: {error}")
            return None
        from graphql import validate_schema

        for error in validate_schema(schema):
            self.problem("CONNECT_INVALID_SCHEMA", error.message)
        return schema

    # -- @source

    def _directive_args(self, directive: DirectiveNode) -> dict[str, tuple[Any, Any]]:
        return {a.name.value: (value_from_ast_untyped(a.value), a.value) for a in directive.arguments or ()}

    def _read_sources(self, document: DocumentNode) -> None:
        for definition in document.definitions:
            if not isinstance(definition, (SchemaDefinitionNode, SchemaExtensionNode)):
                continue
            directives = list(definition.directives or ())
            for directive in directives:
                if directive.name.value in self.source_names:
                    self.blanks.append((directive.loc.start, directive.loc.end) if directive.loc else (0, 0))
                    self._read_source(directive)
            removed = sum(1 for d in directives if d.name.value in self.source_names or _is_connect_link(d))
            if (
                isinstance(definition, SchemaExtensionNode)
                and directives
                and removed == len(directives)
                and not definition.operation_types
                and definition.loc
            ):
                self.blanks.append((definition.loc.start, definition.loc.end))

    def _read_source(self, directive: DirectiveNode) -> None:
        args = self._directive_args(directive)
        name_value, name_node = args.get("name", (None, None))
        where = f"@source({name_value!r})" if isinstance(name_value, str) else "@source"
        for unknown in set(args) - {"name", "http"}:
            self.problem("CONNECT_INVALID_DIRECTIVE", f"{where}: unknown argument {unknown!r}", args[unknown][1])
        if not isinstance(name_value, str) or not _NAME.match(name_value):
            self.problem(
                "CONNECT_INVALID_DIRECTIVE",
                f"{where}: name must be a name (letters, digits, _)",
                name_node or directive,
            )
            return
        if name_value in self.sources:
            self.problem("CONNECT_INVALID_DIRECTIVE", f"{where}: two @source are named {name_value!r}", directive)
            return
        http, http_node = args.get("http", (None, None))
        if not isinstance(http, dict):
            self.problem(
                "CONNECT_INVALID_DIRECTIVE", f"{where}: http: {{ baseURL: ... }} is required", http_node or directive
            )
            return
        for unknown in set(http) - {"baseURL", "headers"}:
            self.problem(
                "CONNECT_INVALID_DIRECTIVE",
                f"{where}: http.{unknown} is not supported",
                _object_field(http_node, unknown) or http_node,
            )
        base_url = http.get("baseURL")
        base: str | None = None
        if base_url is None:
            if self.base is None:
                self.problem(
                    "CONNECT_INVALID_URL",
                    f"{where}: http.baseURL is required (no connector url to default to)",
                    http_node,
                )
            base = self.base
        elif not isinstance(base_url, str):
            self.problem(
                "CONNECT_INVALID_URL", f"{where}: http.baseURL must be a string", _object_field(http_node, "baseURL")
            )
        else:
            base_node = _object_field(http_node, "baseURL")
            try:
                origin, path = origin_of(base_url)
            except UrlProblem as problem:
                self.problem("CONNECT_INVALID_URL", f"{where}: http.baseURL: {problem.message}", base_node)
            else:
                if self._on_origin(origin, f"{where}: http.baseURL", base_node):
                    base = origin + path
        headers = self._read_headers(where, http.get("headers"), _object_field(http_node, "headers"), None)
        if base is not None:
            self.sources[name_value] = _Source(name_value, base, headers)
        else:
            self.broken_sources.add(name_value)  # reported once, here, not at each @connect

    def _on_origin(self, origin: str, where: str, node: Any) -> bool:
        if self.base_origin is not None and origin != self.base_origin:
            self.problem(
                "CONNECT_URL_ORIGIN",
                f"{where}: {origin} is not the connector's origin {self.base_origin}: its secrets go only there",
                node,
            )
            return False
        self.origins.add(origin)
        return True

    def _read_headers(
        self, where: str, headers: Any, node: Any, context: _Context | None
    ) -> tuple[tuple[str, Template], ...]:
        if headers is None:
            return ()
        if not isinstance(headers, list):
            self.problem("CONNECT_INVALID_DIRECTIVE", f"{where}: headers must be a list of {{ name, value }}", node)
            return ()
        out: list[tuple[str, Template]] = []
        item_nodes = list(getattr(node, "values", ()) or ())
        for index, header in enumerate(headers):
            item_node = item_nodes[index] if index < len(item_nodes) else node
            if not isinstance(header, dict) or not isinstance(header.get("name"), str):
                self.problem("CONNECT_INVALID_DIRECTIVE", f"{where}: a header needs a name", item_node)
                continue
            name = header["name"]
            if "from" in header:
                self.problem(
                    "CONNECT_HEADER_REFUSED",
                    f"{where}: header {name!r} from: forwards a client's header to a partner; a resident's credentials never leave the gateway",
                    _object_field(item_node, "from") or item_node,
                )
                continue
            if not _HEADER_NAME.match(name) or name.lower() in _RESERVED_HEADERS or name.lower().startswith("proxy-"):
                self.problem(
                    "CONNECT_HEADER_REFUSED",
                    f"{where}: header {name!r} cannot be set by a connector",
                    _object_field(item_node, "name") or item_node,
                )
                continue
            for unknown in set(header) - {"name", "value"}:
                self.problem(
                    "CONNECT_INVALID_DIRECTIVE", f"{where}: header {name!r}: unknown key {unknown!r}", item_node
                )
            value = header.get("value")
            value_node = _object_field(item_node, "value")
            if not isinstance(value, str):
                self.problem(
                    "CONNECT_INVALID_DIRECTIVE",
                    f"{where}: header {name!r} needs a string value",
                    value_node or item_node,
                )
                continue
            try:
                template = parse_template(value)
            except SelectionError as error:
                self.string_problem(
                    "CONNECT_INVALID_DIRECTIVE",
                    where,
                    f"header {name!r}",
                    error.message,
                    value_node,
                    value,
                    error.offset,
                )
                continue
            for path in template.expressions:
                self._check_variable(path, context, where, f"header {name!r}", value_node, value)
            out.append((name, template))
        return tuple(out)

    # -- @connect

    def _read_connects(self, document: DocumentNode, schema: GraphQLSchema) -> None:
        root_names = {
            t.name for t in (schema.query_type, schema.mutation_type, schema.subscription_type) if t is not None
        }
        for definition in document.definitions:
            if isinstance(definition, (InterfaceTypeDefinitionNode, InterfaceTypeExtensionNode)):
                for directive in _directives_in(definition):
                    if directive.name.value in self.connect_names:
                        self.blanks.append((directive.loc.start, directive.loc.end) if directive.loc else (0, 0))
                        self.problem(
                            "CONNECT_INVALID_DIRECTIVE",
                            f"{definition.name.value}: @connect on an interface is not supported",
                            directive,
                        )
                continue
            if not isinstance(definition, (ObjectTypeDefinitionNode, ObjectTypeExtensionNode)):
                continue
            type_name = definition.name.value
            gtype = schema.get_type(type_name)
            if not isinstance(gtype, GraphQLObjectType):
                continue
            for field_node in definition.fields or ():
                self.field_nodes.setdefault((type_name, field_node.name.value), field_node)
            for directive in definition.directives or ():
                if directive.name.value in self.connect_names:
                    self.blanks.append((directive.loc.start, directive.loc.end) if directive.loc else (0, 0))
                    if type_name in root_names:
                        self.problem(
                            "CONNECT_INVALID_DIRECTIVE",
                            f"{type_name}: @connect goes on the root type's fields, not on the root type",
                            directive,
                        )
                        continue
                    self.incomplete |= not self._read_connect(directive, _Context("entity", gtype, None, schema))
            for field_node in definition.fields or ():
                for directive in field_node.directives or ():
                    if directive.name.value not in self.connect_names:
                        continue
                    self.blanks.append((directive.loc.start, directive.loc.end) if directive.loc else (0, 0))
                    field_def = gtype.fields.get(field_node.name.value)
                    if field_def is None:
                        continue
                    coordinate = f"{type_name}.{field_node.name.value}"
                    if (type_name, field_node.name.value) in self.connected_fields:
                        self.problem("CONNECT_INVALID_DIRECTIVE", f"{coordinate}: more than one @connect", directive)
                        continue
                    if schema.subscription_type is not None and type_name == schema.subscription_type.name:
                        self.problem(
                            "CONNECT_INVALID_DIRECTIVE", f"{coordinate}: subscriptions cannot be connected", directive
                        )
                        continue
                    kind = "root" if type_name in root_names else "field"
                    self.connected_fields.add((type_name, field_node.name.value))
                    self.incomplete |= not self._read_connect(
                        directive, _Context(kind, gtype, field_node.name.value, schema, field_node)
                    )

    def _read_connect(self, directive: DirectiveNode, context: _Context) -> bool:
        """Whether the @connect became a Connector (its problems, if any, are recorded)."""
        where = context.coordinate
        args = self._directive_args(directive)
        for unknown in set(args) - {"source", "http", "selection", "entity", "batch", "id"}:
            self.problem(
                "CONNECT_INVALID_DIRECTIVE",
                f"{where}: @connect argument {unknown!r} is not supported",
                args[unknown][1],
            )
        ok = True
        source: _Source | None = None
        source_name, source_node = args.get("source", (None, None))
        if source_name is not None and source_name in self.broken_sources:
            return False
        if source_name is not None:
            if not isinstance(source_name, str) or source_name not in self.sources:
                known = ", ".join(sorted(self.sources)) or "none"
                self.problem(
                    "CONNECT_UNKNOWN_SOURCE",
                    f"{where}: no @source is named {source_name!r} (known: {known})",
                    source_node,
                )
                ok = False
            else:
                source = self.sources[source_name]
        http, http_node = args.get("http", (None, None))
        if not isinstance(http, dict):
            self.problem(
                "CONNECT_INVALID_DIRECTIVE",
                f'{where}: http: {{ GET: "/path" }} (or POST, PUT, PATCH, DELETE) is required',
                http_node or directive,
            )
            return False
        for unknown in set(http) - {*HTTP_METHODS, "headers", "body", "queryParams"}:
            self.problem(
                "CONNECT_INVALID_DIRECTIVE",
                f"{where}: http.{unknown} is not supported",
                _object_field(http_node, unknown) or http_node,
            )
        methods = [m for m in HTTP_METHODS if m in http]
        if len(methods) != 1:
            self.problem(
                "CONNECT_INVALID_DIRECTIVE", f"{where}: http needs exactly one of {', '.join(HTTP_METHODS)}", http_node
            )
            return False
        method = methods[0]
        url_text, url_node = http[method], _object_field(http_node, method)
        if not isinstance(url_text, str):
            self.problem("CONNECT_INVALID_URL", f"{where}: http.{method} must be a URL template string", url_node)
            return False
        url = self._read_url(where, url_text, url_node, context)
        base = self._base(where, url, source, url_node)
        headers = self._read_headers(where, http.get("headers"), _object_field(http_node, "headers"), context)
        if source is not None:
            overridden = {name.lower() for name, _ in headers}
            headers = tuple((n, t) for n, t in source.headers if n.lower() not in overridden) + headers
        body = self._read_mapping(where, "http.body", http.get("body"), _object_field(http_node, "body"), context)
        if body is not None and method == "GET":
            self.problem(
                "CONNECT_INVALID_DIRECTIVE", f"{where}: a GET request has no body", _object_field(http_node, "body")
            )
        query_params = self._read_mapping(
            where, "http.queryParams", http.get("queryParams"), _object_field(http_node, "queryParams"), context
        )
        selection_text, selection_node = args.get("selection", (None, None))
        if not isinstance(selection_text, str):
            self.problem(
                "CONNECT_INVALID_DIRECTIVE",
                f"{where}: selection is required (a mapping string)",
                selection_node or directive,
            )
            return False
        selection = self._read_mapping(where, "selection", selection_text, selection_node, context, response=True)
        entity, entity_node = args.get("entity", (False, None))
        entity_arguments = None
        if entity not in (True, False, None):
            self.problem("CONNECT_INVALID_DIRECTIVE", f"{where}: entity must be a Boolean", entity_node)
        elif entity:
            entity_arguments = self._entity_arguments(where, context, entity_node)
        batch, batch_node = args.get("batch", (None, None))
        max_batch: int | None = None
        if batch is not None:
            size = batch.get("maxSize") if isinstance(batch, dict) else None
            if (
                not isinstance(batch, dict)
                or set(batch) - {"maxSize"}
                or (size is not None and (not isinstance(size, int) or size < 1))
            ):
                self.problem(
                    "CONNECT_INVALID_DIRECTIVE", f"{where}: batch takes {{ maxSize: <a positive Int> }}", batch_node
                )
            elif not context.batch_paths:
                self.problem(
                    "CONNECT_INVALID_DIRECTIVE",
                    f"{where}: batch is for a type's connector that reads $batch",
                    batch_node,
                )
            else:
                max_batch = size
        if context.kind == "entity":
            if context.this_paths and context.batch_paths:
                self.problem(
                    "CONNECT_INVALID_VARIABLE",
                    f"{where}: a type's connector reads $this (one call per entity) or $batch (one call for many), not both",
                    directive,
                )
            elif not context.this_paths and not context.batch_paths:
                self.problem(
                    "CONNECT_INVALID_VARIABLE",
                    f"{where}: a type's connector must read the entity's key from $this or $batch",
                    directive,
                )
        if url is None or base is None or selection is None or not ok:
            return False
        read_paths = tuple(sorted(context.batch_paths or context.this_paths)) if context.kind == "entity" else ()
        required = self.required.get(context.type.name, set())
        key_paths = tuple(p for p in read_paths if p not in required)
        if read_paths and not key_paths:
            names = ", ".join(".".join(p) for p in read_paths)
            self.problem(
                "CONNECT_INVALID_KEY",
                f"{where}: reads only {names}, which a @requires names: it must read the entity's key too",
                directive,
            )
            return False
        if entity_arguments is not None:
            key_paths = read_paths = tuple((name,) for name in entity_arguments)
        self.connectors.append(
            Connector(
                coordinate=where,
                kind=context.kind,
                type_name=context.type.name,
                field_name=context.field_name,
                method=method,
                base=base,
                url=url,
                headers=headers,
                body=body,
                query_params=query_params,
                selection=selection,
                batch=bool(context.batch_paths),
                max_batch=max_batch,
                key_paths=key_paths,
                read_paths=read_paths,
                entity_arguments=entity_arguments,
            )
        )
        return True

    def _entity_arguments(self, where: str, context: _Context, node: Any) -> tuple[str, ...] | None:
        schema = context.schema
        if context.kind != "root" or schema.query_type is None or context.type.name != schema.query_type.name:
            self.problem("CONNECT_INVALID_DIRECTIVE", f"{where}: entity: true goes on a Query field only", node)
            return None
        field_def = context.type.fields[context.field_name or ""]
        output = _unwrap(field_def.type)
        if _is_list(field_def.type) or not isinstance(output, GraphQLObjectType):
            self.problem(
                "CONNECT_INVALID_DIRECTIVE",
                f"{where}: entity: true needs a field returning one object, not a list or scalar",
                node,
            )
            return None
        if not field_def.args:
            self.problem(
                "CONNECT_INVALID_DIRECTIVE",
                f"{where}: entity: true needs arguments naming the entity's key fields",
                node,
            )
            return None
        for name in field_def.args:
            if name not in output.fields:
                self.problem(
                    "CONNECT_INVALID_DIRECTIVE",
                    f"{where}: entity: true: argument {name!r} is not a field of {output.name}",
                    node,
                )
                return None
        return tuple(field_def.args)

    def _read_url(self, where: str, text: str, node: Any, context: _Context) -> UrlTemplate | None:
        try:
            url = parse_url(text)
        except SelectionError as error:
            self.string_problem("CONNECT_INVALID_URL", where, "URL", error.message, node, text, error.offset)
            return None
        except UrlProblem as problem:
            self.string_problem("CONNECT_INVALID_URL", where, "URL", problem.message, node, text, problem.offset)
            return None
        for path in url.path.expressions + tuple(p for _, t in url.query for p in t.expressions):
            self._check_variable(path, context, where, "URL", node, text)
        return url

    def _base(self, where: str, url: UrlTemplate | None, source: _Source | None, node: Any) -> str | None:
        if url is None:
            return None
        if url.origin is not None:
            if source is not None:
                self.problem("CONNECT_INVALID_URL", f"{where}: with a source, the URL is a path starting with /", node)
                return None
            if not self._on_origin(url.origin, f"{where}: URL", node):
                return None
            return url.origin
        if source is not None:
            return source.base
        if self.base is None:
            self.problem(
                "CONNECT_INVALID_URL", f"{where}: a relative URL needs a source (or the connector's url)", node
            )
            return None
        return self.base

    def _read_mapping(
        self, where: str, what: str, text: Any, node: Any, context: _Context, response: bool = False
    ) -> Selection | None:
        if text is None:
            return None
        if not isinstance(text, str):
            self.problem("CONNECT_INVALID_DIRECTIVE", f"{where}: {what} must be a mapping string", node)
            return None
        try:
            from ._selection import parse_selection

            selection = parse_selection(text)
        except SelectionError as error:
            self.string_problem("CONNECT_INVALID_SELECTION", where, what, error.message, node, text, error.offset)
            return None
        for path in paths_of(selection):
            self._check_variable(path, context, where, what, node, text)
        if response:
            gtype = context.output_type
            self._check_selection(selection, gtype, where, node, text, entity=context.kind == "entity" or False)
        return selection

    def _check_variable(
        self, path: Path, context: _Context | None, where: str, what: str, node: Any, text: str
    ) -> None:
        start = path.start
        if start in REFUSED_VARIABLES:
            self.string_problem(
                "CONNECT_INVALID_VARIABLE",
                where,
                what,
                f"{start} is refused: {_REFUSAL_REASONS[start]}",
                node,
                text,
                path.offset,
            )
            return
        if start not in ("$args", "$this", "$batch"):
            return
        if context is None:
            self.string_problem(
                "CONNECT_INVALID_VARIABLE",
                where,
                what,
                f"a @source header cannot read {start}",
                node,
                text,
                path.offset,
            )
            return
        keys = variable_keys(path)
        if start == "$args":
            if context.kind == "entity":
                self.string_problem(
                    "CONNECT_INVALID_VARIABLE",
                    where,
                    what,
                    "a type's connector has no $args (it reads $this or $batch)",
                    node,
                    text,
                    path.offset,
                )
                return
            field_def = context.type.fields[context.field_name or ""]
            if keys and keys[0] not in field_def.args:
                self.string_problem(
                    "CONNECT_INVALID_VARIABLE",
                    where,
                    what,
                    f"$args.{keys[0]}: {context.coordinate} has no argument {keys[0]!r}",
                    node,
                    text,
                    path.offset,
                )
            return
        if start == "$this" and context.kind == "root":
            self.string_problem(
                "CONNECT_INVALID_VARIABLE",
                where,
                what,
                "$this is the parent object: a root field has none",
                node,
                text,
                path.offset,
            )
            return
        if start == "$batch" and context.kind != "entity":
            self.string_problem(
                "CONNECT_INVALID_VARIABLE",
                where,
                what,
                "$batch is for a type's connector (an entity resolver)",
                node,
                text,
                path.offset,
            )
            return
        if not keys:
            self.string_problem(
                "CONNECT_INVALID_VARIABLE",
                where,
                what,
                f"{start} alone: name a field of {context.type.name} ({start}.field)",
                node,
                text,
                path.offset,
            )
            return
        gtype: Any = context.type
        used: list[str] = []
        for key in keys:
            if not isinstance(gtype, GraphQLObjectType):
                break
            field_def = gtype.fields.get(key)
            if field_def is None:
                self.string_problem(
                    "CONNECT_UNKNOWN_FIELD",
                    where,
                    what,
                    f'{start}.{".".join(used + [key])}: unknown field "{key}" of {gtype.name}',
                    node,
                    text,
                    path.offset,
                )
                return
            used.append(key)
            gtype = _unwrap(field_def.type)
        if isinstance(gtype, GraphQLObjectType):
            self.string_problem(
                "CONNECT_INVALID_VARIABLE",
                where,
                what,
                f"{start}.{'.'.join(used)} is an object: name its key field ({start}.{'.'.join(used)}.id)",
                node,
                text,
                path.offset,
            )
            return
        (context.batch_paths if start == "$batch" else context.this_paths).add(tuple(used))

    def _check_selection(
        self, selection: Selection, gtype: Any, where: str, node: Any, text: str, entity: bool
    ) -> None:
        named = _unwrap(gtype)

        def problem(code: str, message: str, offset: int) -> None:
            return self.string_problem(code, where, "selection", message, node, text, offset)

        def check(sel: Selection, target: GraphQLNamedType, top: bool) -> None:
            whole = sel.whole
            if whole is not None:
                if whole.sub is not None:
                    check(whole.sub, target, top)
                elif not _is_leaf(target):
                    problem(
                        "CONNECT_INVALID_SELECTION",
                        f"{target.name} is an object type: select its fields with {{ ... }}",
                        whole.offset,
                    )
                return
            if _is_leaf(target):
                if (
                    not isinstance(target, GraphQLScalarType)
                    or is_specified_scalar_type(target)
                    or is_enum_type(target)
                ):
                    problem(
                        "CONNECT_INVALID_SELECTION",
                        f"{target.name} is a leaf type: its selection is one path (e.g. $.value)",
                        sel.offset,
                    )
                return
            if not isinstance(target, GraphQLObjectType):
                problem(
                    "CONNECT_INVALID_SELECTION",
                    f"{target.name} is abstract (an interface or union): REST connectors map object types only",
                    sel.offset,
                )
                return
            produced: set[str] = set()
            for item in sel.items:
                self._check_item(item, target, produced, problem, check)
            self.productions.setdefault(target.name, []).append(_Production(where, produced, entity and top))

        check(selection, named, True)

    def _check_item(self, item: Item, target: GraphQLObjectType, produced: set[str], problem, check) -> None:
        if item.name is None:
            assert item.sub is not None
            before = len(self.productions.get(target.name, []))
            check(item.sub, target, False)
            merged = self.productions.get(target.name, [])
            if len(merged) > before:
                produced |= merged.pop().fields  # an unnamed path's fields belong to this object
            return
        field_def = target.fields.get(item.name)
        if field_def is None:
            problem("CONNECT_UNKNOWN_FIELD", f'unknown field "{item.name}" of {target.name}', item.offset)
            return
        produced.add(item.name)
        field_type = _unwrap(field_def.type)
        if _is_leaf(field_type):
            custom = isinstance(field_type, GraphQLScalarType) and not is_specified_scalar_type(field_type)
            if item.sub is not None and not custom:
                problem(
                    "CONNECT_INVALID_SELECTION",
                    f"{target.name}.{item.name} is a {field_type.name}: it takes no {{ ... }} selection",
                    item.offset,
                )
            return
        if item.sub is None:
            problem(
                "CONNECT_INVALID_SELECTION",
                f"{target.name}.{item.name} is an object ({field_type.name}): select its fields with {{ ... }}",
                item.offset,
            )
            return
        check(item.sub, field_type, False)

    # -- keys and coverage

    def _read_requires(self, document: DocumentNode) -> None:
        """Per type, the fields its @requires name and its @external fields."""
        from ..supergraph import parse_field_set

        for definition in document.definitions:
            if not isinstance(definition, (ObjectTypeDefinitionNode, ObjectTypeExtensionNode)):
                continue
            type_name = definition.name.value
            for field_node in definition.fields or ():
                for directive in field_node.directives or ():
                    name = directive.name.value
                    if name in self.external_names:
                        self.external.setdefault(type_name, set()).add(field_node.name.value)
                    elif name in self.requires_names:
                        args = {a.name.value: value_from_ast_untyped(a.value) for a in directive.arguments or ()}
                        if not isinstance(args.get("fields"), str):
                            continue  # composition reports it
                        try:
                            selections = parse_field_set(args["fields"])
                        except Exception:
                            continue
                        self.required.setdefault(type_name, set()).update(_field_paths(selections, ()))

    def _read_keys(self, document: DocumentNode, schema: GraphQLSchema) -> dict[str, list[frozenset[tuple[str, ...]]]]:
        """Resolvable @key field sets per type, as sets of field paths."""
        from ..supergraph import parse_field_set

        keys: dict[str, list[frozenset[tuple[str, ...]]]] = {}
        for definition in document.definitions:
            if not isinstance(definition, (ObjectTypeDefinitionNode, ObjectTypeExtensionNode)):
                continue
            for directive in definition.directives or ():
                if directive.name.value not in (self.key_name, "key", "federation__key"):
                    continue
                args = {a.name.value: value_from_ast_untyped(a.value) for a in directive.arguments or ()}
                if args.get("resolvable") is False or not isinstance(args.get("fields"), str):
                    continue
                try:
                    selections = parse_field_set(args["fields"])
                except Exception:
                    self.problem(
                        "CONNECT_INVALID_KEY",
                        f"{definition.name.value}: @key fields {args['fields']!r} do not parse",
                        directive,
                    )
                    continue
                keys.setdefault(definition.name.value, []).append(frozenset(_field_paths(selections, ())))
        return keys

    def _check_keys(
        self, schema: GraphQLSchema, keys: dict, entity_resolvers: dict[str, list[Connector]]
    ) -> dict[str, list[str]]:
        """Keys composition_sdl adds (types without @key); CONNECT_INVALID_KEY where an entity
        connector reads fields no @key names."""
        added: dict[str, list[str]] = {}
        for type_name, resolvers in entity_resolvers.items():
            declared = keys.get(type_name)
            for connector in resolvers:
                used = frozenset(connector.key_paths)
                if declared:
                    if not any(used <= key for key in declared):
                        names = ", ".join(".".join(p) for p in sorted(used))
                        self.problem(
                            "CONNECT_INVALID_KEY",
                            f"{connector.coordinate}: reads {names} of {type_name}, which no @key of {type_name} names",
                        )
                    continue
                text = _field_set_text(used)
                if text not in added.setdefault(type_name, []):
                    added[type_name].append(text)
            if not declared:
                keys[type_name] = [frozenset(c.key_paths) for c in resolvers]
        return added

    def _check_coverage(self, schema: GraphQLSchema, keys: dict, entity_resolvers: dict[str, list[Connector]]) -> None:
        root_names = {t.name for t in (schema.query_type, schema.mutation_type) if t is not None}
        for root in root_names:
            gtype = schema.get_type(root)
            assert isinstance(gtype, GraphQLObjectType)
            for field_name in gtype.fields:
                if field_name in ("_service", "_entities") or (root, field_name) in self.connected_fields:
                    continue
                self.problem(
                    "CONNECT_MISSING_RESOLVER",
                    f"{root}.{field_name}: a root field of a REST connector needs @connect",
                    self.field_nodes.get((root, field_name)),
                )
        if self.incomplete:
            return  # what the unread @connect would have made is unknown: judged once it reads
        relevant = set(self.productions) | set(keys) | {t for t, _ in self.connected_fields}
        for type_name in sorted(relevant - root_names):
            gtype = schema.get_type(type_name)
            if not isinstance(gtype, GraphQLObjectType):
                continue
            productions = self.productions.get(type_name, [])
            key_fields = {path[0] for key in keys.get(type_name, []) for path in key}
            resolvers = entity_resolvers.get(type_name, [])
            entity_selections = [p.fields for p in productions if p.entity]
            for root_entity in (c for c in resolvers if c.entity_arguments is not None):
                entity_selections += [p.fields for p in productions if p.coordinate == root_entity.coordinate]
            external = self.external.get(type_name, set())
            for field_name in gtype.fields:
                if (type_name, field_name) in self.connected_fields or field_name in key_fields:
                    continue
                if type_name in keys and field_name in external:
                    continue  # another subgraph's field: asked here only where a @provides gives it
                if type_name in keys:
                    # the planner may fetch any field of an entity by its key: each must be
                    # resolvable from a representation
                    if not resolvers:
                        self.problem(
                            "CONNECT_MISSING_RESOLVER",
                            f"{type_name}.{field_name}: {type_name} is an entity but nothing resolves {field_name} from its key: "
                            f"give {type_name} a type-level @connect (or a Query field with entity: true), or {field_name} its own @connect",
                            self.field_nodes.get((type_name, field_name)),
                        )
                    elif not entity_selections or any(field_name not in s for s in entity_selections):
                        self.problem(
                            "CONNECT_MISSING_RESOLVER",
                            f"{type_name}.{field_name}: not selected by every entity connector of {type_name}",
                            self.field_nodes.get((type_name, field_name)),
                        )
                elif not any(field_name in p.fields for p in productions):
                    self.problem(
                        "CONNECT_MISSING_RESOLVER",
                        f"{type_name}.{field_name}: no @connect and no selection gives it a value",
                        self.field_nodes.get((type_name, field_name)),
                    )
            if type_name in keys:
                for production in productions:
                    if not any({p[0] for p in key} <= production.fields for key in keys[type_name]):
                        self.problem(
                            "CONNECT_MISSING_RESOLVER",
                            f"{production.coordinate}: makes {type_name} objects without their key fields ({', '.join(sorted(key_fields))}): select them",
                        )

    # -- output

    def _composition_sdl(self, document: DocumentNode, added_keys: dict[str, list[str]]) -> str:
        edits: list[tuple[int, int, str]] = []
        for start, end in self.blanks:
            if end > start:
                edits.append((start, end, re.sub(r"[^\r\n]", " ", self.sdl[start:end])))
        anchored: set[str] = set()
        for definition in document.definitions:
            if (
                isinstance(definition, ObjectTypeDefinitionNode)
                and definition.name.value in added_keys
                and definition.name.loc
            ):
                anchored.add(definition.name.value)
                position = definition.name.loc.end
                text = "".join(f' @{self.key_name}(fields: "{fields}")' for fields in added_keys[definition.name.value])
                edits.append((position, position, text))
        for definition in document.definitions:
            name = getattr(getattr(definition, "name", None), "value", None)
            if (
                isinstance(definition, ObjectTypeExtensionNode)
                and name in added_keys
                and name not in anchored
                and definition.name.loc
            ):
                anchored.add(name)
                position = definition.name.loc.end
                edits.append(
                    (
                        position,
                        position,
                        "".join(f' @{self.key_name}(fields: "{fields}")' for fields in added_keys[name]),
                    )
                )
        text = self.sdl
        for start, end, replacement in sorted(_outermost(edits), key=lambda e: e[0], reverse=True):
            text = text[:start] + replacement + text[end:]
        # blanked, never deleted: every line and column composition reports is the partner's own
        return "\n".join(line.rstrip(" ") if line.endswith(" ") else line for line in text.split("\n"))

    def _executable_sdl(self, document: DocumentNode, schema: GraphQLSchema, entity_types: frozenset[str]) -> str:
        query = schema.query_type.name if schema.query_type else "Query"
        has_query = any(
            isinstance(d, (ObjectTypeDefinitionNode, ObjectTypeExtensionNode)) and d.name.value == query
            for d in document.definitions
        )
        root = f"extend type {query}" if has_query else f"type {query}"
        extra = _MACHINERY_SDL
        if entity_types:
            extra += f"union _Entity = {' | '.join(sorted(entity_types))}\n"
            extra += f"{root} {{ _service: _Service! _entities(representations: [_Any!]!): [_Entity]! }}\n"
        else:
            extra += f"{root} {{ _service: _Service! }}\n"
        return self._base_document(document, extra)


_MACHINERY_SDL = "scalar _Any\ntype _Service { sdl: String }\n"


@dataclass
class _Context:
    """Where a @connect sits, and what its mappings read."""

    kind: str
    type: GraphQLObjectType
    field_name: str | None
    schema: GraphQLSchema
    node: FieldDefinitionNode | None = None
    this_paths: set[tuple[str, ...]] = field(default_factory=set)
    batch_paths: set[tuple[str, ...]] = field(default_factory=set)

    @property
    def coordinate(self) -> str:
        return f"{self.type.name}.{self.field_name}" if self.field_name else self.type.name

    @property
    def output_type(self) -> Any:
        if self.field_name is None:
            return self.type
        return self.type.fields[self.field_name].type


def _is_leaf(gtype: Any) -> bool:
    return isinstance(gtype, GraphQLScalarType) or is_enum_type(gtype)


def _is_connect_link(directive: DirectiveNode) -> bool:
    if directive.name.value != "link":
        return False
    for argument in directive.arguments or ():
        if argument.name.value == "url":
            value = value_from_ast_untyped(argument.value)
            return isinstance(value, str) and value.startswith(CONNECT_SPEC)
    return False


def _directives_in(definition: Any) -> Iterable[DirectiveNode]:
    yield from definition.directives or ()
    for field_node in getattr(definition, "fields", None) or ():
        yield from field_node.directives or ()
        for argument in getattr(field_node, "arguments", None) or ():
            yield from argument.directives or ()


def _all_directives(document: DocumentNode) -> Iterable[DirectiveNode]:
    for definition in document.definitions:
        yield from _directives_in(definition)


def _without_directives(definition: Any, fields: Any) -> Any:
    """A copy of a type definition without directive applications (graphql-core ignores unknown
    ones only when told to assume the SDL valid; composition judges them, not this build)."""
    changes: dict[str, Any] = {"directives": ()}
    if fields is not None:
        changes["fields"] = tuple(_field_without_directives(f) for f in fields)
    return _replaced(definition, changes)


def _field_without_directives(node: Any) -> Any:
    changes: dict[str, Any] = {"directives": ()}
    if getattr(node, "arguments", None):
        changes["arguments"] = tuple(_field_without_directives(a) for a in node.arguments)
    return _replaced(node, changes)


def _replaced(node: Any, changes: dict[str, Any]) -> Any:
    return type(node)(
        **{
            key: changes.get(key, getattr(node, key))
            for key in node.keys
            if key != "loc" and (key in changes or hasattr(node, key))
        }
    )


def _field_paths(selections: Any, prefix: tuple[str, ...]) -> Iterable[tuple[str, ...]]:
    for selection in selections:
        name = getattr(getattr(selection, "name", None), "value", None)
        if name is None:
            continue
        sub = getattr(selection, "selection_set", None)
        if sub is not None and sub.selections:
            yield from _field_paths(sub.selections, (*prefix, name))
        else:
            yield (*prefix, name)


def _field_set_text(paths: Iterable[tuple[str, ...]]) -> str:
    """("id",), ("location", "id") -> 'id location { id }'."""
    tree: dict[str, dict] = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(key, {})

    def text(node: dict) -> str:
        return " ".join(f"{key} {{ {text(child)} }}" if child else key for key, child in node.items())

    return text(tree)


def _outermost(edits: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Edits not inside another (a directive inside a blanked definition is blanked with it)."""
    kept: list[tuple[int, int, str]] = []
    for edit in sorted(edits, key=lambda e: (e[0], -e[1])):
        start, end, _ = edit
        if kept and start != end and kept[-1][0] <= start and end <= kept[-1][1] and kept[-1][0] != kept[-1][1]:
            continue
        kept.append(edit)
    return kept


__all__ = [
    "CONNECT_SPEC",
    "ConnectError",
    "ConnectModel",
    "ConnectProblem",
    "ConnectSchema",
    "Connector",
    "read_connect_sdl",
]
