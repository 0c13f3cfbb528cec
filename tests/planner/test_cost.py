"""The estimated cost of an operation (gateway/planner/_cost.py): composite fields 1, leaves 0,
introspection 0, list fields times their slicing argument, @listSize or the default list size,
@cost weights."""

from __future__ import annotations

from graphql import FragmentDefinitionNode, OperationDefinitionNode, build_schema, parse

from gateway.planner._cost import estimate_cost, field_costs

SCHEMA = build_schema("""
directive @cost(weight: Int!) on FIELD_DEFINITION
directive @listSize(assumedSize: Int, slicingArguments: [String!]) on FIELD_DEFINITION
type Query {
  items(first: Int, last: Int): [Item!]!
  paged(pageSize: Int = 25): [Item!]!
  sized: [Item!]! @listSize(assumedSize: 3)
  sliced(count: Int, first: Int): [Item!]! @listSize(slicingArguments: ["count"])
  item: Item
  expensive: Int @cost(weight: 7)
}
type Item { id: ID! tags: [String!]! children(limit: Int): [Item!]! }
""")


def cost(text: str, variables: dict | None = None, default_list_size: int = 10) -> tuple[int, bool]:
    document = parse(text)
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    return estimate_cost(
        SCHEMA,
        operation,
        fragments,
        costs=field_costs(SCHEMA),
        variables=variables,
        default_list_size=default_list_size,
    )


def test_composite_fields_cost_one_leaves_and_introspection_nothing():
    assert cost("{ item { id tags } __typename __schema { types { name } } }") == (1, False)


def test_a_list_multiplies_its_subtree_by_its_slicing_argument_or_the_default_size():
    assert cost("{ items { id } }") == (10, False)
    assert cost("{ items(first: 3) { id children(limit: 4) { id } } }") == (3 * (1 + 4), False)
    assert cost("{ items(first: 3, last: 5) { id } }") == (5, False)  # the largest slice
    assert cost("{ paged { id } }") == (25, False)  # the argument's default
    assert cost("{ items { id } }", default_list_size=2) == (2, False)


def test_a_slicing_variable_is_read_per_request():
    text = "query($n: Int) { items(first: $n) { children { id } } }"
    assert cost(text, {"n": 2}) == (2 * (1 + 10), True)
    assert cost(text, {}) == (10 * 11, True)


def test_fragments_count_once_per_spread():
    assert cost("{ item { ...F } items(first: 2) { ...F } } fragment F on Item { children(limit: 3) { id } }") == (
        1 + 3 + 2 * (1 + 3),
        False,
    )


def test_cost_and_list_size_directives_are_honoured():
    assert cost("{ expensive sized { id } }") == (7 + 3, False)
    assert cost("{ sliced(count: 4, first: 100) { id } }") == (4, False)
