"""Printing a merged supergraph in Apollo's format (`@link`, join v0.3/v0.4)."""

from __future__ import annotations

import json

from graphql import print_ast

from ._merge import JoinField, JoinType, MergedField, MergedSupergraph, MergedType
from ._subgraph import AppliedDirective

_JOIN_DIRECTIVES = """directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE

directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean%LABEL%) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION

directive @join__graph(name: String!, url: String!) on ENUM_VALUE

directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE

directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR

directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION

directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA"""

_INACCESSIBLE = (
    "directive @inaccessible on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR "
    "| ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION"
)
_TAG = (
    "directive @tag(name: String!) repeatable on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION "
    "| SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION | SCHEMA"
)


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _description(text: str | None, indent: str) -> str:
    if not text:
        return ""
    if "\n" in text or '"' in text:
        body = text.replace('"""', '\\"""')
        return f'{indent}"""\n' + "\n".join(indent + line for line in body.split("\n")) + f'\n{indent}"""\n'
    return f'{indent}"""{text}"""\n'


def _join_type(join: JoinType, enums: dict[str, str]) -> str:
    args = [f"graph: {enums[join.subgraph]}"]
    if join.key is not None:
        args.append(f"key: {_string(join.key)}")
    if join.extension:
        args.append("extension: true")
    if not join.resolvable:
        args.append("resolvable: false")
    if join.interface_object:
        args.append("isInterfaceObject: true")
    return f"@join__type({', '.join(args)})"


def _join_field(join: JoinField, enums: dict[str, str]) -> str:
    if join.subgraph is None:
        return "@join__field"
    args = [f"graph: {enums[join.subgraph]}"]
    if join.requires is not None:
        args.append(f"requires: {_string(join.requires)}")
    if join.provides is not None:
        args.append(f"provides: {_string(join.provides)}")
    if join.type is not None:
        args.append(f"type: {_string(join.type)}")
    if join.external:
        args.append("external: true")
    if join.override is not None:
        args.append(f"override: {_string(join.override)}")
    if join.used_overridden:
        args.append("usedOverridden: true")
    if join.override_label is not None:
        args.append(f"overrideLabel: {_string(join.override_label)}")
    return f"@join__field({', '.join(args)})"


def _element_directives(element, composed: set[str]) -> list[str]:
    result = []
    if getattr(element, "inaccessible", False):
        result.append("@inaccessible")
    for tag in getattr(element, "tags", ()):
        result.append(f"@tag(name: {_string(tag)})")
    deprecated = getattr(element, "deprecated", None)
    if deprecated:
        result.append(f"@deprecated(reason: {_string(deprecated)})")
    seen: set[str] = set()
    for applied in getattr(element, "applied", ()):
        assert isinstance(applied, AppliedDirective)
        if applied.name in composed:
            printed = print_ast(applied.node)
            if printed not in seen:
                seen.add(printed)
                result.append(printed)
    return result


def _field(field: MergedField, enums: dict[str, str], composed: set[str], is_input: bool) -> str:
    text = _description(field.description, "  ") + f"  {field.name}"
    if field.arguments:
        arguments = []
        for argument in field.arguments.values():
            printed = f"{argument.name}: {argument.type}"
            if argument.default is not None:
                printed += f" = {argument.default}"
            printed += "".join(" " + d for d in _element_directives(argument, composed))
            arguments.append(printed)
        text += "(" + ", ".join(arguments) + ")"
    text += f": {field.type}"
    if is_input and field.default is not None:
        text += f" = {field.default}"
    directives = [_join_field(j, enums) for j in field.joins] + _element_directives(field, composed)
    if directives:
        text += " " + " ".join(directives)
    return text


