"""The residents' export (GDPR arts. 15 and 20): everything the graph holds about the signed-in
resident, from every connector, in one JSON document.

Nothing here fetches anything itself. An operation is generated from the served supergraph (the
resident's entity reached through its root field, every field of it and of the types with a
subject that hang off it) and run through the Engine like any client's, with the resident as the
requester: subgraphs and REST connectors are reached the same way, every value goes through the
privacy guard (the resident's own values are allowed as `self`; anyone else's are decided, and
masked, as for any requester) and every flow to a partner is decided and audited as usual. The
answer is then filtered: an object enters the document only when its subject is the resident, so
nothing of anyone else does, whatever the guard let through.

The document (`format: citygate-export/1`): `connectors.<name>.records`, one record per object of
the resident per connector, with its type, its path in the generated operation and its values,
each with its field coordinate and data category (null: declared non-personal). A field whose
type has a subject of its own (`Reservation.dinner`) is a link: its value is a reference to the
linked object (its type and its non-personal key fields); the linked object is a record of its own
if it is the resident's. `incomplete` lists what could not be fetched (path, connector, code).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    Undefined,
    get_named_type,
)

FORMAT = "citygate-export/1"
MAX_DEPTH = 6  # object levels below the resident: deep enough for every demo path, bounded for any supergraph
EXPORT_PURPOSE = "export"
EXPORT_BASIS = "self:export"


class ExportUnavailable(Exception):
    """The served supergraph has no entity for residents, or no root field to reach one."""


@dataclass(slots=True)
class Selection:
    """One object position of the generated operation: the fields selected on each concrete type."""

    # concrete type -> field name -> Selection of the object below it (None: a leaf)
    fields: dict[str, dict[str, Selection | None]] = field(default_factory=dict)
    # only what names the object (a link back to a type already on the path): the parent's
    # value refers to it, it is no record of its own
    reference: bool = False


@dataclass(frozen=True, slots=True)
class ExportOperation:
    query: str
    root_field: str
    argument: str
    resident_type: str
    selection: Selection


def _unwrap(gql_type) -> Any:
    while isinstance(gql_type, GraphQLNonNull | GraphQLList):
        gql_type = gql_type.of_type
    return gql_type


def _is_leaf(named) -> bool:
    return isinstance(named, GraphQLScalarType | GraphQLEnumType)


def build_export_operation(model, privacy, excluded_subgraphs: frozenset[str] = frozenset()) -> ExportOperation:
    """The operation that reads one resident's data from the supergraph `model` (a SupergraphModel)
    with its annotations `privacy` (a PrivacySchema). The resident's type is the object type whose
    subject is one of its own key fields (`Resident @subject(field: "id") @key(fields: "id")`),
    reached through a root query field whose only required argument is that key.
    `excluded_subgraphs` (the control plane) are never selected from."""
    api = model.api_schema
    query_type = api.query_type
    if query_type is None:
        raise ExportUnavailable("the supergraph has no query type")
    from ..privacy import entity_key_fields

    for root_name, root_field in query_type.fields.items():
        named = _unwrap(root_field.type)
        if not isinstance(named, GraphQLObjectType) or isinstance(root_field.type, GraphQLList):
            continue
        subject = privacy.subject_field(named.name)
        if subject is None or subject not in entity_key_fields(model, named.name):
            continue
        required = [
            n for n, a in root_field.args.items() if isinstance(a.type, GraphQLNonNull) and a.default_value is Undefined
        ]
        if required != [subject] or isinstance(_unwrap(root_field.args[subject].type), GraphQLObjectType):
            continue
        argument_type = str(root_field.args[subject].type)
        walker = _Walker(model, privacy, excluded_subgraphs)
        selection = walker.object_selection(named, depth=0, on_path=(named.name,))
        body = _render(selection, indent="  ")
        query = f"query CitygateExport($resident: {argument_type}) {{\n  {root_name}({subject}: $resident) {body}\n}}"
        return ExportOperation(query, root_name, subject, named.name, selection)
    raise ExportUnavailable("no root field reaches a resident's entity by its key")


class _Walker:
    def __init__(self, model, privacy, excluded: frozenset[str]) -> None:
        self.model = model
        self.privacy = privacy
        self.excluded = excluded
        self.api = model.api_schema

    def _selectable(self, type_name: str, field_name: str, definition) -> bool:
        if field_name.startswith("__") or self.privacy.aggregate(type_name, field_name) is not None:
            return False  # aggregates are open data about many, not the resident's
        if any(isinstance(a.type, GraphQLNonNull) and a.default_value is Undefined for a in definition.args.values()):
            return False  # a required argument the export cannot know
        subgraphs = set(self.model.subgraphs_resolving(type_name, field_name))
        return not subgraphs or bool(subgraphs - self.excluded)

    def object_selection(self, named, *, depth: int, on_path: tuple[str, ...]) -> Selection:
        selection = Selection()
        concrete = [named] if isinstance(named, GraphQLObjectType) else list(self.api.get_possible_types(named))
        for object_type in concrete:
            selection.fields[object_type.name] = self._fields(object_type, depth, on_path)
        return selection

    def _reference(self, object_type) -> dict[str, Selection | None]:
        """Only what names the object: its subject field and scalar key fields (a link's target
        already on the path, or too deep)."""
        from ..privacy import entity_key_fields

        names = [*entity_key_fields(self.model, object_type.name)]
        subject = self.privacy.subject_field(object_type.name)
        if subject is not None:
            names.append(subject)
        return {
            name: None
            for name in dict.fromkeys(names)
            if name in object_type.fields and _is_leaf(_unwrap(object_type.fields[name].type))
        }

    def _fields(self, object_type, depth: int, on_path: tuple[str, ...]) -> dict[str, Selection | None]:
        chosen: dict[str, Selection | None] = {}
        for name, definition in object_type.fields.items():
            if not self._selectable(object_type.name, name, definition):
                continue
            named = _unwrap(definition.type)
            if _is_leaf(named):
                chosen[name] = None
                continue
            if self.privacy.view.is_link(named.name):
                # another object with a subject: the resident's (their booking) or someone else's
                # (the dinner they booked): walked, and filtered by its subject afterwards
                if named.name in on_path or depth + 1 >= MAX_DEPTH:
                    below = Selection({t.name: self._reference(t) for t in self._concrete(named)}, reference=True)
                else:
                    below = self.object_selection(named, depth=depth + 1, on_path=(*on_path, named.name))
                chosen[name] = below
            else:
                # an object without a subject (a district, a spot, a point): part of the value,
                # named by its key, or its own leaves when it has none; never walked further
                # (a district's jobs are other residents')
                chosen[name] = Selection({t.name: self._value_fields(t) for t in self._concrete(named)})
        return chosen

    def _value_fields(self, object_type) -> dict[str, Selection | None]:
        from ..privacy import entity_key_fields

        keys = entity_key_fields(self.model, object_type.name)
        fields = object_type.fields
        if keys:
            return {k: None for k in keys if k in fields}
        return {
            name: None
            for name, definition in fields.items()
            if _is_leaf(_unwrap(definition.type)) and self._selectable(object_type.name, name, definition)
        }

    def _concrete(self, named) -> list:
        if isinstance(named, GraphQLObjectType):
            return [named]
        if isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
            return list(self.api.get_possible_types(named))
        return []


def _render(selection: Selection, indent: str) -> str:
    inner = indent + "  "
    lines = ["__typename"]
    abstract = len(selection.fields) > 1
    for type_name, fields in selection.fields.items():
        rendered = [
            name if below is None else f"{name} {_render(below, inner + ('  ' if abstract else ''))}"
            for name, below in fields.items()
        ]
        if abstract:
            lines.append(f"... on {type_name} {{ " + " ".join(rendered) + " }")
        else:
            lines.extend(rendered)
    return "{\n" + "".join(f"{inner}{line}\n" for line in lines) + indent + "}"


# -- the document ------------------------------------------------------------------------------


@dataclass(slots=True)
class ExportDocument:
    document: dict[str, Any]
    coordinates: set[str]  # what the document holds, for the audit entry (never a value)


def build_document(
    operation: ExportOperation,
    data: dict[str, Any] | None,
    errors: list[dict[str, Any]],
    *,
    resident: str,
    model,
    privacy,
    request_id: str,
    connectors: dict[str, str] | None = None,
) -> ExportDocument:
    """The export from the Engine's answer: the resident's objects only. `connectors` names the
    owner of each connector (subgraph); the model's owners otherwise."""
    builder = _DocumentBuilder(model, privacy, resident, connectors or {})
    root = (data or {}).get(operation.root_field)
    if isinstance(root, dict):
        roots = frozenset(model.subgraphs_resolving(model.api_schema.query_type.name, operation.root_field))
        builder.walk(root, operation.selection, operation.root_field, parent_sources=roots)
    incomplete = []
    for error in errors:
        extensions = error.get("extensions") or {}
        path = error.get("path")
        incomplete.append(
            {
                "path": ".".join(str(p) for p in path) if isinstance(path, list) else None,
                "connector": extensions.get("serviceName"),
                "code": extensions.get("code") or "INTERNAL_SERVER_ERROR",
            }
        )
    document = {
        "format": FORMAT,
        "subject": resident,
        "generatedAt": datetime.now(UTC).isoformat(),
        "requestId": request_id,
        "connectors": {
            name: {"owner": builder.owner(name), "records": records}
            for name, records in sorted(builder.records.items())
        },
        "incomplete": incomplete,
    }
    return ExportDocument(document, builder.coordinates)


