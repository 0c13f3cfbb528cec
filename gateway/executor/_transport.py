"""Sending subgraph requests over HTTP with one pooled httpx client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from ._fetch import SubgraphUnavailable


@dataclass(frozen=True, slots=True)
class SubgraphEndpoint:
    url: str
    timeout: float = 30.0
    headers: Mapping[str, str] = field(default_factory=dict)


_BASE_HEADERS = {"content-type": "application/json", "accept": "application/graphql-response+json, application/json"}


class HttpTransport:
    def __init__(self, endpoints: Mapping[str, SubgraphEndpoint], max_connections: int = 512) -> None:
        self.endpoints = dict(endpoints)
        self._headers = {name: {**_BASE_HEADERS, **e.headers} for name, e in self.endpoints.items()}
        self._timeouts = {name: httpx.Timeout(e.timeout) for name, e in self.endpoints.items()}
        self.client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
        )

    async def send(self, subgraph: str, body: bytes) -> bytes:
        endpoint = self.endpoints.get(subgraph)
        if endpoint is None:
            raise SubgraphUnavailable("no endpoint is configured")
        try:
            response = await self.client.post(
                endpoint.url, content=body, headers=self._headers[subgraph], timeout=self._timeouts[subgraph]
            )
        except httpx.TimeoutException:
            raise SubgraphUnavailable("timed out") from None
        except httpx.HTTPError as error:
            raise SubgraphUnavailable(f"unreachable ({type(error).__name__})") from None
        content_type = response.headers.get("content-type", "")
        if response.status_code >= 300 and "json" not in content_type:
            raise SubgraphUnavailable(f"HTTP {response.status_code}")
        return response.content

    async def close(self) -> None:
        await self.client.aclose()
