"""Adding what privacy decisions need to an operation before it is planned.

Wherever a query selects a personal field, the subject field of that type is selected too (as
`_cg_subject`), unless the client selects it there itself under its own name and without
arguments; wherever it selects an aggregate, the aggregate's contributor count (as
`_cg_count_<field>`) and the fields of its type's entity key (as `_cg_entity_<key field>`), by
which open data under differential privacy knows which entity an aggregate is about (_noise.py).
The client never sees them: shaping follows the client's own selection. All these keys carry the
gateway's reserved prefix: no client alias and no registered schema name may use it, and a
subgraph's answer never adds a key its fetch did not ask for (executor/_merge.py), so what the
guard reads there is what the fetch that selected it answered.
"""

from __future__ import annotations

from graphql import FieldNode

from ..planner import RESERVED_PREFIX, NField, NFragment, NSelection, collect_fields
from ..supergraph import SupergraphModel, named_type
from ._annotations import PrivacySchema

SUBJECT_KEY = RESERVED_PREFIX + "subject"
CONTRIBUTORS_PREFIX = RESERVED_PREFIX + "count_"
ENTITY_PREFIX = RESERVED_PREFIX + "entity_"


def entity_key_fields(model: SupergraphModel, type_name: str) -> tuple[str, ...]:
    """The fields of the type's first resolvable `@key` (subgraphs in name order) made of scalar
    fields only: what names one entity of the type wherever it is reached. Empty when it has none
    (an aggregate of such a type is then never recognised as the same question again)."""
    facts = model.types.get(type_name)
    if facts is None:
        return ()
    for subgraph in sorted(facts.subgraphs):
        for key in facts.subgraphs[subgraph].resolvable_keys():
            if key.selections and all(
                isinstance(s, FieldNode) and s.selection_set is None and s.alias is None for s in key.selections
            ):
                return tuple(dict.fromkeys(s.name.value for s in key.selections))  # type: ignore[attr-defined]
    return ()


def inject_privacy_fields(
    schema: PrivacySchema, selections: tuple[NSelection, ...], root_type: str
) -> tuple[NSelection, ...]:
    return _rewrite(schema, selections, root_type)


def _field_type(schema: PrivacySchema, parent: str, name: str) -> str | None:
    facts = schema.model.types.get(parent)
    if facts is None:
        return None
    field_facts = facts.fields.get(name)
    return named_type(field_facts.api_type) if field_facts is not None else None


def _rewrite(schema: PrivacySchema, selections: tuple[NSelection, ...], parent: str) -> tuple[NSelection, ...]:
    result: list[NSelection] = []
    for selection in selections:
        if isinstance(selection, NFragment):
            result.append(
                NFragment(
                    selection.type_condition, _rewrite(schema, selection.selections, selection.type_condition or parent)
                )
            )
            continue
        if selection.selections is None:
            result.append(selection)
            continue
        child = _field_type(schema, parent, selection.name)
        if child is None:
            # a field of a fragment's type, reached through an abstract parent
            result.append(selection)
            continue
        rewritten = _rewrite(schema, selection.selections, child)
        result.append(selection.with_selections(rewritten + _additions(schema, selection.selections, child)))
    return tuple(result)


def _additions(schema: PrivacySchema, selections: tuple[NSelection, ...], type_name: str) -> tuple[NSelection, ...]:
    model = schema.model
    additions: list[NSelection] = []
    for concrete in sorted(model.api_possible_types(type_name)) or [type_name]:

        def applies(condition: str, concrete: str = concrete) -> bool:
            return condition == concrete or concrete in model.api_possible_types(condition)

        fields = collect_fields(
            selections, applies, lambda name: name in model.types and model.types[name].kind == "OBJECT"
        )
        wanted: list[NSelection] = []
        if any(schema.personal(concrete, c.field.name) for c in fields.values()):
            subject = schema.subject_field(concrete)
            own = fields.get(subject) if subject is not None else None
            # the client's own selection of the subject field, unaliased and without arguments,
            # already carries the subject: the shaper reads it there (FieldGuard.stand_in)
            if subject is not None and (own is None or own.field.name != subject or own.field.arguments):
                wanted.append(NField(SUBJECT_KEY, subject, "", frozenset(), None))
        entity_wanted = False
        for collected in fields.values():
            aggregate = schema.aggregate(concrete, collected.field.name)
            if aggregate is not None:
                wanted.append(
                    NField(CONTRIBUTORS_PREFIX + collected.field.name, aggregate.contributors, "", frozenset(), None)
                )
                entity_wanted = True
        if entity_wanted:
            wanted.extend(
                NField(ENTITY_PREFIX + name, name, "", frozenset(), None) for name in entity_key_fields(model, concrete)
            )
        if wanted:
            additions.append(NFragment(concrete, tuple(wanted)))
    return tuple(additions)
