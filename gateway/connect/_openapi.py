"""Drafts a REST connector from a partner's OpenAPI document (3.0 or 3.1, JSON or YAML).

`citygate connector import-openapi` calls `import_openapi`: the document is read within bounds,
validated by openapi-spec-validator (one problem per line, nothing drafted from an invalid
document), its `$ref`s resolved by jsonschema-path's resolver (only inside the document: a `$ref`
to a file or a URL is a problem, never fetched), and turned into a connector folder's
`manifest.yaml` and `schema.graphql` with `@source`/`@connect`. The draft is the partner's to
edit: it is never registered as is, and it says so at its top (personal data needs `@personal`
/`@subject`, which no OpenAPI document carries).

How the document maps (the decisions the issue leaves open):
- Types: each object schema reached from an operation becomes an object type (named after its
  component, or after where it appears: `PetOwner`, `ListPetsResult`); field names are
  camelCased, the selection renames them (`firstName: first_name`). JSON types map to String,
  Int, Float, Boolean; `integer` with format int64 maps to Float (GraphQL's Int is 32-bit), a
  string or integer property named `id`, `<x>Id` or `<x>_id` to ID. A field is non-null when it
  is required and not nullable. `--type-prefix` names every drafted type PREFIX+Name, so two
  partners' drafts do not clash on common names (`Category`) when composed. A string
  enum whose values are all GraphQL names becomes an enum type (otherwise a String). `allOf`
  merges its branches; `oneOf`/`anyOf` with a single non-null branch is that branch, with
  branches of one scalar type that scalar, and otherwise the `JSON` scalar (a union would need a
  `__typename` mapping the document cannot say). An object without properties (a map) is JSON.
  `readOnly` properties are left out of input types, `writeOnly` ones out of output types.
- Recursion: a schema that refers to itself (a `$ref` cycle) is one type; in a selection, where
  a type recurs inside itself (or past `MAX_SELECTION_DEPTH` nested objects) only its leaf fields
  are selected there, so every draft's selections are finite.
- Operations: GET becomes a Query field, every other method a Mutation field, named after the
  operationId (camelCased) or, without one, after the method and path (`getPetsById`). Path and
  query parameters become arguments (`{$args.x}` in the URL template); a JSON request body an
  `input` argument, sent with `body`. A parameter's (or an input property's) `default` becomes the
  argument's (input field's) default when it is a GraphQL value of its type (otherwise noted). Header and cookie parameters, non-JSON bodies and GETs
  without a JSON answer are left out and listed at the top of the draft. A mutation without a
  JSON answer returns Boolean (`$(true)`).
- Entities: where `GET /things/{param}` answers one object of a component type that has a
  property `param` (or `id`, when the parameter is `id`, `thingId` or `thing_id`), that type gets
  `@key(fields: ...)` and a type-level `@connect` on that path with `$this`: an entity other
  connectors can extend and reference. Paths with more than one parameter, or with required
  query parameters, make no entity.
- Personal data: fields whose names look personal get `# TODO personal?`.

Bounds: a document over `MAX_DOCUMENT_BYTES`, with more than `MAX_OPERATIONS` operations, or
expanding past `MAX_YAML_NODES` (YAML aliases) is refused before it is walked.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from ..supergraph import PRIVACY_SPEC_URL

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
MAX_OPERATIONS = 500
MAX_YAML_NODES = 2_000_000  # values after YAML aliases are expanded: a "billion laughs" stops here
MAX_SELECTION_DEPTH = 6  # nested objects in one selection
MAX_SCHEMA_DEPTH = 32  # nested schemas (allOf/oneOf/items/properties) walked for one type
_MAX_REF_HOPS = 32  # a $ref to a $ref to ...
_MAX_DESCRIPTION = 300

CONNECT_LINK = "https://specs.apollo.dev/connect/v0.1"
FEDERATION_LINK = "https://specs.apollo.dev/federation/v2.10"
DRAFT_NOTICE = "draft: annotate personal data (@personal/@subject) before registering"

_METHODS = ("get", "put", "post", "delete", "patch")  # what @connect can call (no head/options/trace)
_GRAPHQL_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
_SELECTION_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNWRITABLE_QUERY_NAME = re.compile(r"[&=?{}#%\s\\\"<>`^|]")
_RESERVED_TYPES = frozenset(
    {
        "Query",
        "Mutation",
        "Subscription",
        "String",
        "Int",
        "Float",
        "Boolean",
        "ID",
        "JSON",
        "FieldSet",
        "Import",
        "Purpose",
    }
)
_PERSONAL = re.compile(  # on the name without separators, lowercased
    r"(email|mail|phone|mobile|name|address|street|postcode|postal|zip|birth|^dob$|^age$|plate|iban|^bic$|latitude|"
    r"longitude|^lat$|^lng$|^lon$|location|geo|ssn|passport|nationalid|salary|income|gender|health|^ip$|ipaddress)"
)
# identifiers naming a person: `poster_id`, `hostId`, `memberIds`
_PERSON_ID = re.compile(
    r"(resident|user|person|people|owner|poster|taker|author|customer|guest|host|driver|member|rater|ratee|reporter|"
    r"citizen|tenant|patient|passenger|buyer|seller|employee|reviewer|sender|recipient|assignee|requester|voter|student|"
    r"parent)ids?$"
)
_PRIVACY_HEADER = f"""\
  @link(url: "{PRIVACY_SPEC_URL}", import: ["@personal", "@subject", "@aggregate", "@nonPersonal"])
  @composeDirective(name: "@personal")
  @composeDirective(name: "@subject")
  @composeDirective(name: "@aggregate")
  @composeDirective(name: "@nonPersonal")"""
_PRIVACY_DIRECTIVES = """\
directive @personal(category: String!, strategy: String) on FIELD_DEFINITION
directive @subject(field: String!) on OBJECT | INTERFACE
directive @aggregate(contributors: String!, minContributors: Int) on FIELD_DEFINITION
directive @nonPersonal on FIELD_DEFINITION
"""


class OpenApiError(Exception):
    """The document cannot be drafted from: every problem found, one a line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ConnectorDraft:
    manifest: str  # manifest.yaml
    sdl: str  # schema.graphql
    base_url: str
    operations: int  # fields drafted (Query and Mutation)
    entities: list[str]  # types given a type-level @connect
    skipped: list[str]  # what was left out, and why


