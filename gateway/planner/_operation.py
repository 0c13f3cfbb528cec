"""A client operation, normalized for planning and shaping.

Fragment spreads are inlined, `@skip`/`@include` are decided (the plan cache keys on the values
of the variables they read), and every field keeps its response key, printed arguments and the
variables those arguments use. Nothing here knows about subgraphs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from graphql import (
    BooleanValueNode,
    DirectiveNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionNode,
    VariableNode,
    Visitor,
    print_ast,
    visit,
)

INTROSPECTION_ROOT_FIELDS = frozenset(("__schema", "__type"))


@dataclass(slots=True, eq=False)
class NField:
    key: str  # the response key (alias or name)
    name: str
    arguments: str  # printed, with parentheses, "" when none
    variables: frozenset[str]
    selections: tuple[NSelection, ...] | None  # None for leaf fields

    def with_selections(self, selections: tuple[NSelection, ...]) -> NField:
        return NField(self.key, self.name, self.arguments, self.variables, selections)


@dataclass(slots=True, eq=False)
class NFragment:
    type_condition: str | None
    selections: tuple[NSelection, ...]


NSelection = NField | NFragment


class _VariableCollector(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_variable(self, node: VariableNode, *_args) -> None:
        self.names.add(node.name.value)


def variables_in(node) -> frozenset[str]:
    collector = _VariableCollector()
    visit(node, collector)
    return frozenset(collector.names)


def condition_variables(
    operation: OperationDefinitionNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> tuple[str, ...]:
    """Names of the variables read by `@skip`/`@include` anywhere in the operation."""
    names: set[str] = set()

    class _Finder(Visitor):
        def enter_directive(self, node: DirectiveNode, *_args) -> None:
            if node.name.value in ("skip", "include"):
                for argument in node.arguments or ():
                    if isinstance(argument.value, VariableNode):
                        names.add(argument.value.name.value)

    visit(operation, _Finder())
    for fragment in fragments.values():
        visit(fragment, _Finder())
    return tuple(sorted(names))


def _included(node: SelectionNode, variables: Mapping[str, object]) -> bool:
    for directive in node.directives or ():
        name = directive.name.value
        if name not in ("skip", "include"):
            continue
        value_node = next((a.value for a in directive.arguments or () if a.name.value == "if"), None)
        if isinstance(value_node, BooleanValueNode):
            value = value_node.value
        elif isinstance(value_node, VariableNode):
            value = bool(variables.get(value_node.name.value))
        else:
            value = False
        if name == "skip" and value:
            return False
        if name == "include" and not value:
            return False
    return True


def normalize_selections(
    selections: Iterable[SelectionNode],
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, object],
) -> tuple[NSelection, ...]:
    result: list[NSelection] = []
    for node in selections:
        if not _included(node, variables):
            continue
        if isinstance(node, FieldNode):
            arguments = ""
            used: frozenset[str] = frozenset()
            if node.arguments:
                arguments = "(" + ", ".join(print_ast(a) for a in node.arguments) + ")"
                used = frozenset().union(*(variables_in(a) for a in node.arguments))
            sub = None
            if node.selection_set is not None:
                sub = normalize_selections(node.selection_set.selections, fragments, variables)
            result.append(
                NField(
                    key=node.alias.value if node.alias else node.name.value,
                    name=node.name.value,
                    arguments=arguments,
                    variables=used,
                    selections=sub,
                )
            )
        elif isinstance(node, InlineFragmentNode):
            condition = node.type_condition.name.value if node.type_condition else None
            result.append(
                NFragment(condition, normalize_selections(node.selection_set.selections, fragments, variables))
            )
        elif isinstance(node, FragmentSpreadNode):
            fragment = fragments[node.name.value]
            result.append(
                NFragment(
                    fragment.type_condition.name.value,
                    normalize_selections(fragment.selection_set.selections, fragments, variables),
                )
            )
    return tuple(result)


def field_set_selections(selections: Iterable[SelectionNode]) -> tuple[NSelection, ...]:
    """A federation field set (`@key`, `@requires`, `@provides`) as normalized selections."""
    return normalize_selections(selections, {}, {})


@dataclass(slots=True)
class CollectedField:
    field: NField
    # True when every occurrence sits in a fragment on a concrete type: such a field may be
    # planned for that type alone. A field selected on an abstract type must be resolvable
    # for every possible type through the same subgraph.
    conditioned: bool


def collect_fields(
    selections: Iterable[NSelection],
    applies: Callable[[str], bool],
    is_concrete: Callable[[str], bool],
) -> dict[str, CollectedField]:
    """GraphQL's CollectFields for one runtime type: same response keys merged, in order."""
    collected: dict[str, CollectedField] = {}
    _collect(selections, applies, is_concrete, collected, False)
    return collected


def _collect(selections, applies, is_concrete, collected: dict[str, CollectedField], conditioned: bool) -> None:
    for selection in selections:
        if isinstance(selection, NField):
            existing = collected.get(selection.key)
            if existing is None:
                collected[selection.key] = CollectedField(selection, conditioned)
            else:
                if existing.field.selections is not None and selection.selections is not None:
                    existing.field = existing.field.with_selections(existing.field.selections + selection.selections)
                existing.conditioned = existing.conditioned and conditioned
        else:
            condition = selection.type_condition
            if condition is None:
                _collect(selection.selections, applies, is_concrete, collected, conditioned)
            elif applies(condition):
                _collect(selection.selections, applies, is_concrete, collected, conditioned or is_concrete(condition))
