"""REST connectors: a partner's JSON API served like a subgraph, declared with Apollo Connectors'
directives (`@source`, `@connect`, connect spec v0.1-v0.3) in the connector's SDL.

`read_connect_sdl` validates the SDL once per registration (every problem, with its line:column)
into a `ConnectSchema`; `RestClient` is the executor's client for it: it runs each planned fetch
in process against an executable schema whose resolvers make the declared HTTP calls and map the
JSON answers with the selection mapping. A partner's answer is untrusted data: it never reaches a
client's error message, and its size and shape are bounded before anything is mapped.

Decisions where Apollo's documentation is silent or where Citygate is stricter:
- `$config`, `$context`, `$request`, `$env` and header `from:` are refused: the connector's
  secrets travel in its manifest's headers (which win over the SDL's headers of the same name and
  go with every call), and nothing of a requester's request is forwarded to a partner.
- Every URL is on the connector's registered origin (CONNECT_URL_ORIGIN otherwise); the scheme,
  host and port of a URL are literal text; a value in a path is one percent-encoded segment.
- In a query string, a parameter whose value is one expression is dropped when null and repeated
  when a list (`?id={$batch.id}` -> `id=1&id=2`); `->joinNotNull(',')` makes one comma-joined value.
- `$` in a request mapping (`body`, `queryParams`) is `$args` on a root field, else `$this`/`$batch`.
- A type with a type-level @connect (or returned by a Query field with `entity: true`) is an
  entity; without @key it gets `@key(fields: ...)` in `composition_sdl` from the fields its
  connector reads. An entity made by a selection with only its key (`district: { code: districtCode }`)
  gets its other fields from its entity connector, batched per step of the execution with $batch.
- A keyed type without an entity connector resolves only its keys and its @connect fields (the
  planner may ask for any field by key): other fields are CONNECT_MISSING_RESOLVER.
- Identical GET calls within one fetch are made once; between fetches, identical GETs in flight
  share one call when the pool shares identical requests. Other methods are never shared.
- An entity connector may read from `$this`/`$batch`, besides the key, the fields a @requires of
  its type names; it need not select the type's @external fields.

Validation codes: see `_directives`. Execution codes (`extensions.code`, with `connector` and, for
HTTP errors, `status`): CONNECTOR_HTTP_ERROR (non-2xx, redirects included: none is followed),
CONNECTOR_TIMEOUT, CONNECTOR_INVALID_RESPONSE (not JSON, or over `max_answer_bytes`),
CONNECTOR_MAPPING_ERROR (the answer does not fit the mapping or the GraphQL types),
CONNECTOR_REQUEST_ERROR (a path value missing: nothing was sent), CONNECTOR_UNREACHABLE, and
SUBGRAPH_UNAVAILABLE (an address the policy refuses; the breaker open raises SubgraphCircuitOpen
like HttpSubgraph).
"""

from __future__ import annotations

from ._client import RestClient
from ._directives import CONNECT_SPEC, ConnectError, ConnectProblem, ConnectSchema, read_connect_sdl
from ._openapi import MAX_DOCUMENT_BYTES, OpenApiError, import_openapi

__all__ = [
    "CONNECT_SPEC",
    "MAX_DOCUMENT_BYTES",
    "ConnectError",
    "ConnectProblem",
    "ConnectSchema",
    "OpenApiError",
    "RestClient",
    "import_openapi",
    "read_connect_sdl",
]
