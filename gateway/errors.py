"""Citygate's exception hierarchy: every error a client, a partner or the operator sees is a
`CitygateError`, and its `code` is the stable `extensions.code` (or the report's / the CLI's code)
it is shown with.

A class whose failures all read the same sets `code` on the class; a class carrying one of several
codes (a refused document, a consent refused for one of several reasons) sets it on the instance,
and the class attribute is then only its default. Code that turns an error into a response reads
`error.code`, never re-spells it. Control flow inside one module (`_Infeasible`, `_Unsure`, ...)
stays private and outside this hierarchy.

A leaf module: it imports nothing from `gateway`, so every stage may import it.
"""

from __future__ import annotations


class CitygateError(Exception):
    """An error someone outside the process sees, under a stable code."""

    code: str = "INTERNAL_ERROR"


class ClientRefusal(CitygateError):
    """A client's request refused: its document, variables, identity, rights or consent."""

    code = "BAD_REQUEST"


class PartnerFault(CitygateError):
    """A partner's service could not be reached or answered what cannot be used: never the
    partner's words, only a code and a message of the gateway's."""

    code = "SUBREQUEST_HTTP_ERROR"


class ConfigurationError(CitygateError):
    """The operator's configuration (settings, supergraph, connectors, store) cannot be served."""

    code = "INVALID_CONFIGURATION"


__all__ = ["CitygateError", "ClientRefusal", "ConfigurationError", "PartnerFault"]