# -- reading ---------------------------------------------------------------------------------


def load_document(data: bytes | str) -> dict[str, Any]:
    """The document as JSON-like data, within bounds. JSON is read with orjson; anything else
    as YAML (safe loader), refused when its aliases would expand past MAX_YAML_NODES."""
    import orjson
    import yaml

    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise OpenApiError([f"the document is over {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB"])
    if raw.lstrip()[:1] in (b"{", b"["):
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise OpenApiError([f"not JSON: {error}"]) from None
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise OpenApiError(["the document is not UTF-8 text"]) from None
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)  # libyaml bounds nesting itself
        try:
            node = loader.get_single_node()
            if node is not None and _expanded_size(node) > MAX_YAML_NODES:
                raise OpenApiError([f"the YAML document expands to more than {MAX_YAML_NODES} values (aliases)"])
            document = loader.construct_document(node) if node is not None else None
        except yaml.YAMLError as error:
            raise OpenApiError([f"not YAML: {error}"]) from None
        except RecursionError:
            raise OpenApiError(["the document is nested too deeply"]) from None
        finally:
            loader.dispose()
    if not isinstance(document, dict):
        raise OpenApiError(["the document is not an OpenAPI object (a mapping with 'openapi', 'info' and 'paths')"])
    return document


