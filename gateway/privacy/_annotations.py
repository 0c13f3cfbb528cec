"""The privacy annotations of a supergraph, resolved per concrete type and checked.

A personal field must have a determinable subject (its type, or an interface it implements,
names the subject field with @subject), a category of the Fides taxonomy, and a known masking
strategy. These checks run at composition and again when a policy adds annotations.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..supergraph import AggregateField, PersonalField, SupergraphModel
from ..taxonomy import category_covers, fides_categories

STRATEGIES = ("null", "partial", "coarsen", "pseudonymise")
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

    def _lineage(self, type_name: str) -> list[str]:
        return [type_name, *self.model.interfaces_of(type_name)]

    def _inherited(self, annotations: dict, type_name: str, field_name: str | None = None):
        """The annotation on the type, else on the first of its interfaces that has one."""
        for name in self._lineage(type_name):
            found = annotations.get(name if field_name is None else (name, field_name))
            if found is not None:
                return found
        return None

    def personal(self, type_name: str, field_name: str) -> PersonalField | None:
        return self._inherited(self.annotations.personal, type_name, field_name)

    def aggregate(self, type_name: str, field_name: str) -> AggregateField | None:
        return self._inherited(self.annotations.aggregates, type_name, field_name)

    def subject_field(self, type_name: str) -> str | None:
        return self._inherited(self.annotations.subjects, type_name)

    def concrete_types_with(self, type_name: str) -> list[str]:
        """The object types a value of `type_name` may be, in the API schema."""
        return sorted(self.model.api_possible_types(type_name))

    def check(self) -> list[AnnotationProblem]:
        problems: list[AnnotationProblem] = []
        categories = fides_categories()
        types = self.model.types
        for (type_name, field_name), personal in sorted(self.annotations.personal.items()):
            coordinate = f"{type_name}.{field_name}"
            facts = types.get(type_name)
            if facts is None or field_name not in facts.fields:
                problems.append(AnnotationProblem("PRIVACY_UNKNOWN_FIELD", f"{coordinate} does not exist", coordinate))
                continue
            if personal.category not in categories:
                problems.append(
                    AnnotationProblem("PRIVACY_UNKNOWN_CATEGORY", f'{coordinate}: "{personal.category}" is not a data category of the Fides taxonomy', coordinate)
                )
            if personal.strategy is not None and personal.strategy not in STRATEGIES:
                problems.append(
                    AnnotationProblem("PRIVACY_UNKNOWN_STRATEGY", f'{coordinate}: strategy "{personal.strategy}" is not one of {", ".join(STRATEGIES)}', coordinate)
                )
            holders = [type_name] if facts.kind == "OBJECT" else self.concrete_types_with(type_name)
            for holder in holders or [type_name]:
                subject = self.subject_field(holder)
                if subject is None:
                    problems.append(
                        AnnotationProblem(
                            "PRIVACY_SUBJECT_UNDETERMINED",
                            f"{coordinate} is personal but {holder} names no subject: add @subject(field: ...) to {holder}",
                            coordinate,
                        )
                    )
                elif subject not in types[holder].fields if holder in types else True:
                    problems.append(
                        AnnotationProblem("PRIVACY_SUBJECT_UNDETERMINED", f"{holder} names {subject!r} as its subject, but has no such field", coordinate)
                    )
        for (type_name, field_name), aggregate in sorted(self.annotations.aggregates.items()):
            coordinate = f"{type_name}.{field_name}"
            facts = types.get(type_name)
            if facts is None or field_name not in facts.fields:
                problems.append(AnnotationProblem("PRIVACY_UNKNOWN_FIELD", f"{coordinate} does not exist", coordinate))
            elif aggregate.contributors not in facts.fields:
                problems.append(
                    AnnotationProblem("PRIVACY_AGGREGATE_CONTRIBUTORS_MISSING", f"{coordinate} counts its contributors in {aggregate.contributors!r}, which {type_name} lacks", coordinate)
                )
        return problems
