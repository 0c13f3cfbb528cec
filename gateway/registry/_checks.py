"""Schema checks: what a change to the connectors would break for the clients of the served supergraph.

Two halves. `schema_changes` runs in the composition worker (_worker.py) with the rest of a change's
checks: it builds the API schema (what clients see: no join__ element, no @inaccessible one) of the
supergraph served now and of the one the change would serve, and compares them with graphql-core's
`find_breaking_changes` and `find_dangerous_changes`. Each change comes back with its schema
coordinate (`Type.field`, `Type.field(arg:)`, `Enum.VALUE`, `@directive`) and the coordinates whose
use by an operation it would break (`affects`, read from the served schema: a removed type affects
each of its fields and arguments). `classify` then runs on the event loop with the recorded usage
(gateway/usage.py, read from the store): a breaking change to a coordinate no client's operation
selected in the usage window is a warning (BREAKING_CHANGE); one that some client used is an error
(BREAKING_CHANGE_IN_USE) that refuses the change, unless the operator accepts it by sending
`"accept_breaking": true`, then a warning marked `accepted`. Dangerous changes (a value added to
an enum, a default changed, ...) are warnings (DANGEROUS_CHANGE), never errors.

A report names how many operations, clients and requests used a coordinate, never which resident,
which variable or which value: the usage store holds none.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from graphql import (
    BreakingChangeType,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    find_breaking_changes,
    find_dangerous_changes,
)

from ..supergraph import load_supergraph

BREAKING_CHANGE = "BREAKING_CHANGE"
BREAKING_CHANGE_IN_USE = "BREAKING_CHANGE_IN_USE"
DANGEROUS_CHANGE = "DANGEROUS_CHANGE"
USAGE_WINDOW_DAYS = 7  # as GraphOS and Hive checks do by default

_NAME = r"([_A-Za-z][_0-9A-Za-z]*)"
# graphql-core 3.3's descriptions of breaking changes, by change type: (pattern, what it names)
_DESCRIBED: dict[BreakingChangeType, list[tuple[re.Pattern[str], str]]] = {
    BreakingChangeType.TYPE_REMOVED: [(re.compile(rf"^(?:Standard scalar )?{_NAME} was removed"), "type")],
    BreakingChangeType.TYPE_CHANGED_KIND: [(re.compile(rf"^{_NAME} changed from "), "type")],
    BreakingChangeType.TYPE_REMOVED_FROM_UNION: [
        (re.compile(rf"^{_NAME} was removed from union type {_NAME}\."), "member")
    ],
    BreakingChangeType.VALUE_REMOVED_FROM_ENUM: [(re.compile(rf"^Enum value {_NAME}\.{_NAME} was removed"), "value")],
    BreakingChangeType.REQUIRED_INPUT_FIELD_ADDED: [
        (re.compile(rf"^A required field {_NAME}\.{_NAME} was added"), "input_added")
    ],
    BreakingChangeType.IMPLEMENTED_INTERFACE_REMOVED: [
        (re.compile(rf"^{_NAME} no longer implements interface {_NAME}"), "implementer")
    ],
    BreakingChangeType.FIELD_REMOVED: [(re.compile(rf"^Field {_NAME}\.{_NAME} "), "field")],
    BreakingChangeType.FIELD_CHANGED_KIND: [(re.compile(rf"^Field {_NAME}\.{_NAME} "), "field")],
    BreakingChangeType.REQUIRED_ARG_ADDED: [
        (re.compile(rf"^A required argument {_NAME}\.{_NAME}\({_NAME}:\) was added"), "arg_added"),
        (re.compile(rf"^A required argument @{_NAME}\({_NAME}:\) was added"), "directive_arg_added"),
    ],
    BreakingChangeType.ARG_REMOVED: [(re.compile(rf"^Argument {_NAME}\.{_NAME}\({_NAME}:\)"), "arg")],
    BreakingChangeType.ARG_CHANGED_KIND: [
        (re.compile(rf"^Argument {_NAME}\.{_NAME}\({_NAME}:\)"), "arg"),
        (re.compile(rf"^Argument @{_NAME}\({_NAME}:\)"), "directive_arg"),
    ],
    BreakingChangeType.DIRECTIVE_REMOVED: [(re.compile(rf"^Directive @{_NAME} was removed"), "directive")],
    BreakingChangeType.DIRECTIVE_ARG_REMOVED: [(re.compile(rf"^Argument @{_NAME}\({_NAME}:\)"), "directive_arg")],
    BreakingChangeType.REQUIRED_DIRECTIVE_ARG_ADDED: [
        (re.compile(rf"^A required argument @{_NAME}\({_NAME}:\) was added"), "directive_arg_added")
    ],
    BreakingChangeType.DIRECTIVE_REPEATABLE_REMOVED: [
        (re.compile(rf"^Repeatable flag was removed from @{_NAME}"), "directive")
    ],
    BreakingChangeType.DIRECTIVE_LOCATION_REMOVED: [
        (re.compile(rf"^{_NAME} was removed from @{_NAME}"), "directive_location")
    ],
}
# the dangerous ones: only their coordinate is shown (they are never errors)
_DANGEROUS = re.compile(
    rf"^(?:Enum value |An optional field |An optional argument |Argument |Field )?(@?{_NAME}(?:\.{_NAME})?(?:\({_NAME}:\))?)"
)


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """One difference between the served API schema and the one a change would serve."""

    breaking: bool
    change: str  # graphql-core's change type, e.g. FIELD_REMOVED
    message: str  # graphql-core's description
    coordinate: str | None  # None: graphql-core described it in a way not read here (shown, never traced to usage)
    affects: tuple[str, ...] = ()  # the usage coordinates an operation selecting breaks on


# -- in the worker ---------------------------------------------------------------------------------

_API_SCHEMAS: dict[str, GraphQLSchema] = {}  # the worker's last API schemas, by their supergraph's hash


def api_schema(supergraph: str) -> GraphQLSchema:
    """The API schema of a supergraph, as an Engine serves it; the last two are kept (a change's
    candidate is usually the next one served)."""
    digest = hashlib.sha256(supergraph.encode()).hexdigest()
    schema = _API_SCHEMAS.get(digest)
    if schema is None:
        schema = load_supergraph(supergraph).api_schema
        while len(_API_SCHEMAS) >= 2:
            del _API_SCHEMAS[next(iter(_API_SCHEMAS))]
        _API_SCHEMAS[digest] = schema
    return schema


def schema_changes(served: str, candidate: str) -> list[SchemaChange]:
    """The breaking and dangerous changes from the served supergraph's API schema to the candidate's."""
    old, new = api_schema(served), api_schema(candidate)
    changes = [_breaking(old, change.type, change.description) for change in find_breaking_changes(old, new)]
    for change in find_dangerous_changes(old, new):
        found = _DANGEROUS.match(change.description)
        changes.append(SchemaChange(False, change.type.name, change.description, found[1] if found else None))
    return changes


def _breaking(old: GraphQLSchema, kind: BreakingChangeType, description: str) -> SchemaChange:
    for pattern, names in _DESCRIBED.get(kind, ()):
        found = pattern.match(description)
        if found is not None:
            coordinate, affects = _traced(old, names, found.groups())
            return SchemaChange(True, kind.name, description, coordinate, tuple(sorted(affects)))
    return SchemaChange(True, kind.name, description, None)


def _traced(old: GraphQLSchema, names: str, parts: tuple[str, ...]) -> tuple[str, set[str]]:
    """The coordinate a change names and the usage coordinates (gateway/usage.py) it breaks."""
    if names == "type":
        return parts[0], _type_uses(old, parts[0])
    if names == "member":  # an operation reaching the member through the union: `... on Member`
        member, union = parts
        return f"{union}.{member}", {member}
    if names == "value":
        return f"{parts[0]}.{parts[1]}", {f"{parts[0]}.{parts[1]}"}
    if names == "input_added":  # every literal of the input type, and every variable of it
        return f"{parts[0]}.{parts[1]}", _type_uses(old, parts[0])
    if names == "implementer":  # an operation reaching the type through the interface: `... on Type`
        return parts[0], {parts[0]}
    if names == "field":
        type_name, field_name = parts
        uses = _field_uses(old, type_name, field_name)
        if isinstance(old.get_type(type_name), GraphQLInputObjectType):
            uses.add(type_name)  # given through a variable: which fields it fills is not recorded
        return f"{type_name}.{field_name}", uses
    if names == "arg_added":
        type_name, field_name, argument = parts
        return f"{type_name}.{field_name}({argument}:)", _field_uses(old, type_name, field_name)
    if names == "arg":
        coordinate = f"{parts[0]}.{parts[1]}({parts[2]}:)"
        return coordinate, {coordinate}
    if names == "directive_arg":
        coordinate = f"@{parts[0]}({parts[1]}:)"
        return coordinate, {coordinate}
    if names == "directive_arg_added":
        return f"@{parts[0]}({parts[1]}:)", _directive_uses(old, parts[0])
    if names == "directive_location":
        return f"@{parts[1]}", _directive_uses(old, parts[1])
    return f"@{parts[0]}", _directive_uses(old, parts[0])  # "directive"


def _type_uses(schema: GraphQLSchema, type_name: str) -> set[str]:
    uses = {type_name}
    named = schema.get_type(type_name)
    if isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
        for field_name in named.fields:
            uses |= _field_uses(schema, type_name, field_name)
    elif isinstance(named, GraphQLEnumType):
        uses |= {f"{type_name}.{value}" for value in named.values}
    return uses


def _field_uses(schema: GraphQLSchema, type_name: str, field_name: str) -> set[str]:
    uses = {f"{type_name}.{field_name}"}
    named = schema.get_type(type_name)
    if isinstance(named, GraphQLObjectType | GraphQLInterfaceType) and field_name in named.fields:
        uses |= {f"{type_name}.{field_name}({argument}:)" for argument in named.fields[field_name].args}
    return uses


def _directive_uses(schema: GraphQLSchema, name: str) -> set[str]:
    directive = schema.get_directive(name)
    return {f"@{name}"} | ({f"@{name}({argument}:)" for argument in directive.args} if directive is not None else set())


# -- on the loop -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Use:
    """What recorded usage says of a set of coordinates: counts, no names."""

    clients: int
    operations: int
    requests: int


def usage_by_change(changes: Iterable[SchemaChange], rows: Iterable[tuple[str, str, str, int]]) -> dict[int, Use]:
    """For each breaking change (by its index in `changes`) that some recorded operation breaks on,
    how many clients, operations and requests; `rows` are the store's (coordinate, client, operation, requests)."""
    by_coordinate: dict[str, list[tuple[str, str, int]]] = {}
    for coordinate, client, operation, requests in rows:
        by_coordinate.setdefault(coordinate, []).append((client, operation, requests))
    used: dict[int, Use] = {}
    for index, change in enumerate(changes):
        # one operation selecting several affected coordinates counts once
        requests_of: dict[tuple[str, str], int] = {}
        for coordinate in change.affects:
            for client, operation, requests in by_coordinate.get(coordinate, ()):
                requests_of[(client, operation)] = requests
        if requests_of:
            used[index] = Use(
                len({client for client, _ in requests_of}),
                len({operation for _, operation in requests_of}),
                sum(requests_of.values()),
            )
    return used


