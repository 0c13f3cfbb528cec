"""Reaching subgraphs: over HTTP with one pooled aiohttp session, or in-process without a hop.

`Subgraphs` routes each subgraph name to its client. HTTP clients share one `aiohttp`
session (`HttpPool`), so a new supergraph (a new Engine) reuses the open connections of the
previous one and never closes them under requests still in flight. aiohttp, not httpx, carries
subgraph traffic: measured on this machine, httpx managed ~300 keep-alive requests/s on one core
where aiohttp managed ~4,000 (bench/README.md); httpx stays for everything off the hot path.

Identical requests to one HTTP subgraph that are in flight at the same time share one call: a
subgraph request carries no requester's identity, so its answer is the same for everyone.

Each HTTP subgraph has a circuit breaker: after `failures` consecutive failures (timeouts,
unreachable, non-GraphQL answers) it opens, and for `cool_down` seconds its requests fail at once
with `SUBGRAPH_UNAVAILABLE` instead of each waiting out the timeout; then one request goes through
as a probe (half-open): an answer closes it, a failure opens it again. A hanging partner so costs
the others' requests nothing but its own fields.

Every answer is read under a size cap (`HttpPool.max_answer_bytes`, 16 MiB by default, `citygate
serve --max-subgraph-answer-bytes`): one declared longer is refused before a byte of it is read,
one without a length (chunked) or compressed is counted as it streams and cut where it passes the
cap (the connection closed, never drained). A refused answer is a subgraph failure
(SUBREQUEST_HTTP_ERROR, counted by the breaker): a partner cannot make the gateway buffer what it
likes within its timeout.

Registered partners' connectors (`guarded=True`) connect through sessions whose resolver refuses
any address the operator's policy refuses (`_addresses.GuardedResolver`): their DNS is checked at
every connection, not only at registration; the registration's own SDL read goes the same way
(`HttpPool.post_guarded`). This module must never send a byte to such an address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson
import yarl
from aiohttp import hdrs
from aiohttp.abc import AbstractResolver

from .. import telemetry
from ..errors import PartnerFault
from ._addresses import GuardedResolver, Network, UpstreamRefused, parse_address, refused
from ._fetch import SubgraphUnavailable

logger = logging.getLogger("citygate.transport")
SUBGRAPH_UNAVAILABLE = "SUBGRAPH_UNAVAILABLE"


class SubgraphCircuitOpen(SubgraphUnavailable):
    """The subgraph's circuit breaker is open: nothing was sent (answered at once)."""

    code = SUBGRAPH_UNAVAILABLE


class UpstreamAddressRefused(SubgraphUnavailable):
    """A registered connector's host resolves to an address the policy refuses: nothing was sent."""

    code = SUBGRAPH_UNAVAILABLE


# The largest answer read from a GraphQL subgraph. Twice a REST connector's (connect/_client.py,
# 8 MiB a call): a subgraph answers a whole batch in one body (one `_entities` fetch for every parent
# of a list, only the fields asked), where a REST connector's entities fan out into calls each capped
# on its own. Parsed, JSON takes up to ~24 times its bytes in Python objects (16 MiB of `{"a":0}`
# is ~390 MB): the cap bounds one answer's memory, not just its bytes.
DEFAULT_MAX_ANSWER_BYTES = 16 * 1024 * 1024


class SubgraphAnswerTooLarge(SubgraphUnavailable):
    """A subgraph's answer went past the pool's `max_answer_bytes`: the rest was never read."""


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a subgraph's breaker opens (`failures` consecutive failures; 0: never) and for how long."""

    failures: int = 5
    cool_down: float = 10.0  # seconds open before one probe request goes through


