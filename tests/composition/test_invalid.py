"""A corpus of invalid subgraph sets, each rejected with the code Apollo's composition uses."""

from __future__ import annotations

import pytest

from gateway.composition import SubgraphSource, compose

FED = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@shareable", "@external", "@requires", "@provides", "@override", "@interfaceObject", "@inaccessible"])\n'
FED_2_0 = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.0", import: ["@key", "@interfaceObject"])\n'


def fed(sdl: str) -> str:
    return FED + sdl


CASES = {
    "INVALID_GRAPHQL (syntax)": ("INVALID_GRAPHQL", {"a": fed("type Query { a: Int")}),
    "INVALID_GRAPHQL (unknown type)": ("INVALID_GRAPHQL", {"a": fed("type Query { a: Missing }")}),
    "INVALID_GRAPHQL (directive not imported)": (
        "INVALID_GRAPHQL",
        {
            "a": 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])\n type Query { a: Int @shareable }'
        },
    ),
    "UNKNOWN_FEDERATION_LINK_VERSION": (
        "UNKNOWN_FEDERATION_LINK_VERSION",
        {
            "a": 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.99", import: ["@key"])\n type Query { a: Int }'
        },
    ),
    "INVALID_FIELD_SHARING (value type)": (
        "INVALID_FIELD_SHARING",
        {
            "a": fed("type Query { a: Info @shareable } type Info { x: Int }"),
            "b": fed("type Query { a: Info @shareable } type Info { x: Int }"),
        },
    ),
    "INVALID_FIELD_SHARING (root field)": (
        "INVALID_FIELD_SHARING",
        {"a": fed("type Query { hello: String }"), "b": fed("type Query { hello: String }")},
    ),
    "INVALID_FIELD_SHARING (entity field)": (
        "INVALID_FIELD_SHARING",
        {
            "a": fed('type Query { u: User } type User @key(fields: "id") { id: ID! name: String }'),
            "b": fed('type User @key(fields: "id") { id: ID! name: String }'),
        },
    ),
    "EXTERNAL_MISSING_ON_BASE": (
        "EXTERNAL_MISSING_ON_BASE",
        {
            "a": fed('type Query { u: User } type User @key(fields: "id") { id: ID! }'),
            "b": fed('type User @key(fields: "id") { id: ID! age: Int @external grade: Int @requires(fields: "age") }'),
        },
    ),
    "EXTERNAL_UNUSED": (
        "EXTERNAL_UNUSED",
        {
            "a": fed('type Query { u: User } type User @key(fields: "id") { id: ID! age: Int }'),
            "b": fed('type User @key(fields: "id") { id: ID! age: Int @external }'),
        },
    ),
    "EXTERNAL_TYPE_MISMATCH": (
        "EXTERNAL_TYPE_MISMATCH",
        {
            "a": fed('type Query { u: User } type User @key(fields: "id") { id: ID! age: Int }'),
            "b": fed(
                'type User @key(fields: "id") { id: ID! age: String @external grade: Int @requires(fields: "age") }'
            ),
        },
    ),
    "KEY_INVALID_FIELDS (unknown field)": (
        "KEY_INVALID_FIELDS",
        {"a": fed('type Query { u: User } type User @key(fields: "uuid") { id: ID! }')},
    ),
    "KEY_INVALID_FIELDS (syntax)": (
        "KEY_INVALID_FIELDS",
        {"a": fed('type Query { u: User } type User @key(fields: "id {") { id: ID! }')},
    ),
    "KEY_FIELDS_SELECT_INVALID_TYPE": (
        "KEY_FIELDS_SELECT_INVALID_TYPE",
        {
            "a": fed(
                'type Query { u: User } interface Node { id: ID! } type N implements Node { id: ID! } type User @key(fields: "node { id }") { node: Node! }'
            )
        },
    ),
    "KEY_FIELDS_HAS_ARGS": (
        "KEY_FIELDS_HAS_ARGS",
        {"a": fed('type Query { u: User } type User @key(fields: "id") { id(format: String): ID! }')},
    ),
    "REQUIRES_FIELDS_MISSING_EXTERNAL": (
        "REQUIRES_FIELDS_MISSING_EXTERNAL",
        {
            "a": fed('type Query { u: User } type User @key(fields: "id") { id: ID! age: Int @shareable }'),
            "b": fed(
                'type User @key(fields: "id") { id: ID! age: Int @shareable grade: Int @requires(fields: "age") }'
            ),
        },
    ),
    "REQUIRES_INVALID_FIELDS": (
        "REQUIRES_INVALID_FIELDS",
        {
            "a": fed('type Query { u: User } type User @key(fields: "id") { id: ID! }'),
            "b": fed('type User @key(fields: "id") { id: ID! grade: Int @requires(fields: "nonsense") }'),
        },
    ),
    "PROVIDES_FIELDS_MISSING_EXTERNAL": (
        "PROVIDES_FIELDS_MISSING_EXTERNAL",
        {
            "a": fed(
                'type Query { u: User @provides(fields: "name") } type User @key(fields: "id") { id: ID! name: String @shareable }'
            ),
            "b": fed('type User @key(fields: "id") { id: ID! name: String @shareable }'),
        },
    ),
    "PROVIDES_ON_NON_OBJECT_FIELD": (
        "PROVIDES_ON_NON_OBJECT_FIELD",
        {"a": fed('type Query { n: Int @provides(fields: "x") }')},
    ),
    "PROVIDES_INVALID_FIELDS": (
        "PROVIDES_INVALID_FIELDS",
        {"a": fed('type Query { u: User @provides(fields: "nope") } type User @key(fields: "id") { id: ID! }')},
    ),
    "FIELD_TYPE_MISMATCH": (
        "FIELD_TYPE_MISMATCH",
        {
            "a": fed('type Query { u: User } type User @key(fields: "id") { id: ID! age: Int @shareable }'),
            "b": fed('type User @key(fields: "id") { id: ID! age: String @shareable }'),
        },
    ),
    "FIELD_TYPE_MISMATCH (list and single)": (
        "FIELD_TYPE_MISMATCH",
        {"a": fed("type Query { tags: [String] @shareable }"), "b": fed("type Query { tags: String @shareable }")},
    ),
    "FIELD_ARGUMENT_TYPE_MISMATCH": (
        "FIELD_ARGUMENT_TYPE_MISMATCH",
        {"a": fed("type Query { f(x: Int): Int @shareable }"), "b": fed("type Query { f(x: String): Int @shareable }")},
    ),
    "FIELD_ARGUMENT_DEFAULT_MISMATCH": (
        "FIELD_ARGUMENT_DEFAULT_MISMATCH",
        {
            "a": fed("type Query { f(x: Int = 1): Int @shareable }"),
            "b": fed("type Query { f(x: Int = 2): Int @shareable }"),
        },
    ),
    "REQUIRED_ARGUMENT_MISSING_IN_SOME_SUBGRAPH": (
        "REQUIRED_ARGUMENT_MISSING_IN_SOME_SUBGRAPH",
        {"a": fed("type Query { f(x: Int!): Int @shareable }"), "b": fed("type Query { f: Int @shareable }")},
    ),
    "REQUIRED_INPUT_FIELD_MISSING_IN_SOME_SUBGRAPH": (
        "REQUIRED_INPUT_FIELD_MISSING_IN_SOME_SUBGRAPH",
        {
            "a": fed("type Query { a(f: Filter): Int } input Filter { x: Int! }"),
            "b": fed("type Query { b(f: Filter): Int } input Filter { y: Int }"),
        },
    ),
    "EMPTY_MERGED_INPUT_TYPE": (
        "EMPTY_MERGED_INPUT_TYPE",
        {
            "a": fed("type Query { a(f: Filter): Int } input Filter { x: Int }"),
            "b": fed("type Query { b(f: Filter): Int } input Filter { y: Int }"),
        },
    ),
    "ENUM_VALUE_MISMATCH": (
        "ENUM_VALUE_MISMATCH",
        {
            "a": fed("type Query { a(k: Kind): Kind } enum Kind { A B }"),
            "b": fed("type Query { b(k: Kind): Kind } enum Kind { A C }"),
        },
    ),
    "EMPTY_MERGED_ENUM_TYPE": (
        "EMPTY_MERGED_ENUM_TYPE",
        {
            "a": fed("type Query { a(k: Kind): Int } enum Kind { A }"),
            "b": fed("type Query { b(k: Kind): Int } enum Kind { B }"),
        },
    ),
    "TYPE_KIND_MISMATCH": (
        "TYPE_KIND_MISMATCH",
        {
            "a": fed("type Query { a: Thing } type Thing { x: Int }"),
            "b": fed("type Query { b: Thing } interface Thing { x: Int }"),
        },
    ),
    "OVERRIDE_FROM_SELF_ERROR": (
        "OVERRIDE_FROM_SELF_ERROR",
        {"a": fed('type Query { u: User } type User @key(fields: "id") { id: ID! name: String @override(from: "a") }')},
    ),
    "OVERRIDE_SOURCE_HAS_OVERRIDE": (
        "OVERRIDE_SOURCE_HAS_OVERRIDE",
        {
            "a": fed(
                'type Query { u: User } type User @key(fields: "id") { id: ID! name: String @override(from: "b") }'
            ),
            "b": fed('type User @key(fields: "id") { id: ID! name: String @override(from: "a") }'),
        },
    ),
    "OVERRIDE_COLLISION_WITH_ANOTHER_DIRECTIVE": (
        "OVERRIDE_COLLISION_WITH_ANOTHER_DIRECTIVE",
        {
            "a": fed('type Query { u: User } type User @key(fields: "id") { id: ID! name: String }'),
            "b": fed(
                'type User @key(fields: "id") { id: ID! name: String @override(from: "a") @external x: Int @requires(fields: "name") }'
            ),
        },
    ),
    "INTERFACE_OBJECT_USAGE_ERROR (no key)": (
        "INTERFACE_OBJECT_USAGE_ERROR",
        {
            "a": fed(
                'type Query { n: Node } interface Node @key(fields: "id") { id: ID! } type T implements Node @key(fields: "id") { id: ID! }'
            ),
            "b": fed("type Node @interfaceObject { id: ID! extra: Int }"),
        },
    ),
    "INTERFACE_OBJECT_USAGE_ERROR (old federation)": (
        "INTERFACE_OBJECT_USAGE_ERROR",
        {
            "a": fed(
                'type Query { n: Node } interface Node @key(fields: "id") { id: ID! } type T implements Node @key(fields: "id") { id: ID! }'
            ),
            "b": FED_2_0 + 'type Node @key(fields: "id") @interfaceObject { id: ID! extra: Int }',
        },
    ),
    "SATISFIABILITY_ERROR (unreachable entity field)": (
        "SATISFIABILITY_ERROR",
        {
            "a": fed('type Query { u: User } type User @key(fields: "id") { id: ID! }'),
            "b": fed('type User @key(fields: "id", resolvable: false) { id: ID! secret: String }'),
        },
    ),
    "SATISFIABILITY_ERROR (value type without key)": (
        "SATISFIABILITY_ERROR",
        {
            "a": fed("type Query { info: Info } type Info { a: Int }"),
            "b": fed("type Query { other: Int } type Info { b: Int }"),
        },
    ),
    "NO_QUERIES": ("NO_QUERIES", {"a": fed('type User @key(fields: "id") { id: ID! }')}),
    "INVALID_SUBGRAPH_NAME": ("INVALID_SUBGRAPH_NAME", {"bad name!": fed("type Query { a: Int }")}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_subgraph_sets_are_rejected_with_the_right_code(case):
    code, subgraphs = CASES[case]
    result = compose([SubgraphSource(name, sdl, f"http://127.0.0.1:9/{name}") for name, sdl in subgraphs.items()])
    assert not result.ok
    assert result.supergraph is None
    codes = {e.code for e in result.errors}
    assert code in codes, [str(e) for e in result.errors]


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 25
    assert len({code for code, _ in CASES.values()}) >= 25


def test_errors_carry_the_subgraph_and_the_location():
    result = compose([SubgraphSource("a", fed('type Query { u: User }\ntype User @key(fields: "uuid") { id: ID! }'))])
    (error,) = result.errors
    assert error.subgraph == "a"
    assert error.locations == ((3, 11),)  # the @key on line 3 of the SDL (line 1 is the @link)
    assert error.to_dict()["locations"] == [{"line": 3, "column": 11}]
