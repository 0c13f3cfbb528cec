"""The registry stage: connectors in, a served supergraph out (see _registry.py)."""

from ._admin import Keys, admin_routes, new_key
from ._manifest import NAME as CONNECTOR_NAME
from ._manifest import (
    Manifest,
    ManifestError,
    erasure_origin_problem,
    load_python_schema,
    parse_manifest,
    python_schema_sdl,
    read_manifest_folder,
)
from ._registry import OPERATOR, Actor, Connector, Refusal, Registry, RegistryError, Report
from ._rules import Problem, check_ownership, check_rest_origins, check_upstream_url, privacy_lint

__all__ = [
    "CONNECTOR_NAME",
    "OPERATOR",
    "Actor",
    "Connector",
    "Keys",
    "Manifest",
    "ManifestError",
    "Problem",
    "Refusal",
    "Registry",
    "RegistryError",
    "Report",
    "admin_routes",
    "check_ownership",
    "check_rest_origins",
    "check_upstream_url",
    "erasure_origin_problem",
    "load_python_schema",
    "new_key",
    "parse_manifest",
    "privacy_lint",
    "python_schema_sdl",
    "read_manifest_folder",
]