def classify(
    changes: list[SchemaChange], used: dict[int, Use], *, accepted: bool, window_days: int = USAGE_WINDOW_DAYS
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(errors, warnings) for a report: a breaking change some client used is an error unless
    `accepted` (the operator sent accept_breaking)."""
    errors: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    for index, change in enumerate(changes):
        entry: dict[str, Any] = {"change": change.change}
        if change.coordinate is not None:
            entry["coordinate"] = change.coordinate
        if not change.breaking:
            warnings.append({"code": DANGEROUS_CHANGE, "message": f"{change.change}: {change.message}", **entry})
            continue
        use = used.get(index)
        if use is None and change.coordinate is None:
            # a change whose coordinate could not be read off graphql-core's description cannot
            # be traced to usage: treated as in use (fail closed), the operator may accept it
            use = Use(0, 0, 0)
        if use is None:
            warnings.append(
                {
                    "code": BREAKING_CHANGE,
                    "message": f"{change.change}: {change.message} No client's operation used it in the last {window_days} days.",
                    **entry,
                }
            )
            continue
        entry.update(clients=use.clients, operations=use.operations, requests=use.requests)
        seen = (
            f"{change.change}: {change.message} Used by {use.operations} operation(s) of {use.clients} client(s) "
            f"in the last {window_days} days ({use.requests} request(s))"
        )
        if accepted:
            warnings.append(
                {
                    "code": BREAKING_CHANGE_IN_USE,
                    "message": f"{seen}: accepted by the operator.",
                    "accepted": True,
                    **entry,
                }
            )
        else:
            errors.append(
                {
                    "code": BREAKING_CHANGE_IN_USE,
                    "message": f'{seen}: the change is refused unless the operator accepts it ("accept_breaking": true).',
                    **entry,
                }
            )
    return errors, warnings
