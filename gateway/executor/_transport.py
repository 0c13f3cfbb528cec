"""Reaching subgraphs: over HTTP with one pooled httpx client, or in-process without a hop.

`Subgraphs` routes each subgraph name to its client. Clients share one `httpx.AsyncClient`,
so a new supergraph (a new Engine) reuses the open connections of the previous one and never
closes them under requests still in flight.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import httpx
import orjson

from ._fetch import SubgraphUnavailable

_BASE_HEADERS = {"content-type": "application/json", "accept": "application/graphql-response+json, application/json"}


def new_http_client(max_connections: int = 512) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        follow_redirects=False,
        trust_env=False,  # never route subgraph traffic through an ambient proxy
    )


class SubgraphClient(Protocol):
    async def send(self, query: str, variables: dict[str, Any] | None, context: Any = None) -> bytes | dict: ...


class HttpSubgraph:
    def __init__(self, client: httpx.AsyncClient, url: str, timeout: float = 30.0, headers: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.url = url
        self.timeout = httpx.Timeout(timeout)
        self.headers = {**_BASE_HEADERS, **(headers or {})}

    async def send(self, query: str, variables: dict[str, Any] | None, context: Any = None) -> bytes:
        body = orjson.dumps({"query": query, "variables": variables} if variables else {"query": query})
        try:
            response = await self.client.post(self.url, content=body, headers=self.headers, timeout=self.timeout)
        except httpx.TimeoutException:
            raise SubgraphUnavailable("timed out") from None
        except httpx.HTTPError as error:
            raise SubgraphUnavailable(f"unreachable ({type(error).__name__})") from None
        if response.status_code >= 300 and "json" not in response.headers.get("content-type", ""):
            raise SubgraphUnavailable(f"HTTP {response.status_code}")
        return response.content


class InProcessSubgraph:
    """A Strawberry (or any graphql-core style) schema executed in this process."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema

    async def send(self, query: str, variables: dict[str, Any] | None, context: Any = None) -> dict:
        try:
            result = await self.schema.execute(query, variable_values=variables, context_value=context)
        except Exception:  # a connector's own fault: reported like an unreachable subgraph
            raise SubgraphUnavailable("the in-process connector failed") from None
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [error.formatted for error in result.errors]
        return payload


class Subgraphs:
    """The transport of one Engine: subgraph name -> client."""

    def __init__(self, clients: Mapping[str, SubgraphClient], http_client: httpx.AsyncClient | None = None, owns_http_client: bool = False) -> None:
        self.clients = dict(clients)
        self.http_client = http_client
        self.owns_http_client = owns_http_client

    @classmethod
    def over_http(
        cls,
        urls: Mapping[str, str],
        *,
        http_client: httpx.AsyncClient | None = None,
        timeouts: Mapping[str, float] | None = None,
        headers: Mapping[str, Mapping[str, str]] | None = None,
    ) -> Subgraphs:
        owns = http_client is None
        client = http_client or new_http_client()
        clients = {
            name: HttpSubgraph(client, url, (timeouts or {}).get(name, 30.0), (headers or {}).get(name))
            for name, url in urls.items()
        }
        return cls(clients, client, owns)

    async def send(self, subgraph: str, query: str, variables: dict[str, Any] | None, context: Any = None) -> bytes | dict:
        client = self.clients.get(subgraph)
        if client is None:
            raise SubgraphUnavailable("no endpoint is configured")
        return await client.send(query, variables, context)

    async def close(self) -> None:
        if self.owns_http_client and self.http_client is not None:
            await self.http_client.aclose()