class _DocumentBuilder:
    def __init__(self, model, privacy, resident: str, owners: dict[str, str]) -> None:
        self.model = model
        self.privacy = privacy
        self.resident = resident
        self.owners = owners
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.coordinates: set[str] = set()

    def owner(self, subgraph: str) -> str:
        return self.owners.get(subgraph) or self.model.owner_of(subgraph)

    def _source(self, type_name: str, field_name: str, parent_sources: frozenset[str]) -> str:
        """The connector a value came from: of those resolving the field, the one the object was
        reached through when it is one of them (a key every connector resolves), else the first."""
        resolving = self.model.subgraphs_resolving(type_name, field_name) or sorted(
            self.model.types.get(type_name).subgraphs
        )
        for name in resolving:
            if name in parent_sources:
                return name
        return sorted(resolving)[0]

    def walk(self, value: Any, selection: Selection, path: str, parent_sources: frozenset[str]) -> None:
        if isinstance(value, list):
            for index, item in enumerate(value):
                self.walk(item, selection, f"{path}.{index}", parent_sources)
            return
        if not isinstance(value, dict):
            return
        type_name = value.get("__typename")
        fields = selection.fields.get(type_name) if isinstance(type_name, str) else None
        if fields is None:
            return  # no type named, or one the operation did not select: nothing can be said of it
        subject_field = self.privacy.subject_field(type_name)
        mine = subject_field is not None and value.get(subject_field) == self.resident and not selection.reference
        by_connector: dict[str, list[dict[str, Any]]] = {}
        for name, below in fields.items():
            source = self._source(type_name, name, parent_sources)
            child = value.get(name)
            if below is not None and self.privacy.view.is_link(
                get_named_type(self.model.api_schema.get_type(type_name).fields[name].type).name
            ):
                # a link: the linked object is a record of its own (if it is the resident's);
                # here, only a reference to it
                self.walk(child, below, f"{path}.{name}", frozenset({source}))
                shown = self._reference(child, below)
            else:
                shown = _plain(child)
            if mine:
                personal = self.privacy.personal(type_name, name)
                by_connector.setdefault(source, []).append(
                    {
                        "coordinate": f"{type_name}.{name}",
                        "value": shown,
                        "category": personal.category if personal is not None else None,
                    }
                )
        if mine:
            for connector, values in by_connector.items():
                self.records.setdefault(connector, []).append({"type": type_name, "path": path, "values": values})
                self.coordinates.update(v["coordinate"] for v in values)

    def _reference(self, value: Any, selection: Selection) -> Any:
        """A linked object as a reference: its type and its non-personal key fields."""
        if isinstance(value, list):
            return [self._reference(item, selection) for item in value]
        if not isinstance(value, dict) or not isinstance(value.get("__typename"), str):
            return None
        type_name = value["__typename"]
        from ..privacy import entity_key_fields

        reference: dict[str, Any] = {"type": type_name}
        subject_field = self.privacy.subject_field(type_name)
        own = subject_field is not None and value.get(subject_field) == self.resident  # the resident's: keys and all
        for key in entity_key_fields(self.model, type_name):
            if key in value and (own or self.privacy.personal(type_name, key) is None):
                reference[key] = value[key]
        return reference


def _plain(value: Any) -> Any:
    """A value as the document holds it: objects without a subject keep their fields, not their type names."""
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if key != "__typename"}
    return value


def new_request_id() -> str:
    return uuid.uuid4().hex
