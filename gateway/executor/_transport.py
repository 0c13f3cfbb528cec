"""Reaching subgraphs: over HTTP with one pooled aiohttp session, or in-process without a hop.

`Subgraphs` routes each subgraph name to its client. HTTP clients share one `aiohttp`
session (`HttpPool`), so a new supergraph (a new Engine) reuses the open connections of the
previous one and never closes them under requests still in flight. aiohttp, not httpx, carries
subgraph traffic: measured on this machine, httpx managed ~300 keep-alive requests/s on one core
where aiohttp managed ~4,000 (bench/README.md); httpx stays for everything off the hot path.

Identical requests to one HTTP subgraph that are in flight at the same time share one call: a
subgraph request carries no requester's identity, so its answer is the same for everyone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
import orjson

from ._fetch import SubgraphUnavailable

_BASE_HEADERS = {"content-type": "application/json", "accept": "application/graphql-response+json, application/json"}


class HttpPool:
    """One pooled aiohttp session for every HTTP subgraph, created on first use (in the loop)."""

    def __init__(self, max_connections: int = 512, share_identical: bool = True) -> None:
        self.max_connections = max_connections
        # identical subgraph requests in flight share one call (`serve --no-subgraph-sharing` turns it off)
        self.share_identical = share_identical
        self._session: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections, ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True)
        return self._session

    def fresh_session(self) -> aiohttp.ClientSession:
        """A session that never reuses a connection: for a request sent again after a pooled one failed."""
        if self._fresh is None or self._fresh.closed:
            connector = aiohttp.TCPConnector(force_close=True, limit=self.max_connections, ttl_dns_cache=60)
            self._fresh = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True)
        return self._fresh

    async def close(self) -> None:
        for session in (self._session, self._fresh):
            if session is not None and not session.closed:
                await session.close()


class SubgraphClient(Protocol):
    async def send(self, query: str, variables: dict[str, Any] | None, context: Any = None) -> bytes | dict: ...


class HttpSubgraph:
    def __init__(self, pool: HttpPool, url: str, timeout: float = 30.0, headers: Mapping[str, str] | None = None) -> None:
        self.pool = pool
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.headers = {**_BASE_HEADERS, **(headers or {})}
        self._in_flight: dict[bytes, asyncio.Future] = {}

    async def send(self, query: str, variables: dict[str, Any] | None, context: Any = None) -> bytes:
        body = orjson.dumps({"query": query, "variables": variables} if variables else {"query": query})
        # our planner's documents start with their kind: a query may be sent again, a mutation never
        resend = not query.startswith("mutation")
        if not self.pool.share_identical:
            return await self._post(body, resend)
        shared = self._in_flight.get(body)
        if shared is not None:
            return await asyncio.shield(shared)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._in_flight[body] = future
        try:
            answer = await self._post(body, resend)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # followers re-raise it; the leader's own raise is enough
            raise
        else:
            future.set_result(answer)
            return answer
        finally:
            del self._in_flight[body]

    async def _post(self, body: bytes, resend: bool) -> bytes:
        session = self.pool.session()
        while True:
            try:
                async with session.post(self.url, data=body, headers=self.headers, timeout=self.timeout, allow_redirects=False) as response:
                    content = await response.read()
                    if response.status >= 300 and "json" not in response.headers.get("content-type", ""):
                        raise SubgraphUnavailable(f"HTTP {response.status}")
                    return content
            except TimeoutError:
                raise SubgraphUnavailable("timed out") from None
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
                # A pooled keep-alive connection the subgraph closed just as it was reused (idle
                # timeouts race with reuse): a query goes once more, on a new connection. A
                # mutation does not: the subgraph may have applied it before the connection dropped.
                if not resend or session is not self.pool.session():
                    raise SubgraphUnavailable(f"unreachable ({type(error).__name__})") from None
                session = self.pool.fresh_session()
            except aiohttp.ClientError as error:
                raise SubgraphUnavailable(f"unreachable ({type(error).__name__})") from None


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

    def __init__(self, clients: Mapping[str, SubgraphClient], http_pool: HttpPool | None = None, owns_pool: bool = False) -> None:
        self.clients = dict(clients)
        self.http_pool = http_pool
        self.owns_pool = owns_pool

    @classmethod
    def over_http(
        cls,
        urls: Mapping[str, str],
        *,
        http_pool: HttpPool | None = None,
        timeouts: Mapping[str, float] | None = None,
        headers: Mapping[str, Mapping[str, str]] | None = None,
    ) -> Subgraphs:
        owns = http_pool is None
        pool = http_pool or HttpPool()
        clients = {
            name: HttpSubgraph(pool, url, (timeouts or {}).get(name, 30.0), (headers or {}).get(name))
            for name, url in urls.items()
        }
        return cls(clients, pool, owns)

    async def send(self, subgraph: str, query: str, variables: dict[str, Any] | None, context: Any = None) -> bytes | dict:
        client = self.clients.get(subgraph)
        if client is None:
            raise SubgraphUnavailable("no endpoint is configured")
        return await client.send(query, variables, context)

    async def close(self) -> None:
        if self.owns_pool and self.http_pool is not None:
            await self.http_pool.close()
