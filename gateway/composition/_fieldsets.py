"""Checking `@key`, `@requires` and `@provides` field sets against one subgraph's types."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from graphql import FieldNode, GraphQLError, InlineFragmentNode, parse

from ..supergraph import named_type
from ._errors import CompositionError, location_of
from ._subgraph import Field, Key, Subgraph, TypeDef


@dataclass(frozen=True, slots=True)
class SelectedField:
    parent: str  # the type the field is selected on
    field: Field
    has_arguments: bool
    has_selection: bool
    under_external: bool  # an ancestor in the field set is @external

    @property
    def needs_external(self) -> bool:
        """Leaf fields of @requires/@provides must be @external unless an ancestor is."""
        return not self.has_selection and not self.under_external


class FieldSetProblem(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def walk(subgraph: Subgraph, type_name: str, field_set: str) -> list[SelectedField]:
    """Every field a field set selects, resolved against the subgraph; raises FieldSetProblem."""
    try:
        document = parse("{" + field_set + "}", no_location=True)
    except GraphQLError as error:
        raise FieldSetProblem(f'the field set "{field_set}" is not valid: {error.message}') from None
    selected: list[SelectedField] = []
    _walk(subgraph, type_name, document.definitions[0].selection_set.selections, selected, False)  # type: ignore[union-attr]
    return selected


def _walk(subgraph: Subgraph, type_name: str, selections, selected: list[SelectedField], under_external: bool) -> None:
    type_def = subgraph.types.get(type_name)
    for selection in selections:
        if isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition.name.value if selection.type_condition else type_name
            if condition not in subgraph.types:
                raise FieldSetProblem(f'unknown type "{condition}" in a field set')
            _walk(subgraph, condition, selection.selection_set.selections, selected, under_external)
            continue
        if not isinstance(selection, FieldNode):
            raise FieldSetProblem("field sets may not use fragment spreads")
        name = selection.name.value
        if name == "__typename":
            continue
        field_def = type_def.fields.get(name) if type_def is not None else None
        if field_def is None:
            raise FieldSetProblem(
                f'cannot query field "{name}" on type "{type_name}" (if the field is defined in another subgraph, declare it @external here)'
            )
        child_type = subgraph.types.get(named_type(field_def.type))
        composite = child_type is not None and child_type.kind in ("OBJECT", "INTERFACE", "UNION")
        if composite and selection.selection_set is None:
            raise FieldSetProblem(f'field "{type_name}.{name}" is a composite type and needs a selection')
        if not composite and selection.selection_set is not None:
            raise FieldSetProblem(f'field "{type_name}.{name}" is a leaf and cannot have a selection')
        selected.append(
            SelectedField(
                type_name, field_def, bool(selection.arguments), selection.selection_set is not None, under_external
            )
        )
        if selection.selection_set is not None:
            _walk(
                subgraph,
                named_type(field_def.type),
                selection.selection_set.selections,
                selected,
                under_external or field_def.external,
            )


def check_field_sets(subgraph: Subgraph) -> tuple[list[CompositionError], set[tuple[str, str]], set[tuple[str, str]]]:
    """Validate every field set of a subgraph; return errors, the (type, field) pairs used, and of
    those the pairs a `@key` selects (at any depth: such fields are shareable, see composed_view).
    The subgraph is only read."""
    errors: list[CompositionError] = []
    used: set[tuple[str, str]] = set()
    in_keys: set[tuple[str, str]] = set()

    def fail(code: str, message: str, node) -> None:
        errors.append(CompositionError(code, message, subgraph.name, location_of(node)))

    for type_def in subgraph.types.values():
        for key in type_def.keys:
            _check_key(subgraph, type_def, key, fail, used, in_keys)
        for field_def in type_def.fields.values():
            if field_def.requires is not None:
                _check_requires(subgraph, type_def, field_def, fail, used)
            if field_def.provides is not None:
                _check_provides(subgraph, type_def, field_def, fail, used)
    return errors, used, in_keys


def _check_key(subgraph: Subgraph, type_def: TypeDef, key: Key, fail, used: set, in_keys: set) -> None:
    try:
        selected = walk(subgraph, type_def.name, key.fields)
    except FieldSetProblem as problem:
        fail(
            "KEY_INVALID_FIELDS",
            f'on type "{type_def.name}", the @key(fields: "{key.fields}") is invalid: {problem.message}',
            key.node,
        )
        return
    for item in selected:
        used.add((item.parent, item.field.name))
        in_keys.add((item.parent, item.field.name))
        if item.has_arguments or item.field.arguments:
            fail(
                "KEY_FIELDS_HAS_ARGS",
                f'on type "{type_def.name}", the @key uses field "{item.parent}.{item.field.name}" which has arguments',
                key.node,
            )
        target = subgraph.types.get(named_type(item.field.type))
        if target is not None and target.kind in ("INTERFACE", "UNION"):
            fail(
                "KEY_FIELDS_SELECT_INVALID_TYPE",
                f'on type "{type_def.name}", the @key selects "{item.parent}.{item.field.name}" of type {item.field.type}: interfaces and unions cannot be keys',
                key.node,
            )
        if item.field.requires is not None or item.field.provides is not None:
            fail(
                "KEY_HAS_DIRECTIVE_IN_FIELDS_ARG",
                f'on type "{type_def.name}", the @key selects "{item.field.name}" which has @requires or @provides',
                key.node,
            )


def _directive_node(field_def: Field, name: str):
    node = field_def.node
    for directive in getattr(node, "directives", None) or ():
        if directive.name.value == name or directive.name.value.endswith(
            "__" + name
        ):  # `@federation__requires` too; never `@requiresScopes`
            return directive
    return node


def _check_requires(subgraph: Subgraph, type_def: TypeDef, field_def: Field, fail, used: set) -> None:
    node = _directive_node(field_def, "requires")
    try:
        selected = walk(subgraph, type_def.name, field_def.requires or "")
    except FieldSetProblem as problem:
        fail(
            "REQUIRES_INVALID_FIELDS",
            f'on field "{type_def.name}.{field_def.name}", @requires is invalid: {problem.message}',
            node,
        )
        return
    for item in selected:
        used.add((item.parent, item.field.name))
        if item.needs_external and not item.field.external and not _is_key_of(subgraph, item.parent, item.field.name):
            fail(
                "REQUIRES_FIELDS_MISSING_EXTERNAL",
                f'on field "{type_def.name}.{field_def.name}", @requires selects "{item.parent}.{item.field.name}" which is not marked @external',
                node,
            )


def _is_key_of(subgraph: Subgraph, type_name: str, field_name: str) -> bool:
    type_def = subgraph.types.get(type_name)
    return type_def is not None and field_name in type_def.key_field_names()


def _check_provides(subgraph: Subgraph, type_def: TypeDef, field_def: Field, fail, used: set) -> None:
    node = _directive_node(field_def, "provides")
    target = subgraph.types.get(named_type(field_def.type))
    if target is None or target.kind not in ("OBJECT", "INTERFACE", "UNION"):
        fail(
            "PROVIDES_ON_NON_OBJECT_FIELD",
            f'field "{type_def.name}.{field_def.name}" has @provides but returns {field_def.type}, not an object',
            node,
        )
        return
    try:
        selected = walk(subgraph, target.name, field_def.provides or "")
    except FieldSetProblem as problem:
        fail(
            "PROVIDES_INVALID_FIELDS",
            f'on field "{type_def.name}.{field_def.name}", @provides is invalid: {problem.message}',
            node,
        )
        return
    for item in selected:
        used.add((item.parent, item.field.name))
        parent = subgraph.types.get(item.parent)
        if parent is not None and parent.kind == "INTERFACE":
            # provided on an interface: the implementations' fields are the external ones
            for implementation in subgraph.types.values():
                if item.parent in implementation.interfaces and item.field.name in implementation.fields:
                    used.add((implementation.name, item.field.name))
            continue
        if item.needs_external and not item.field.external and not _is_key_of(subgraph, item.parent, item.field.name):
            fail(
                "PROVIDES_FIELDS_MISSING_EXTERNAL",
                f'on field "{type_def.name}.{field_def.name}", @provides selects "{item.parent}.{item.field.name}" which is not marked @external',
                node,
            )


def externals(subgraph: Subgraph) -> Iterator[tuple[TypeDef, Field]]:
    for type_def in subgraph.types.values():
        for field_def in type_def.fields.values():
            if field_def.external:
                yield type_def, field_def
