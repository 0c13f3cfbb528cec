"""The supergraph stage: load a composed supergraph and answer questions about it."""

from ._load import load_supergraph
from ._model import (
    EntityKey,
    FieldFacts,
    FieldInSubgraph,
    Subgraph,
    SupergraphError,
    SupergraphModel,
    TypeFacts,
    TypeInSubgraph,
    parse_field_set,
)

__all__ = [
    "EntityKey",
    "FieldFacts",
    "FieldInSubgraph",
    "Subgraph",
    "SupergraphError",
    "SupergraphModel",
    "TypeFacts",
    "TypeInSubgraph",
    "load_supergraph",
    "parse_field_set",
]
