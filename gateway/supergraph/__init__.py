"""The supergraph stage: load a composed supergraph and answer questions about it."""

from ._load import PRIVACY_SPEC, load_supergraph
from ._model import (
    AggregateField,
    EntityKey,
    FieldFacts,
    FieldInSubgraph,
    PersonalField,
    PrivacyAnnotations,
    Subgraph,
    SupergraphError,
    SupergraphModel,
    TypeFacts,
    TypeInSubgraph,
    parse_field_set,
)

__all__ = [
    "PRIVACY_SPEC",
    "AggregateField",
    "EntityKey",
    "FieldFacts",
    "FieldInSubgraph",
    "PersonalField",
    "PrivacyAnnotations",
    "Subgraph",
    "SupergraphError",
    "SupergraphModel",
    "TypeFacts",
    "TypeInSubgraph",
    "load_supergraph",
    "parse_field_set",
]
