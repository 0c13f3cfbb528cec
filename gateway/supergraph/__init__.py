"""The supergraph stage: load a composed supergraph and answer questions about it.

What the later stages share about the schema lives here, once: the masking strategies, the
privacy spec's URL, the named type of a printed type, field sets."""

from ._load import PRIVACY_SPEC, PRIVACY_SPEC_URL, load_supergraph
from ._model import (
    STRATEGIES,
    AggregateField,
    EntityKey,
    FieldFacts,
    FieldInSubgraph,
    PersonalField,
    PrivacyAnnotations,
    PrivacyView,
    Subgraph,
    SupergraphError,
    SupergraphModel,
    TypeFacts,
    TypeInSubgraph,
    field_set_names,
    fitting_strategies,
    named_type,
    parse_field_set,
    stricter,
)

__all__ = [
    "PRIVACY_SPEC",
    "PRIVACY_SPEC_URL",
    "STRATEGIES",
    "AggregateField",
    "EntityKey",
    "FieldFacts",
    "FieldInSubgraph",
    "PersonalField",
    "PrivacyAnnotations",
    "PrivacyView",
    "Subgraph",
    "SupergraphError",
    "SupergraphModel",
    "TypeFacts",
    "TypeInSubgraph",
    "field_set_names",
    "fitting_strategies",
    "load_supergraph",
    "named_type",
    "parse_field_set",
    "stricter",
]
