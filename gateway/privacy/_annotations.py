"""The privacy annotations of a supergraph, resolved per concrete type and checked.

Default private: on a type with a subject (its own @subject, or an interface's), a field without
an annotation is personal — the subject field and fields typed like an identifier of the subject
with category `user.unique_id`, others with the generic `user` — unless its owner (or the
policy) declares it @nonPersonal; `__typename` never is. A field whose type names a subject of
its own (`Resident.issuesReported: [StreetIssue]`) is a link: the link is personal data of its
parent's subject like any other field (default `user`), and the objects it leads to are decided by
their own type. Where an interface's annotations meet the type's own, the stricter wins
(supergraph._model.stricter); they never loosen it.

A personal field must have a determinable subject, a category of the Fides taxonomy, and a known
masking strategy that fits its type; a type takes one subject. These checks run at composition
and again when a policy adds annotations. This module never decides a disclosure.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..supergraph import (
    STRATEGIES,
    AggregateField,
    PersonalField,
    PrivacyView,
    SupergraphModel,
    fitting_strategies,
    stricter,
)
from ..taxonomy import category_covers, fides_categories

__all__ = ["STRATEGIES", "AnnotationProblem", "PrivacySchema", "category_covers", "fides_categories"]


@dataclass(frozen=True, slots=True)
class AnnotationProblem:
    code: str
    message: str
    coordinate: str


class PrivacySchema:
    """Look-ups the executor needs, answered per concrete type (interfaces resolved)."""

    def __init__(self, model: SupergraphModel) -> None:
        self.model = model
        self.annotations = model.privacy
        self.view = PrivacyView(model.schema, model.privacy)

    def personal(self, type_name: str, field_name: str) -> PersonalField | None:
        """The field's annotation, inherited ones met with the stricter winning, or its default."""
        return self.view.personal(type_name, field_name)

    def aggregate(self, type_name: str, field_name: str) -> AggregateField | None:
        return self.view.aggregate(type_name, field_name)

    def subject_field(self, type_name: str) -> str | None:
        return self.view.subject_field(type_name)

    def concrete_types_with(self, type_name: str) -> list[str]:
        """The object types a value of `type_name` may be, in the API schema."""
        return sorted(self.model.api_possible_types(type_name))

    def check(self) -> list[AnnotationProblem]:
        problems: list[AnnotationProblem] = []
        categories = fides_categories()
        types = self.model.types
        schema = self.model.schema
        for (type_name, field_name), personal in sorted(self.annotations.personal.items()):
            coordinate = f"{type_name}.{field_name}"
            facts = types.get(type_name)
            if facts is None or field_name not in facts.fields:
                problems.append(AnnotationProblem("PRIVACY_UNKNOWN_FIELD", f"{coordinate} does not exist", coordinate))
                continue
            if personal.category not in categories:
                problems.append(
                    AnnotationProblem(
                        "PRIVACY_UNKNOWN_CATEGORY",
                        f'{coordinate}: "{personal.category}" is not a data category of the Fides taxonomy',
                        coordinate,
                    )
                )
            if personal.strategy is not None and personal.strategy not in STRATEGIES:
                problems.append(
                    AnnotationProblem(
                        "PRIVACY_UNKNOWN_STRATEGY",
                        f'{coordinate}: strategy "{personal.strategy}" is not one of {", ".join(STRATEGIES)}',
                        coordinate,
                    )
                )
            elif personal.strategy is not None:
                problems += self._unfit(type_name, field_name, personal.strategy)
            holders = [type_name] if facts.kind == "OBJECT" else self.concrete_types_with(type_name)
            for holder in holders or [type_name]:
                if self.subject_field(holder) is None:
                    problems.append(
                        AnnotationProblem(
                            "PRIVACY_SUBJECT_UNDETERMINED",
                            f"{coordinate} is personal but {holder} names no subject: add @subject(field: ...) to {holder}",
                            coordinate,
                        )
                    )
                # where an interface's annotation meets an implementation's, the stricter wins:
                # categories from two branches of the taxonomy have nothing to win with
                for name in (holder, *self.model.interfaces_of(holder)):
                    other = self.annotations.personal.get((name, field_name))
                    if (
                        other is not None
                        and other.category in categories
                        and personal.category in categories
                        and stricter(personal, other) is None
                    ):
                        problems.append(
                            AnnotationProblem(
                                "PRIVACY_ANNOTATION_CONFLICT",
                                f'{coordinate} is "{personal.category}" but {name}.{field_name} is "{other.category}": no category of the taxonomy covers both',
                                coordinate,
                            )
                        )
        for type_name in sorted(types):
            declarations = self.view.subject_declarations(type_name)
            if not declarations or type_name not in schema.type_map:
                continue
            fields = getattr(schema.type_map[type_name], "fields", None) or {}
            subject = declarations[0][1]
            if subject not in fields:
                problems.append(
                    AnnotationProblem(
                        "PRIVACY_SUBJECT_UNDETERMINED",
                        f"{type_name} names {subject!r} as its subject, but has no such field",
                        type_name,
                    )
                )
            differing = sorted({f"{where} names {field!r}" for where, field in declarations if field != subject})
            if differing:
                problems.append(
                    AnnotationProblem(
                        "PRIVACY_ANNOTATION_CONFLICT",
                        f"{type_name} has two subjects: {declarations[0][0]} names {subject!r}, {', '.join(differing)}",
                        type_name,
                    )
                )
        for type_name, field_name in sorted(self.annotations.non_personal):
            facts = types.get(type_name)
            if facts is None or field_name not in facts.fields:
                coordinate = f"{type_name}.{field_name}"
                problems.append(
                    AnnotationProblem(
                        "PRIVACY_UNKNOWN_FIELD", f"{coordinate} is declared non-personal but does not exist", coordinate
                    )
                )
        for (type_name, field_name), aggregate in sorted(self.annotations.aggregates.items()):
            coordinate = f"{type_name}.{field_name}"
            facts = types.get(type_name)
            if facts is None or field_name not in facts.fields:
                problems.append(AnnotationProblem("PRIVACY_UNKNOWN_FIELD", f"{coordinate} does not exist", coordinate))
            elif aggregate.contributors not in facts.fields:
                problems.append(
                    AnnotationProblem(
                        "PRIVACY_AGGREGATE_CONTRIBUTORS_MISSING",
                        f"{coordinate} counts its contributors in {aggregate.contributors!r}, which {type_name} lacks",
                        coordinate,
                    )
                )
        return problems

    def _unfit(self, type_name: str, field_name: str, strategy: str) -> list[AnnotationProblem]:
        """A declared strategy must fit the field's type: a masked value still fits the schema."""
        definition = getattr(self.model.schema.type_map.get(type_name), "fields", {}).get(field_name)
        if definition is None or strategy in fitting_strategies(definition.type):
            return []
        coordinate = f"{type_name}.{field_name}"
        return [
            AnnotationProblem(
                "PRIVACY_STRATEGY_UNFIT",
                f"{coordinate}: strategy {strategy!r} cannot mask a value of type {definition.type} "
                "(pseudonymise and partial: String or ID; coarsen: String, Int, Float or a latitude/longitude object; null: anything)",
                coordinate,
            )
        ]