def _type(merged: MergedType, enums: dict[str, str], composed: set[str]) -> str:
    keyword = {
        "OBJECT": "type",
        "INTERFACE": "interface",
        "UNION": "union",
        "ENUM": "enum",
        "INPUT_OBJECT": "input",
        "SCALAR": "scalar",
    }[merged.kind]
    head = _description(merged.description, "") + f"{keyword} {merged.name}"
    if merged.interfaces:
        head += " implements " + " & ".join(merged.interfaces)
    directives = [f"@join__implements(graph: {enums[s]}, interface: {_string(i)})" for s, i in merged.implements]
    directives += [_join_type(j, enums) for j in merged.join_types]
    directives += [f"@join__unionMember(graph: {enums[s]}, member: {_string(m)})" for s, m in merged.union_members]
    directives += _element_directives(merged, composed)
    text = head + "".join("\n  " + d for d in directives)
    if merged.kind in ("OBJECT", "INTERFACE", "INPUT_OBJECT"):
        body = "\n".join(_field(f, enums, composed, merged.kind == "INPUT_OBJECT") for f in merged.fields.values())
        text += "\n{\n" + body + "\n}"
    elif merged.kind == "UNION":
        text += "\n = " + " | ".join(merged.members)
    elif merged.kind == "ENUM":
        values = []
        for value in merged.values.values():
            line = _description(value.description, "  ") + f"  {value.name}"
            value_directives = [f"@join__enumValue(graph: {enums[s]})" for s in value.subgraphs]
            value_directives += _element_directives(value, composed)
            line += " " + " ".join(value_directives)
            values.append(line)
        text += "\n{\n" + "\n".join(values) + "\n}"
    return text


def print_supergraph(
    supergraph: MergedSupergraph, composed_links: list[tuple[str, list[str]]], composed: dict[str, str]
) -> str:
    enums = {s.name: _enum_value(s.name) for s in supergraph.subgraphs}
    uses_label = any(j.override_label for t in supergraph.types.values() for f in t.fields.values() for j in f.joins)
    join_version = "v0.4" if uses_label else "v0.3"
    links = [
        '  @link(url: "https://specs.apollo.dev/link/v1.0")',
        f'  @link(url: "https://specs.apollo.dev/join/{join_version}", for: EXECUTION)',
    ]
    directive_definitions = [_JOIN_DIRECTIVES.replace("%LABEL%", ", overrideLabel: String" if uses_label else "")]
    if supergraph.uses("inaccessible"):
        links.append('  @link(url: "https://specs.apollo.dev/inaccessible/v0.2", for: SECURITY)')
        directive_definitions.append(_INACCESSIBLE)
    if supergraph.uses("tag"):
        links.append('  @link(url: "https://specs.apollo.dev/tag/v0.3")')
        directive_definitions.append(_TAG)
    for url, imports in composed_links:
        links.append(f"  @link(url: {_string(url)}, import: [{', '.join(_string('@' + i) for i in imports)}])")
    directive_definitions += list(composed.values())
    roots = [
        f"  {op}: {name}"
        for op, name in (("query", "Query"), ("mutation", "Mutation"), ("subscription", "Subscription"))
        if name in supergraph.types
    ]
    parts = ["schema\n" + "\n".join(links) + "\n{\n" + "\n".join(roots) + "\n}"]
    parts += directive_definitions
    parts.append("scalar join__FieldSet")
    graphs = "\n".join(
        f"  {enums[s.name]} @join__graph(name: {_string(s.name)}, url: {_string(s.url)})" for s in supergraph.subgraphs
    )
    parts.append("enum join__Graph {\n" + graphs + "\n}")
    parts.append("scalar link__Import")
    parts.append("enum link__Purpose {\n  SECURITY\n  EXECUTION\n}")
    composed_names = set(composed)
    for name in sorted(supergraph.types):
        parts.append(_type(supergraph.types[name], enums, composed_names))
    return "\n\n".join(parts) + "\n"


def _enum_value(name: str) -> str:
    value = "".join(c if c.isalnum() else "_" for c in name).upper()
    return value if not value[0].isdigit() else "_" + value
