"""The partner SDK: Citygate's privacy annotations as Strawberry schema directives.

    from gateway.sdk import privacy

    @strawberry.federation.type(keys=["id"], directives=[privacy.Subject(field="id")])
    class Resident:
        id: strawberry.ID
        email: str | None = strawberry.federation.field(
            directives=[privacy.Personal(category="user.contact.email")]
        )
        district_name: str = strawberry.federation.field(directives=[privacy.NonPersonal()])

On a type with a subject every field is personal unless annotated `NonPersonal()` (default
private), with the generic category `user` (`user.unique_id` for the subject field itself and
identifiers of the subject); fields whose type names its own subject are links, decided there.

Strawberry adds the `@link` to the privacy spec and the `@composeDirective`s by itself. This
module is small on purpose: what partners import stays stable.
"""

from __future__ import annotations

from types import SimpleNamespace

import strawberry
from strawberry.federation.schema_directive import Location, schema_directive

from .supergraph import PRIVACY_SPEC_URL


@schema_directive(locations=[Location.FIELD_DEFINITION], name="personal", compose=True, import_url=PRIVACY_SPEC_URL)
class Personal:
    category: str
    strategy: str | None = None


@schema_directive(
    locations=[Location.OBJECT, Location.INTERFACE], name="subject", compose=True, import_url=PRIVACY_SPEC_URL
)
class Subject:
    field: str


@schema_directive(locations=[Location.FIELD_DEFINITION], name="aggregate", compose=True, import_url=PRIVACY_SPEC_URL)
class Aggregate:
    contributors: str
    min_contributors: int | None = strawberry.UNSET  # type: ignore[assignment]
    statistic: str | None = strawberry.UNSET  # type: ignore[assignment]  # count | sum | mean (open data's noise)
    lower: float | None = strawberry.UNSET  # type: ignore[assignment]  # bounds of one contributor's value
    upper: float | None = strawberry.UNSET  # type: ignore[assignment]


@schema_directive(locations=[Location.FIELD_DEFINITION], name="nonPersonal", compose=True, import_url=PRIVACY_SPEC_URL)
class NonPersonal:
    """The field carries no personal data, though its type has a subject (its owner says so)."""


privacy = SimpleNamespace(
    Personal=Personal, Subject=Subject, Aggregate=Aggregate, NonPersonal=NonPersonal, SPEC_URL=PRIVACY_SPEC_URL
)

__all__ = ["PRIVACY_SPEC_URL", "Aggregate", "NonPersonal", "Personal", "Subject", "privacy"]