def _expanded_size(root: Any) -> int:
    """How many values the YAML node graph becomes once every alias is copied in: computed
    once per node (memoised), so an alias bomb costs what its text costs."""
    import yaml

    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [item for pair in node.value for item in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            sizes[id(node)] = 1
            continue
        if children_done:
            sizes[id(node)] = min(MAX_YAML_NODES + 1, 1 + sum(sizes.get(id(child), 0) for child in children))
        else:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def validate_document(document: dict[str, Any]) -> None:
    """Raises OpenApiError with every problem openapi-spec-validator finds (and every `$ref`
    that does not resolve inside the document), each once, with where it is."""
    from jsonschema_path import SchemaPath
    from referencing.exceptions import Unresolvable

    version = document.get("openapi")
    if not isinstance(version, str) or not re.match(r"^3\.[01]\.\d+", version):
        found = (
            f"'openapi: {version}'"
            if isinstance(version, str)
            else "no 'openapi' version"
            if "swagger" not in document
            else "Swagger 2.0"
        )
        raise OpenApiError([f"OpenAPI 3.0 and 3.1 documents only ({found}); convert a Swagger 2.0 document first"])
    operations = sum(1 for _ in _operations(document))
    if operations > MAX_OPERATIONS:
        raise OpenApiError(
            [f"the document has {operations} operations: at most {MAX_OPERATIONS} are drafted at once; split it"]
        )
    validator_class = _spec_validator(version[:3])
    problems: list[str] = []
    try:
        # the document's structure (OpenAPI's own JSON schema), then every $ref, then the checks
        # that need resolved references (schemas against their dialect, parameters, operationIds)
        problems = [_problem(error) for error in validator_class.schema_validator.iter_errors(document)]
        root = SchemaPath.from_dict(document, handlers={})  # no handler: a $ref never leaves the document
        with root.resolve() as resolved:
            resolver = resolved.resolver
        unresolved = False
        for pointer, reference in _references(document):
            try:
                resolver.lookup(reference)
            except Unresolvable:
                unresolved = True
                where = (
                    "points outside the document (never fetched)"
                    if not reference.startswith("#")
                    else "does not resolve"
                )
                problems.append(f"{pointer}: $ref {reference!r} {where}")
        if not unresolved:
            structural = [problem.split(": ", 1)[0] for problem in problems]
            try:
                for error in validator_class(root).iter_errors():
                    problem = _problem(error)
                    pointer = problem.split(": ", 1)[0]
                    # the same problem the structure check named already
                    if pointer != "#" and any(pointer.startswith(p) or p.startswith(pointer) for p in structural):
                        continue
                    problems.append(problem)
            except (Unresolvable, RecursionError):
                raise
            except Exception as error:  # a document broken enough to trip the library's walk
                if not problems:
                    problems.append(f"#: cannot be validated ({type(error).__name__})")
    except RecursionError:
        problems.append(
            "the document is nested too deeply to validate (a $ref cycle through allOf, or $refs that only refer to each other?)"
        )
    if problems:
        raise OpenApiError(list(dict.fromkeys(problems)))


@functools.cache
def _spec_validator(version: str) -> Any:
    """openapi-spec-validator's validator for 3.0 or 3.1, whose schema checks remember which
    schema of the document an error is about (the library's errors for a schema say only where
    inside it)."""
    from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator
    from openapi_spec_validator.validation import keywords

    base = OpenAPIV31SpecValidator if version == "3.1" else OpenAPIV30SpecValidator
    schema_keyword = base.keyword_validators["schema"]

    class LocatedSchemaValidator(schema_keyword):  # type: ignore[misc, valid-type]
        def __call__(self, schema: Any, require_properties: bool = True, meta_checked: bool = False) -> Iterator[Any]:
            for error in super().__call__(schema, require_properties, meta_checked):
                if getattr(error, "citygate_location", None) is None:
                    error.citygate_location = tuple(schema.parts)
                yield error

    assert issubclass(LocatedSchemaValidator, keywords.SchemaValidator)
    return type(
        f"Located{base.__name__}",
        (base,),
        {"keyword_validators": {**base.keyword_validators, "schema": LocatedSchemaValidator}},
    )


def _problem(error: Any) -> str:
    """One line for a validation error: where (a JSON pointer) and what, the most specific cause
    of a `oneOf` failure rather than "not valid under any of the given schemas"."""
    cause = error
    while getattr(cause, "context", None):
        leaves = [c for c in cause.context if "'$ref' is a required property" not in c.message]
        if not leaves:
            break
        cause = max(leaves, key=lambda c: len(c.absolute_path))
    located = list(getattr(error, "citygate_location", None) or ())
    path = (
        located
        + list(error.absolute_path)
        + [p for p in cause.absolute_path if cause is not error][len(error.absolute_path) :]
    )
    pointer = "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path) if path else "#"
    message = cause.message if len(cause.message) <= 300 else cause.message[:297] + "..."
    return f"{pointer}: {message}"


def _references(document: Any) -> Iterator[tuple[str, str]]:
    """Every `$ref` string in the document with the JSON pointer where it sits."""
    stack: list[tuple[Any, str]] = [(document, "#")]
    while stack:
        node, pointer = stack.pop()
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str):
                yield pointer, reference
            for key, value in node.items():
                if isinstance(value, (dict, list)):
                    stack.append((value, f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"))
        elif isinstance(node, list):
            stack.extend(
                (value, f"{pointer}/{index}") for index, value in enumerate(node) if isinstance(value, (dict, list))
            )


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    paths = document.get("paths")
    if not isinstance(paths, dict):
        return
    for path, item in paths.items():
        if not isinstance(item, dict):
            continue
        for method in _METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                yield str(path), method, item, operation


# -- names -----------------------------------------------------------------------------------


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [word for word in re.split(r"[^0-9A-Za-z]+", spaced) if word]


def camel_case(name: str) -> str:
    """A GraphQL field name for a JSON name: `first_name` -> `firstName`; camelCase kept."""
    if _GRAPHQL_NAME.match(name) and "_" not in name and name[:1].islower():
        return name
    words = _words(name)
    if not words:
        return "field"
    first = words[0].lower() if words[0].isupper() or len(words) > 1 else words[0][:1].lower() + words[0][1:]
    rest = "".join(word.capitalize() if word.isupper() else word[:1].upper() + word[1:] for word in words[1:])
    result = first + rest
    return result if not result[0].isdigit() else "_" + result


def pascal_case(name: str) -> str:
    words = _words(name)
    result = "".join(
        word.capitalize() if word.isupper() and len(word) > 1 else word[:1].upper() + word[1:] for word in words
    )
    if not result:
        return "Type"
    return result if not result[0].isdigit() else "T" + result


def _string(value: str) -> str:
    """A GraphQL string literal (JSON's escapes are GraphQL's)."""
    return json.dumps(value, ensure_ascii=False)


def _description(text: Any) -> str | None:
    if not isinstance(text, str) or not text.strip():
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_DESCRIPTION else flat[: _MAX_DESCRIPTION - 3] + "..."


def _looks_personal(json_name: str) -> bool:
    flat = re.sub(r"[^0-9a-z]", "", json_name.lower())
    return bool(_PERSONAL.search(flat) or _PERSON_ID.search(flat))


# -- shapes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scalar:
    name: str  # String, Int, Float, Boolean, ID, JSON


@dataclass(eq=False)
class _Enum:
    name: str
    values: list[str]
    description: str | None = None


@dataclass(frozen=True)
class _List:
    item: _Type
    item_nullable: bool = True


@dataclass
class _Property:
    json_name: str
    name: str
    type: _Type
    non_null: bool
    description: str | None
    note: str | None = None  # an end-of-line comment
    default: str | None = None  # an input field's default, as a GraphQL value


@dataclass(eq=False)  # types may refer to themselves: compared by identity
class _Object:
    name: str
    is_input: bool
    description: str | None = None
    properties: list[_Property] = field(default_factory=list)
    key: str | None = None  # entity key field (GraphQL name)
    entity_path: str | None = None  # the type-level @connect's URL template

    def leaf_properties(self) -> list[_Property]:
        return [p for p in self.properties if not isinstance(_unwrap(p.type), _Object)]


_Type = _Scalar | _Enum | _List | _Object
_JSON = _Scalar("JSON")


def _unwrap(shape: _Type) -> _Type:
    while isinstance(shape, _List):
        shape = shape.item
    return shape


def _type_string(shape: _Type, non_null: bool) -> str:
    if isinstance(shape, _List):
        inner = _type_string(shape.item, not shape.item_nullable)
        text = f"[{inner}]"
    else:
        text = shape.name
    return text + "!" if non_null else text


def _names_an_id(json_name: str) -> bool:
    """`id`, `ownerId`, `owner_id`, `ownerID`: a property naming a thing by its identifier."""
    return json_name.lower() == "id" or bool(re.search(r"[a-z0-9](Id|ID|_id|_ID|-id)$", json_name))


def _integer_or_string(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    declared = schema.get("type")
    kinds = [k for k in declared if k != "null"] if isinstance(declared, list) else [declared]
    return len(kinds) == 1 and kinds[0] in ("string", "integer") and "enum" not in schema


def _short_json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return " ".join((text if len(text) <= 40 else text[:37] + "...").split())


def _default_dropped(value: Any, shape: _Type) -> str:
    if shape == _JSON:
        return f"default {_short_json(value)} not kept: the API applies it"
    return f"default {_short_json(value)} does not fit {_type_string(shape, False)}: not kept"


def graphql_value(value: Any, shape: _Type) -> str | None:
    """`value` (an OpenAPI `default`) as a GraphQL value of `shape`; None when it is not one."""
    if value is None:
        return "null"
    if isinstance(shape, _List):
        items = value if isinstance(value, list) else [value]  # a single value is a list of one (input coercion)
        written = [graphql_value(item, shape.item) for item in items]
        if any(w is None or (w == "null" and not shape.item_nullable) for w in written):
            return None
        return "[" + ", ".join(w for w in written if w is not None) + "]"
    if isinstance(shape, _Enum):
        return value if isinstance(value, str) and value in shape.values else None
    if not isinstance(shape, _Scalar):
        return None  # an input object's default: rare, and left to the API
    if shape.name == "Boolean":
        return ("true" if value else "false") if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if shape.name == "Int":
        return str(value) if isinstance(value, int) and -(2**31) <= value < 2**31 else None
    if shape.name == "Float":
        return (
            json.dumps(value)
            if isinstance(value, (int, float)) and value == value and abs(value) != float("inf")
            else None
        )
    if shape.name == "String":
        return _string(value) if isinstance(value, str) else None
    if shape.name == "ID":
        if isinstance(value, str):
            return _string(value)
        return str(value) if isinstance(value, int) else None
    return None  # JSON: a literal of any shape would do, but the API applies its own default


class _Drafter:
    def __init__(self, document: dict[str, Any], source: str, type_prefix: str = "") -> None:
        from jsonschema_path import SchemaPath

        self.document = document
        self.source = source
        self.type_prefix = type_prefix
        root = SchemaPath.from_dict(document, handlers={})
        with root.resolve() as resolved:
            self.resolver = resolved.resolver
        self.types: dict[str, _Object | _Enum] = {}  # by GraphQL name, in order of creation
        self.named: dict[tuple[str, bool], _Object | _Enum | _Scalar] = {}  # (component, is_input)
        self.enums_by_values: dict[tuple[str, ...], _Enum] = {}
        self.uses_json = False
        self.skipped: list[str] = []

    # names are unique across types; a clash gets a number
    def _type_name(self, wanted: str) -> str:
        base = self.type_prefix + pascal_case(wanted)
        if base in _RESERVED_TYPES:
            base += "Object"
        name, counter = base, 2
        while name in self.types:
            name, counter = f"{base}{counter}", counter + 1
        return name

    def stem(self, type_name: str) -> str:
        """A drafted type's name without the prefix: what names its nested types."""
        return type_name[len(self.type_prefix) :]

    def deref(self, node: Any, resolver: Any) -> tuple[Any, Any, str | None]:
        component = None
        for _ in range(_MAX_REF_HOPS):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
                return node, resolver, component
            reference = node["$ref"]
            match = re.search(r"#/components/schemas/([^/]+)$", reference)
            if match:
                component = match[1].replace("~1", "/").replace("~0", "~")
            resolved = resolver.lookup(reference)
            node, resolver = resolved.contents, resolved.resolver
        raise OpenApiError([f"a chain of more than {_MAX_REF_HOPS} $ref does not end"])

    def shape(self, node: Any, resolver: Any, hint: str, *, is_input: bool, depth: int = 0) -> tuple[_Type, bool]:
        """The GraphQL shape of a schema, and whether the schema itself allows null."""
        node, resolver, component = self.deref(node, resolver)
        if not isinstance(node, dict) or depth > MAX_SCHEMA_DEPTH:
            self.uses_json = True
            return _JSON, True
        nullable = node.get("nullable") is True
        declared = node.get("type")
        if isinstance(declared, list):
            nullable = nullable or "null" in declared
            kinds = [kind for kind in declared if kind != "null"]
            declared = kinds[0] if len(kinds) == 1 else ("multiple" if kinds else None)
        if declared == "null":
            self.uses_json = True
            return _JSON, True
        if component is not None and (component, is_input) in self.named:
            return self.named[(component, is_input)], nullable
        name_hint = (component + ("Input" if is_input else "")) if component else hint
        if "allOf" in node and isinstance(node["allOf"], list):
            return self._all_of(node, resolver, name_hint, component, is_input, depth), nullable
        for combinator in ("oneOf", "anyOf"):
            if isinstance(node.get(combinator), list):
                shape, branch_nullable = self._one_of(node[combinator], resolver, name_hint, is_input, depth)
                return shape, nullable or branch_nullable
        if isinstance(node.get("enum"), list):
            values = node["enum"]
            return self._enum(values, name_hint, component, declared, node), nullable or None in values
        if declared == "array" or (declared is None and "items" in node):
            item, item_nullable = self.shape(node.get("items", {}), resolver, hint, is_input=is_input, depth=depth + 1)
            return _List(item, item_nullable), nullable
        if declared == "object" or (declared is None and "properties" in node):
            return self._object([(node, resolver)], name_hint, component, is_input, depth), nullable
        scalar = {"string": "String", "boolean": "Boolean", "number": "Float"}.get(declared or "")
        if declared == "integer":
            scalar = "Float" if node.get("format") == "int64" else "Int"
        if scalar is None:
            self.uses_json = True
            return _JSON, nullable or declared is None
        return _Scalar(scalar), nullable

    def _all_of(
        self, node: dict, resolver: Any, name_hint: str, component: str | None, is_input: bool, depth: int
    ) -> _Type:
        parts: list[tuple[dict, Any]] = [({k: v for k, v in node.items() if k != "allOf"}, resolver)]
        pending = [(branch, resolver) for branch in node["allOf"]]
        seen: set[int] = set()
        while pending:
            branch, branch_resolver = pending.pop(0)
            branch, branch_resolver, _ = self.deref(branch, branch_resolver)
            if not isinstance(branch, dict) or id(branch) in seen or len(seen) > MAX_SCHEMA_DEPTH:
                continue  # an allOf cycle adds nothing the first visit did not
            seen.add(id(branch))
            parts.append(({k: v for k, v in branch.items() if k != "allOf"}, branch_resolver))
            pending.extend((inner, branch_resolver) for inner in branch.get("allOf") or [])
        if not any("properties" in part or part.get("type") == "object" for part, _ in parts):
            merged: dict[str, Any] = {}
            for part, _ in parts:
                merged.update(part)
            return self.shape(merged, resolver, name_hint, is_input=is_input, depth=depth + 1)[0]
        return self._object(parts, name_hint, component, is_input, depth)

    def _one_of(self, branches: list, resolver: Any, name_hint: str, is_input: bool, depth: int) -> tuple[_Type, bool]:
        nullable = False
        kept = []
        for branch in branches:
            target, _, _ = self.deref(branch, resolver)
            if isinstance(target, dict) and (target.get("type") == "null" or target.get("enum") == [None]):
                nullable = True
            else:
                kept.append(branch)
        if len(kept) == 1:
            shape, branch_nullable = self.shape(kept[0], resolver, name_hint, is_input=is_input, depth=depth + 1)
            return shape, nullable or branch_nullable
        scalars = set()
        for branch in kept:
            target, _, _ = self.deref(branch, resolver)
            declared = target.get("type") if isinstance(target, dict) else None
            if declared not in ("string", "integer", "number", "boolean") or "enum" in target:
                scalars = set()
                break
            scalars.add({"string": "String", "integer": "Int", "number": "Float", "boolean": "Boolean"}[declared])
        if len(scalars) == 1:
            return _Scalar(scalars.pop()), nullable
        if scalars == {"Int", "Float"}:
            return _Scalar("Float"), nullable
        self.uses_json = True
        return _JSON, True

    def _enum(self, values: list, name_hint: str, component: str | None, declared: Any, node: dict) -> _Type:
        strings = [v for v in values if v is not None]
        if strings and all(
            isinstance(v, str) and _GRAPHQL_NAME.match(v) and v not in ("true", "false", "null") for v in strings
        ):
            unique = list(dict.fromkeys(strings))
            existing = self.enums_by_values.get(tuple(unique))
            if existing is not None and component is None:
                return existing
            enum = _Enum(
                self._type_name(component or name_hint), unique, _description(node.get("description"))
            )  # one type, in and out
            self.types[enum.name] = enum
            self.enums_by_values.setdefault(tuple(unique), enum)
            if component is not None:
                self.named[(component, False)] = self.named[(component, True)] = enum
            return enum
        if strings and all(isinstance(v, bool) for v in strings):
            return _Scalar("Boolean")
        if strings and all(isinstance(v, int) and not isinstance(v, bool) for v in strings):
            return _Scalar("Int")
        if all(isinstance(v, str) for v in strings) or declared == "string":
            return _Scalar("String")
        self.uses_json = True
        return _JSON

    def _object(
        self, parts: list[tuple[dict, Any]], name_hint: str, component: str | None, is_input: bool, depth: int
    ) -> _Type:
        properties: dict[str, tuple[Any, Any]] = {}
        required: set[str] = set()
        description = None
        for part, resolver in parts:
            for json_name, schema in (part.get("properties") or {}).items():
                properties[str(json_name)] = (schema, resolver)
            required.update(r for r in part.get("required") or [] if isinstance(r, str))
            description = description or _description(part.get("description"))
        if not properties:  # a free-form object or a map: no fields to name
            self.uses_json = True
            if component is not None:
                self.named[(component, is_input)] = _JSON
            return _JSON
        obj = _Object(self._type_name(name_hint), is_input, description)
        self.types[obj.name] = obj
        if component is not None:
            self.named[(component, is_input)] = obj  # before the fields: a type may refer to itself
        taken: set[str] = set()
        for json_name, (schema, resolver) in properties.items():
            target, _, _ = self.deref(schema, resolver)
            if isinstance(target, dict) and target.get("readOnly" if is_input else "writeOnly") is True:
                continue
            name = camel_case(json_name)
            while name in taken:
                name += "_"
            taken.add(name)
            shape, nullable = self.shape(
                schema, resolver, f"{self.stem(obj.name)}{pascal_case(json_name)}", is_input=is_input, depth=depth + 1
            )
            if _names_an_id(json_name) and isinstance(shape, _Scalar) and _integer_or_string(target):
                shape = _Scalar("ID")
            non_null = json_name in required and not nullable
            if is_input and isinstance(_unwrap(shape), _Object):
                non_null = False  # no non-null cycle between input types; the API still checks
            note = None
            if not is_input and _looks_personal(json_name):
                note = "TODO personal?"
            elif isinstance(target, dict) and target.get("format") == "int64" and shape == _Scalar("Float"):
                note = "int64: Float holds it (Int is 32-bit)"
            default = None
            if is_input and isinstance(target, dict) and "default" in target:
                default = graphql_value(target["default"], shape)
                if default == "null":
                    default = None
                elif default is None:
                    note = _default_dropped(target["default"], shape)
            obj.properties.append(
                _Property(
                    json_name,
                    name,
                    shape,
                    non_null,
                    _description(target.get("description") if isinstance(target, dict) else None),
                    note,
                    default,
                )
            )
        if not obj.properties:
            del self.types[obj.name]
            self.uses_json = True
            if component is not None:
                self.named[(component, is_input)] = _JSON
            return _JSON
        return obj


# -- selections ------------------------------------------------------------------------------


def _key(prop: _Property) -> str:
    if prop.name == prop.json_name:
        return prop.name
    source = prop.json_name if _SELECTION_KEY.match(prop.json_name) else _string(prop.json_name)
    return f"{prop.name}: {source}"


def selection_lines(obj: _Object, stack: tuple[str, ...] = (), depth: int = 0) -> list[str]:
    """The mapping for an object type: every field, renamed where the JSON name differs, nested
    objects expanded; a type recurring inside itself gets its leaf fields only."""
    stack = (*stack, obj.name)
    lines: list[str] = []
    for prop in obj.properties:
        inner = _unwrap(prop.type)
        if not isinstance(inner, _Object):
            lines.append(_key(prop))
            continue
        if inner.name in stack or depth + 1 >= MAX_SELECTION_DEPTH:
            nested = [_key(leaf) for leaf in inner.leaf_properties()]
        else:
            nested = selection_lines(inner, stack, depth + 1)
        if nested:
            lines.append(f"{_key(prop)} {{")
            lines.extend("  " + line for line in nested)
            lines.append("}")
    return lines


def _renamed(obj: _Object, stack: tuple[str, ...] = ()) -> bool:
    for prop in obj.properties:
        if prop.name != prop.json_name:
            return True
        inner = _unwrap(prop.type)
        if isinstance(inner, _Object) and inner.name not in stack and _renamed(inner, (*stack, obj.name)):
            return True
    return False


def _body_lines(obj: _Object, stack: tuple[str, ...] = (), depth: int = 0) -> list[str]:
    """The JSON body from an input object: the API's names from the GraphQL ones."""
    stack = (*stack, obj.name)
    lines: list[str] = []
    for prop in obj.properties:
        key = prop.json_name if _SELECTION_KEY.match(prop.json_name) else _string(prop.json_name)
        head = prop.name if key == prop.name else f"{key}: {prop.name}"
        inner = _unwrap(prop.type)
        if isinstance(inner, _Object) and inner.name not in stack and depth + 1 < MAX_SELECTION_DEPTH:
            nested = _body_lines(inner, stack, depth + 1)
            lines.extend([f"{head} {{", *("  " + line for line in nested), "}"])
        else:
            lines.append(head)
    return lines


def _block(lines: list[str], indent: str) -> str:
    body = "\n".join(indent + "  " + line for line in lines)
    return f'"""\n{body}\n{indent}"""'


# -- the draft -------------------------------------------------------------------------------


@dataclass
class _Argument:
    name: str
    type: str
    description: str | None
    default: str | None = None


@dataclass
class _Operation:
    root: str  # Query or Mutation
    name: str
    method: str
    path: str
    url: str
    arguments: list[_Argument]
    result: str  # the field's type
    selection: list[str]
    body: list[str] | None
    description: str | None
    deprecated: bool
    notes: list[str]


def _base_url(document: dict[str, Any], location: str | None, override: str | None) -> str:
    if override:
        url = override
    else:
        servers = document.get("servers") or [{"url": "/"}]
        server = servers[0] if isinstance(servers[0], dict) else {"url": "/"}
        url = str(server.get("url", "/"))
        for variable, spec in (server.get("variables") or {}).items():
            if isinstance(spec, dict) and "default" in spec:
                url = url.replace("{" + str(variable) + "}", str(spec["default"]))
        if location and not urlsplit(url).scheme:
            url = urljoin(location, url)  # relative to where the document was read (OpenAPI's rule)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "{" in url:
        raise OpenApiError(
            [f"the API's base URL {url!r} (servers[0]) is not an absolute http(s) URL: give it with --url"]
        )
    return url.rstrip("/")


def _json_media(content: Any) -> Any:
    """The schema of the JSON media type in an OpenAPI `content` map, or None."""
    if not isinstance(content, dict):
        return None
    for media, spec in content.items():
        media_type = str(media).split(";")[0].strip().lower()
        if (media_type == "application/json" or media_type.endswith("+json") or media_type == "*/*") and isinstance(
            spec, dict
        ):
            return spec.get("schema", {})
    return None


class _Sink:
    """Collects the parameters and their URL template of one operation."""

    def __init__(self) -> None:
        self.arguments: list[_Argument] = []
        self.by_parameter: dict[str, str] = {}
        self.query: list[str] = []


def draft_connector(
    document: dict[str, Any],
    *,
    name: str,
    owner: str,
    timeout: float = 5,
    location: str | None = None,
    base_url: str | None = None,
    type_prefix: str | None = None,
) -> ConnectorDraft:
    """A connector folder's manifest and SDL from a validated document."""
    for what, value in (("name", name), ("owner", owner)):
        if not re.match(r"^[a-z][a-z0-9-]{0,62}$", value):
            raise OpenApiError(
                [f"the connector's {what} must be lowercase letters, digits and dashes, starting with a letter"]
            )
    if type_prefix and not re.match(r"^[A-Za-z][A-Za-z0-9]{0,30}$", type_prefix):
        raise OpenApiError(["the type prefix must be letters and digits, starting with a letter (e.g. Voisinage)"])
    url = _base_url(document, location, base_url)
    source = re.sub(r"[^A-Za-z0-9_]", "_", name)
    drafter = _Drafter(document, source, pascal_case(type_prefix) if type_prefix else "")
    operations: list[_Operation] = []
    used = {"Query": set(), "Mutation": set()}  # type: dict[str, set[str]]
    for path, method, item, operation in _operations(document):
        drafted = _draft_operation(drafter, path, method, item, operation, used)
        if drafted is not None:
            operations.append(drafted)
    entities = _entities(drafter, document)
    sdl = _render(drafter, document, url, operations)
    manifest = _manifest(document, name=name, owner=owner, url=url, timeout=timeout)
    return ConnectorDraft(manifest, sdl, url, len(operations), entities, list(drafter.skipped))


def _operation_name(method: str, path: str, operation: dict[str, Any]) -> str:
    operation_id = operation.get("operationId")
    if isinstance(operation_id, str) and _words(operation_id):
        return camel_case(operation_id)
    words = [method]
    for segment in path.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            words += ["by", segment[1:-1]]
        elif segment:
            words.append(segment)
    return camel_case("_".join(words))


def _draft_operation(
    drafter: _Drafter, path: str, method: str, item: dict, operation: dict, used: dict[str, set[str]]
) -> _Operation | None:
    resolver = drafter.resolver
    where = f"{method.upper()} {path}"
    root = "Query" if method == "get" else "Mutation"
    name = _operation_name(method, path, operation)
    base = name
    counter = 2
    while name in used[root]:
        name, counter = f"{base}{counter}", counter + 1
    notes: list[str] = []
    sink = _Sink()
    parameters: dict[tuple[str, str], dict] = {}
    for raw in [*(item.get("parameters") or []), *(operation.get("parameters") or [])]:
        parameter, _, _ = drafter.deref(raw, resolver)
        if isinstance(parameter, dict) and isinstance(parameter.get("name"), str):
            parameters[(parameter["name"], str(parameter.get("in")))] = parameter  # the operation's wins
    taken: set[str] = set()
    for (parameter_name, location), parameter in parameters.items():
        if location not in ("path", "query"):
            notes.append(f"{location} parameter {parameter_name!r} not mapped")
            continue
        if location == "query" and _UNWRITABLE_QUERY_NAME.search(parameter_name):
            notes.append(f"query parameter {parameter_name!r} cannot be written in a URL template: not mapped")
            continue
        argument = camel_case(parameter_name)
        while argument in taken:
            argument += "_"
        taken.add(argument)
        shape, _ = drafter.shape(
            parameter.get("schema", {}), resolver, f"{name}{pascal_case(parameter_name)}", is_input=True
        )
        if isinstance(_unwrap(shape), _Object):
            notes.append(f"{location} parameter {parameter_name!r} is an object: not mapped")
            taken.discard(argument)
            continue
        if (
            isinstance(shape, _Scalar)
            and shape.name in ("Float", "String", "Int")
            and (argument == "id" or argument.endswith("Id"))
        ):
            shape = _Scalar("ID")
        elif isinstance(shape, _Scalar) and shape.name == "Float" and _format(drafter, parameter) == "int64":
            shape = _Scalar("Int")  # a Float argument would be written "5.0" into the URL
        required = location == "path" or parameter.get("required") is True
        schema_node, _, _ = drafter.deref(parameter.get("schema", {}), resolver)
        default = None
        if isinstance(schema_node, dict) and "default" in schema_node:
            default = graphql_value(schema_node["default"], shape)
            if default == "null":
                default = None  # no default: what an absent argument is anyway
            elif default is None:
                notes.append(
                    f"{location} parameter {parameter_name!r}: {_default_dropped(schema_node['default'], shape)}"
                )
                default = None
        sink.arguments.append(
            _Argument(argument, _type_string(shape, required), _description(parameter.get("description")), default)
        )
        sink.by_parameter[parameter_name] = argument
        if location == "query":
            sink.query.append(f"{parameter_name}={{$args.{argument}}}")  # the engine percent-encodes names and values
    template = re.sub(r"\{([^}]+)\}", lambda m: "{$args." + sink.by_parameter.get(m[1], camel_case(m[1])) + "}", path)
    if sink.query:
        template += "?" + "&".join(sink.query)
    body_lines: list[str] | None = None
    request_body, _, _ = drafter.deref(operation.get("requestBody"), resolver)
    if isinstance(request_body, dict):
        schema = _json_media(request_body.get("content"))
        if schema is None:
            kinds = ", ".join(str(k) for k in (request_body.get("content") or {}))
            drafter.skipped.append(f"{where}: its request body is not JSON ({kinds}): left out")
            return None
        shape, _ = drafter.shape(schema, resolver, f"{name}Input", is_input=True)
        input_name = "input"
        while input_name in taken:
            input_name += "_"
        sink.arguments.append(
            _Argument(
                input_name,
                _type_string(shape, request_body.get("required") is True),
                _description(request_body.get("description")),
            )
        )
        inner = _unwrap(shape)
        if isinstance(inner, _Object) and _renamed(inner):
            body_lines = [f"$args.{input_name} {{", *("  " + line for line in _body_lines(inner)), "}"]
        else:
            body_lines = [f"$args.{input_name}"]
    result, selection = _result(drafter, operation, name)
    if result is None:
        if root == "Query":
            drafter.skipped.append(f"{where}: no JSON answer to map: left out")
            return None
        result, selection = "Boolean", ["$(true)"]
    used[root].add(name)
    summary = _description(operation.get("summary")) or _description(operation.get("description"))
    return _Operation(
        root,
        name,
        method,
        path,
        template,
        sink.arguments,
        result,
        selection,
        body_lines,
        summary,
        operation.get("deprecated") is True,
        notes,
    )


def _format(drafter: _Drafter, parameter: dict) -> Any:
    schema, _, _ = drafter.deref(parameter.get("schema", {}), drafter.resolver)
    return schema.get("format") if isinstance(schema, dict) else None


def _success(operation: dict) -> Any:
    responses = operation.get("responses") or {}
    for status in ("200", "201", *sorted(str(s) for s in responses if str(s).startswith("2")), "2XX", "default"):
        if status in responses:
            return responses[status]
        if status.isdigit() and int(status) in responses:  # YAML reads 200 as a number
            return responses[int(status)]
    return None


def _result(drafter: _Drafter, operation: dict, name: str) -> tuple[str | None, list[str]]:
    response, _, _ = drafter.deref(_success(operation), drafter.resolver)
    schema = _json_media(response.get("content")) if isinstance(response, dict) else None
    if schema is None:
        return None, []
    shape, _ = drafter.shape(schema, drafter.resolver, f"{name}Result", is_input=False)
    inner = _unwrap(shape)
    selection = selection_lines(inner) if isinstance(inner, _Object) else ["$"]
    if not selection:
        return None, []
    return _type_string(shape, False), selection


def _entities(drafter: _Drafter, document: dict) -> list[str]:
    """Types answered by `GET /things/{param}`: an entity with a type-level @connect."""
    entities = []
    for path, method, item, operation in _operations(document):
        match = re.match(r"^(?P<prefix>[^{}]*)\{(?P<param>[^{}]+)\}/?$", path)
        if method != "get" or not match:
            continue
        parameters = [
            drafter.deref(p, drafter.resolver)[0]
            for p in [*(item.get("parameters") or []), *(operation.get("parameters") or [])]
        ]
        if any(isinstance(p, dict) and p.get("in") == "query" and p.get("required") is True for p in parameters):
            continue
        response, _, _ = drafter.deref(_success(operation), drafter.resolver)
        schema = _json_media(response.get("content")) if isinstance(response, dict) else None
        if schema is None:
            continue
        _, _, component = drafter.deref(schema, drafter.resolver)
        obj = drafter.named.get((component, False)) if component else None
        if not isinstance(obj, _Object) or obj.entity_path is not None:
            continue
        param = match["param"]
        key = next(
            (p for p in obj.properties if p.json_name == param and not isinstance(p.type, (_List, _Object))), None
        )
        thing = drafter.stem(obj.name).lower()
        if key is None and param.lower().replace("_", "").replace("-", "") in ("id", f"{thing}id"):
            key = next((p for p in obj.properties if p.json_name == "id"), None)
        if key is None:
            continue
        obj.key = key.name
        obj.entity_path = match["prefix"] + "{$this." + key.name + "}"
        entities.append(obj.name)
    return entities


def _render(drafter: _Drafter, document: dict, url: str, operations: list[_Operation]) -> str:
    info = document.get("info") or {}
    title = " ".join(str(info.get("title", "")).split()) or "an API"
    out = [
        f"# {DRAFT_NOTICE}",
        "# "
        + " ".join(
            f"Drafted by `citygate connector import-openapi` from {title!r} {info.get('version', '')} (OpenAPI {document.get('openapi')}).".split()
        ),
        "# Review every type and mapping, then: citygate connector validate <folder>; citygate connector test <folder> --query '{ ... }'",
    ]
    if drafter.skipped:
        out.append("# Not drafted:")
        out.extend(f"#   - {' '.join(note.split())}" for note in drafter.skipped)
    out += [
        "extend schema",
        f'  @link(url: "{FEDERATION_LINK}", import: ["@key", "@composeDirective"])',
        _PRIVACY_HEADER,
        f'  @link(url: "{CONNECT_LINK}", import: ["@connect", "@source"])',
        f"  @source(name: {_string(drafter.source)}, http: {{baseURL: {_string(url)}}})",
        "",
        _PRIVACY_DIRECTIVES,
    ]
    if drafter.uses_json:
        out += [
            '"Any JSON value (a oneOf/anyOf of objects, or a free-form object, in the OpenAPI document)."',
            "scalar JSON",
            "",
        ]
    for root in ("Query", "Mutation"):
        fields = [op for op in operations if op.root == root]
        if not fields:
            continue
        out.append(f"type {root} {{")
        for op in fields:
            out.extend(_render_operation(drafter, op))
        out += ["}", ""]
    for shape in drafter.types.values():
        out.extend(_render_type(drafter, shape))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _render_operation(drafter: _Drafter, op: _Operation) -> list[str]:
    comment = f"{op.method.upper()} {op.path}" + (f" ({'; '.join(op.notes)})" if op.notes else "")
    lines = ["  # " + " ".join(comment.split())]  # one line whatever the document's names hold
    if op.description:
        lines.append(f"  {_string(op.description)}")
    if op.arguments:
        arguments = ", ".join(
            f"{a.name}: {a.type}" + (f" = {a.default}" if a.default is not None else "") for a in op.arguments
        )
        head = f"  {op.name}({arguments}): {op.result}"
    else:
        head = f"  {op.name}: {op.result}"
    if op.deprecated:
        head += " @deprecated"
    lines.append(head)
    lines += ["    @connect(", f"      source: {_string(drafter.source)}"]
    if op.body is None:
        lines.append(f"      http: {{{op.method.upper()}: {_string(op.url)}}}")
    else:
        body = _string(op.body[0]) if len(op.body) == 1 else _block(op.body, "        ")
        lines += [
            "      http: {",
            f"        {op.method.upper()}: {_string(op.url)}",
            f"        body: {body}",
            "      }",
        ]
    lines += [f"      selection: {_block(op.selection, '      ')}", "    )"]
    return lines


def _render_type(drafter: _Drafter, shape: _Object | _Enum) -> list[str]:
    lines = [_string(shape.description)] if shape.description else []
    if isinstance(shape, _Enum):
        lines.append(f"enum {shape.name} {{")
        lines.extend(f"  {value}" for value in shape.values)
        lines.append("}")
        return lines
    keyword = "input" if shape.is_input else "type"
    head = f"{keyword} {shape.name}"
    if shape.key is not None and shape.entity_path is not None:
        head += f' @key(fields: "{shape.key}")\n'
        head += "  @connect(\n"
        head += f"    source: {_string(drafter.source)}\n"
        head += f"    http: {{GET: {_string(shape.entity_path)}}}\n"
        head += f"    selection: {_block(selection_lines(shape), '    ')}\n"
        head += "  )\n"
        lines.append(head + "{")
    else:
        lines.append(head + " {")
    for prop in shape.properties:
        if prop.description:
            lines.append(f"  {_string(prop.description)}")
        line = f"  {prop.name}: {_type_string(prop.type, prop.non_null)}"
        if prop.default is not None:
            line += f" = {prop.default}"
        if prop.note:
            line += f"  # {prop.note}"
        lines.append(line)
    lines.append("}")
    return lines


def _manifest(document: dict, *, name: str, owner: str, url: str, timeout: float) -> str:
    lines = [
        "# Drafted by `citygate connector import-openapi`: review schema.graphql (personal data needs",
        "# @personal/@subject), then `citygate connector validate` and `citygate connector register`.",
        f"name: {name}",
        f"owner: {owner}",
        "kind: rest",
        f"url: {json.dumps(url)}",
        f"timeout: {timeout:g}",
        "sdl_file: schema.graphql",
    ]
    schemes = ((document.get("components") or {}).get("securitySchemes") or {}).items()
    for scheme_name, scheme in schemes:
        if not isinstance(scheme, dict):
            continue
        variable = re.sub(r"[^A-Z0-9_]", "_", f"{name}_{scheme_name}".upper())
        if scheme.get("type") == "apiKey" and scheme.get("in") == "header" and isinstance(scheme.get("name"), str):
            lines.append(
                f'# headers: {{{json.dumps(scheme["name"])}: "${{{variable}}}"}}   # security scheme {scheme_name!r}: set {variable} in your shell'
            )
        elif scheme.get("type") == "http" and str(scheme.get("scheme", "")).lower() == "bearer":
            lines.append(
                f'# headers: {{authorization: "Bearer ${{{variable}}}"}}   # security scheme {scheme_name!r}: set {variable} in your shell'
            )
    return "\n".join(lines) + "\n"


def import_openapi(
    data: bytes | str,
    *,
    name: str,
    owner: str,
    timeout: float = 5,
    location: str | None = None,
    base_url: str | None = None,
    type_prefix: str | None = None,
) -> ConnectorDraft:
    """Read, validate and draft: raises OpenApiError listing every problem."""
    document = load_document(data)
    validate_document(document)
    try:
        return draft_connector(
            document,
            name=name,
            owner=owner,
            timeout=timeout,
            location=location,
            base_url=base_url,
            type_prefix=type_prefix,
        )
    except RecursionError:
        raise OpenApiError(["the document's schemas are nested too deeply to draft"]) from None