class CircuitBreaker:
    """Closed, open or half-open, for one subgraph client. Single-threaded (the event loop)."""

    def __init__(self, settings: BreakerSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.state: Literal["closed", "open", "half-open"] = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self._probing = False

    def admit(self) -> bool:
        """Whether a request may go now; in half-open, only one probe at a time."""
        if self.state == "closed" or self.settings.failures <= 0:
            return True
        if self.state == "open":
            if self.clock() - self.opened_at < self.settings.cool_down:
                return False
            self.state = "half-open"
        if self._probing:
            return False
        self._probing = True
        return True

    def succeeded(self) -> None:
        self.state, self.failures, self._probing = "closed", 0, False

    def failed(self) -> None:
        self.failures += 1
        self._probing = False
        if self.settings.failures > 0 and (self.state == "half-open" or self.failures >= self.settings.failures):
            self.state, self.opened_at = "open", self.clock()

    def abandoned(self) -> None:
        """A request cancelled before its answer (its requester left): no verdict on the subgraph."""
        self._probing = False


_BASE_HEADERS = {"content-type": "application/json", "accept": "application/graphql-response+json, application/json"}
_NO_OWN_TIMEOUT = aiohttp.ClientTimeout(total=None)  # post_guarded's caller holds the one deadline


class AnswerTooLarge(PartnerFault):
    """An upstream's answer went past the size its reader allows; the rest was never read."""


class UpstreamStatus(SubgraphUnavailable):
    """An upstream answered `post_guarded` with a status that is not 2xx (a redirect included: never followed)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class HttpPool:
    """One pooled aiohttp session for every HTTP subgraph, created on first use (in the loop)."""

    def __init__(
        self,
        max_connections: int = 512,
        share_identical: bool = True,
        breaker: BreakerSettings | None = None,
        resolver: AbstractResolver | None = None,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self.max_connections = max_connections
        # the largest answer a subgraph may give (`serve --max-subgraph-answer-bytes`), read by each
        # request: set after the clients exist, it holds for them too
        self.max_answer_bytes = max_answer_bytes
        # identical subgraph requests in flight share one call (`serve --no-subgraph-sharing` turns it off)
        self.share_identical = share_identical
        self.breaker = breaker or BreakerSettings()  # the default for clients given none
        # guarded sessions (registered partners): the policy's allowed special ranges, read at each
        # connection (the registry points it at its policy); the name resolver under the guard
        # (None: the system's DNS; tests give a resolver of their own)
        self.allow_upstreams: Callable[[], Iterable[Network]] = tuple
        self.resolver = resolver
        self._sessions: dict[tuple[bool, bool], aiohttp.ClientSession] = {}

    def session(self, guarded: bool = False) -> aiohttp.ClientSession:
        return self._session(guarded, fresh=False)

    def fresh_session(self, guarded: bool = False) -> aiohttp.ClientSession:
        """A session that never reuses a connection: for a request sent again after a pooled one failed."""
        return self._session(guarded, fresh=True)

    def _session(self, guarded: bool, fresh: bool) -> aiohttp.ClientSession:
        session = self._sessions.get((guarded, fresh))
        if session is None or session.closed:
            options: dict[str, Any] = {"limit": self.max_connections, "ttl_dns_cache": 60}
            if fresh:
                options["force_close"] = True
            else:
                options["limit_per_host"] = self.max_connections
            if guarded:
                # the guard sees every name resolution; the cache only keeps answers it allowed
                options["resolver"] = GuardedResolver(lambda: self.allow_upstreams(), self.resolver)
            connector = aiohttp.TCPConnector(**options)
            session = self._sessions[(guarded, fresh)] = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                auto_decompress=True,
                trace_configs=telemetry.trace_configs(),  # traceparent
                # no cookie jar: a cookie a partner sets while answering one resident's request
                # would go back to it with every later request, whoever it is for (and a jar
                # costs a lookup per request)
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return session

    async def post_guarded(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        method: str = "POST",
        max_bytes: int | None = None,
        guarded: bool = True,
    ) -> bytes:
        """Send `body` (`method`: POST by default; an erasure delivery may PUT or DELETE) to a
        partner's `url` outside a subgraph request (its SDL, read at registration; a resident's
        erasure request) under the same guard: every address its host resolves to checked at
        connection (`guarded=False`: an operator's folder connector, unchecked as its traffic is),
        no redirect followed (the headers may carry the partner's secrets), the answer read while
        it streams and refused past `max_bytes` (AnswerTooLarge). The caller sets the deadline.
        UpstreamAddressRefused when the guard refused the address: nothing was sent. An answer
        that is not 2xx raises UpstreamStatus (its body unread)."""
        if guarded:
            literal = literal_address(url)
            if literal is not None and refused(literal, tuple(self.allow_upstreams())):
                raise UpstreamAddressRefused("its address is refused by the operator's policy")
        try:
            # a connection of its own, closed after: a registration's read leaves nothing in the
            # pool (no connection, no cached name) for the connector's traffic to reuse unchecked
            async with self.fresh_session(guarded=guarded).request(
                method,
                url,
                data=body,
                headers={**_BASE_HEADERS, **headers},
                allow_redirects=False,
                timeout=_NO_OWN_TIMEOUT,
            ) as response:
                if not 200 <= response.status < 300:
                    raise UpstreamStatus(response.status)
                declared = response.content_length
                if max_bytes is not None and declared is not None and declared > max_bytes:
                    raise AnswerTooLarge(f"the answer is over {max_bytes} bytes")
                chunks, size = [], 0
                async for chunk in response.content.iter_chunked(65536):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise AnswerTooLarge(f"the answer is over {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except aiohttp.ClientConnectorError as error:
            if isinstance(error.os_error, UpstreamRefused):
                logger.warning("partner %s not reached: %s", url, error.os_error)
                raise UpstreamAddressRefused("its address is refused by the operator's policy") from None
            raise SubgraphUnavailable(f"unreachable ({type(error).__name__})") from None
        except aiohttp.ClientError as error:
            raise SubgraphUnavailable(f"unreachable ({type(error).__name__})") from None

    async def close(self) -> None:
        for session in self._sessions.values():
            if not session.closed:
                await session.close()


class SubgraphClient(Protocol):
    async def send(self, query: str, variables: dict[str, Any] | None, context: Any = None) -> bytes | dict: ...


class HttpSubgraph:
    def __init__(
        self,
        pool: HttpPool,
        url: str,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        *,
        breaker: BreakerSettings | None = None,
        guarded: bool = False,
    ) -> None:
        self.pool = pool
        self.url = url
        self._target = yarl.URL(url)  # parsed once: aiohttp would parse a str on every request
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.headers = {**_BASE_HEADERS, **(headers or {})}
        self.breaker = CircuitBreaker(breaker or pool.breaker)
        self.guarded = guarded  # a registered partner's: addresses checked at each connection
        self._literal = literal_address(url)  # aiohttp resolves no IP literal: checked here instead
        self._in_flight: dict[bytes, asyncio.Future] = {}

    async def send(self, query: str, variables: dict[str, Any] | None, context: Any = None) -> bytes:
        body = orjson.dumps({"query": query, "variables": variables} if variables else {"query": query})
        # our planner's documents start with their kind: a query may be sent again, a mutation never
        resend = not query.startswith("mutation")
        if not self.pool.share_identical:
            return await self._guarded_post(body, resend)
        shared = self._in_flight.get(body)
        if shared is not None:
            return await asyncio.shield(shared)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._in_flight[body] = future
        try:
            answer = await self._guarded_post(body, resend)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # followers re-raise it; the leader's own raise is enough
            raise
        else:
            future.set_result(answer)
            return answer
        finally:
            del self._in_flight[body]

    async def _guarded_post(self, body: bytes, resend: bool) -> bytes:
        """The request through the breaker: refused at once while it is open."""
        if not self.breaker.admit():
            raise SubgraphCircuitOpen("unavailable (failing: requests paused for a while)")
        try:
            answer = await self._post(body, resend)
        except SubgraphUnavailable:
            self.breaker.failed()
            raise
        except BaseException:
            self.breaker.abandoned()
            raise
        self.breaker.succeeded()
        return answer

    async def _post(self, body: bytes, resend: bool) -> bytes:
        if self.guarded and self._literal is not None and refused(self._literal, tuple(self.pool.allow_upstreams())):
            raise UpstreamAddressRefused("unavailable (its address is refused by the operator's policy)")
        session = self.pool.session(self.guarded)
        while True:
            try:
                async with session.post(
                    self._target, data=body, headers=self.headers, timeout=self.timeout, allow_redirects=False
                ) as response:
                    content = await read_capped(response, self.pool.max_answer_bytes)
                    if response.status >= 300 and "json" not in response.headers.get("content-type", ""):
                        raise SubgraphUnavailable(f"HTTP {response.status}")
                    return content
            except TimeoutError:
                raise SubgraphUnavailable("timed out") from None
            except aiohttp.ClientConnectorError as error:
                if isinstance(error.os_error, UpstreamRefused):
                    logger.warning("subgraph %s not reached: %s", self.url, error.os_error)
                    raise UpstreamAddressRefused(
                        "unavailable (its address is refused by the operator's policy)"
                    ) from None
                if not resend or session is not self.pool.session(self.guarded):
                    raise SubgraphUnavailable(f"unreachable ({type(error).__name__})") from None
                session = self.pool.fresh_session(self.guarded)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
                # A pooled keep-alive connection the subgraph closed just as it was reused (idle
                # timeouts race with reuse): a query goes once more, on a new connection. A
                # mutation does not: the subgraph may have applied it before the connection dropped.
                if not resend or session is not self.pool.session(self.guarded):
                    raise SubgraphUnavailable(f"unreachable ({type(error).__name__})") from None
                session = self.pool.fresh_session(self.guarded)
            except aiohttp.ClientError as error:
                raise SubgraphUnavailable(f"unreachable ({type(error).__name__})") from None


async def read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """`response`'s body, refused (SubgraphAnswerTooLarge, the connection closed) past `max_bytes`.

    A declared length over the cap is refused before any of the body is read. A declared length
    within it, uncompressed, is read whole: aiohttp's parser stops at Content-Length, so nothing
    more can come (the common answer: one read, no counting). Otherwise (chunked, or compressed:
    its Content-Length counts the compressed bytes, not what they inflate to) the body is counted
    as it streams, and cut where it passes the cap."""
    declared = response.content_length
    if declared is not None:
        if declared > max_bytes:
            response.close()  # never drained: the partner's body stays unread
            raise SubgraphAnswerTooLarge(f"the answer is over {max_bytes} bytes")
        if response.headers.get(hdrs.CONTENT_ENCODING, "identity").lower() == "identity":
            return await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > max_bytes:
            response.close()  # the connection goes: what the partner still sends is never read
            raise SubgraphAnswerTooLarge(f"the answer is over {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)  # one chunk (a small answer): that chunk itself, not a copy


def literal_address(url: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return parse_address(urlsplit(url).hostname or "")
    except ValueError:
        return None


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

    def __init__(
        self, clients: Mapping[str, SubgraphClient], http_pool: HttpPool | None = None, owns_pool: bool = False
    ) -> None:
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

    async def send(
        self, subgraph: str, query: str, variables: dict[str, Any] | None, context: Any = None
    ) -> bytes | dict:
        client = self.clients.get(subgraph)
        if client is None:
            raise SubgraphUnavailable("no endpoint is configured")
        return await client.send(query, variables, context)

    async def close(self) -> None:
        if self.owns_pool and self.http_pool is not None:
            await self.http_pool.close()
