"""Demand control: a static estimate of what an operation costs, before it is planned or run.

In the spirit of the IBM GraphQL cost spec and Apollo Router's demand control: a field of a
composite type (object, interface, union) costs 1, a leaf 0, introspection 0; a list field's
cost, its own and its selection's, is multiplied by its list size: the value of its slicing
argument (`first`, `last`, `limit`, `pageSize`, literal or variable, else the argument's
default), else `DocumentLimits.default_list_size`. Fragments are counted once per spread; the
selections of an abstract type are all counted (an upper bound).

`@cost(weight:)` and `@listSize(assumedSize:, slicingArguments:)` on a field of the supergraph
are honoured when the supergraph carries them (the composition of this repository drops them:
only a supergraph written or composed elsewhere has them).

The estimate depends on the variables only through slicing arguments given as variables: the
planner keeps it with the prepared document otherwise, and estimates again per request (one pass
over the document, fragments once each) only then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
    get_named_type,
    is_composite_type,
)

SLICING_ARGUMENTS = ("first", "last", "limit", "pageSize")
_INTROSPECTION = frozenset({"__schema", "__type", "__typename"})


@dataclass(frozen=True, slots=True)
class FieldCost:
    """What the supergraph says of one field's cost (`@cost`, `@listSize`)."""

    weight: int | None = None
    assumed_size: int | None = None
    slicing_arguments: tuple[str, ...] | None = None


def _int(node) -> int | None:
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, StringValueNode):  # the IBM spec's weight is a string
        try:
            return int(float(node.value))
        except ValueError:
            return None
    return None


def _default(argument) -> int | None:
    """An Int argument's default value (graphql-core 3.3 keeps it as `default`, a value or a literal)."""
    if argument is None:
        return None
    value = getattr(argument, "default_value", None)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    default = getattr(argument, "default", None)
    value = getattr(default, "value", None)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return (
        _int(getattr(default, "literal", None)) if isinstance(getattr(default, "literal", None), IntValueNode) else None
    )


def field_costs(schema: GraphQLSchema) -> dict[tuple[str, str], FieldCost]:
    """The `@cost` / `@listSize` of the supergraph's fields, by (type, field): only those that have one."""
    found: dict[tuple[str, str], FieldCost] = {}
    for type_name, named in schema.type_map.items():
        for field_name, field in (getattr(named, "fields", None) or {}).items():
            node = getattr(field, "ast_node", None)
            weight = assumed = slicing = None
            for directive in getattr(node, "directives", None) or ():
                arguments = {argument.name.value: argument.value for argument in directive.arguments or ()}
                if directive.name.value == "cost":
                    weight = _int(arguments.get("weight"))
                elif directive.name.value == "listSize":
                    assumed = _int(arguments.get("assumedSize"))
                    names = arguments.get("slicingArguments")
                    if isinstance(names, ListValueNode):
                        slicing = tuple(value.value for value in names.values if isinstance(value, StringValueNode))
            if weight is not None or assumed is not None or slicing is not None:
                found[(type_name, field_name)] = FieldCost(weight, assumed, slicing)
    return found


class _Estimate:
    def __init__(self, schema, costs, fragments, variables, default_list_size) -> None:
        self.schema = schema
        self.costs = costs
        self.fragments = fragments
        self.variables = variables
        self.default_list_size = default_list_size
        self.uses_variables = False  # a slicing argument given as a variable
        self.fragment_costs: dict[str, int] = {}

    def list_size(self, field_def, node: FieldNode, declared: FieldCost | None) -> int:
        given = {argument.name.value: argument.value for argument in node.arguments or ()}
        names = (
            declared.slicing_arguments
            if declared is not None and declared.slicing_arguments is not None
            else SLICING_ARGUMENTS
        )
        sizes = []
        for name in names:
            value = given.get(name)
            if isinstance(value, VariableNode):
                self.uses_variables = True
                sent = self.variables.get(value.name.value)
                if isinstance(sent, int) and not isinstance(sent, bool):
                    sizes.append(sent)
                    continue
                value = None
            if value is not None:
                literal = _int(value) if isinstance(value, IntValueNode) else None
                if literal is not None:
                    sizes.append(literal)
                continue
            default = _default(field_def.args.get(name))
            if default is not None:
                sizes.append(default)
        if sizes:
            return max(0, max(sizes))
        if declared is not None and declared.assumed_size is not None:
            return declared.assumed_size
        return self.default_list_size

    def selection_set(self, parent, selection_set: SelectionSetNode) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(parent, selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition is not None else parent
                if inner is not None:
                    total += self.selection_set(inner, selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value)
        return total

    def fragment(self, name: str) -> int:
        known = self.fragment_costs.get(name)
        if known is not None:
            return known
        self.fragment_costs[name] = 0  # a cycle counts nothing on its way back (validation refuses cycles)
        definition: FragmentDefinitionNode | None = self.fragments.get(name)
        inner = self.schema.get_type(definition.type_condition.name.value) if definition is not None else None
        cost = (
            self.selection_set(inner, definition.selection_set) if inner is not None and definition is not None else 0
        )
        self.fragment_costs[name] = cost
        return cost

    def field(self, parent, node: FieldNode) -> int:
        name = node.name.value
        if name in _INTROSPECTION:
            return 0
        field_def = (getattr(parent, "fields", None) or {}).get(name)
        if field_def is None:
            return 0  # validation refuses it
        declared = self.costs.get((parent.name, name))
        named = get_named_type(field_def.type)
        cost = (
            declared.weight
            if declared is not None and declared.weight is not None
            else (1 if is_composite_type(named) else 0)
        )
        if node.selection_set is not None:
            cost += self.selection_set(named, node.selection_set)
        type_ = field_def.type
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        if isinstance(type_, GraphQLList):
            cost *= self.list_size(field_def, node, declared)
        return cost


def estimate_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    *,
    costs: Mapping[tuple[str, str], FieldCost] | None = None,
    variables: Mapping[str, object] | None = None,
    default_list_size: int = 10,
) -> tuple[int, bool]:
    """The operation's estimated cost, and whether it depends on the variables (slicing arguments
    given as variables). On a validated document, nested no deeper than the limits allow."""
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0, False
    estimate = _Estimate(schema, costs or {}, fragments, variables or {}, default_list_size)
    return estimate.selection_set(root, operation.selection_set), estimate.uses_variables
