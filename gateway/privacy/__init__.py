"""The privacy stage: annotations, decisions, masking (see _guard.py for the rules)."""

from ._annotations import STRATEGIES, AnnotationProblem, PrivacySchema, category_covers, fides_categories
from ._client_schema import PLACEHOLDER_FIELD, PUBLIC_AUDIENCE, Audience, ClientSchemas, client_schema, field_sources
from ._flows import FlowVerdict, RequestFlows
from ._guard import AuditRefused, PrivacyGuard
from ._inject import CONTRIBUTORS_PREFIX, ENTITY_PREFIX, SUBJECT_KEY, entity_key_fields, inject_privacy_fields
from ._masking import mask

__all__ = [
    "CONTRIBUTORS_PREFIX",
    "ENTITY_PREFIX",
    "PLACEHOLDER_FIELD",
    "PUBLIC_AUDIENCE",
    "STRATEGIES",
    "SUBJECT_KEY",
    "AnnotationProblem",
    "Audience",
    "AuditRefused",
    "ClientSchemas",
    "FlowVerdict",
    "PrivacyGuard",
    "PrivacySchema",
    "RequestFlows",
    "category_covers",
    "client_schema",
    "entity_key_fields",
    "fides_categories",
    "field_sources",
    "inject_privacy_fields",
    "mask",
]
