"""Limits at the HTTP edge: what one connection, one request body and one client may cost.

Three layers, each where the work it bounds happens:

- the connection (`edge_protocol`, a subclass of uvicorn's httptools protocol): request headers
  must arrive within `header_timeout` and stay under `max_header_bytes` / `max_headers`; a
  client that takes less than 64 KiB of its answer (or all of it) per `write_timeout` loses the
  connection and the unsent answer, in uvloop's buffer and the kernel's alike; idle keep-alive
  connections close after `keep_alive_timeout`;
- the request body (`EdgeMiddleware`, ASGI): read while it streams, chunked or not, and never
  past the route's limit (`max_body_bytes`, `admin_max_body_bytes`) or the body deadline
  (`body_timeout`); the refusal (413 / 408) is sent from here and the connection closed, so the
  rest of the body is never read. A handler that answers before reading the body (the admin API
  without a key) closes the connection too: an unread body is never drained;
- the client (`Admission`): requests per second per client (the public: per remote address,
  IPv6 per /64), in memory or shared through Redis, and requests in flight per client;
  `AdminAuthLimit` counts the admin API's refused keys per address the same way, and refuses an
  address over `admin_auth_failures` before its key is looked at or its body read;
  `PublicRouteLimit` counts every other public route (the JWKS, the signed audit head, the
  residents' page and its files, ...) against the public's limits of its address, as an anonymous
  /graphql request is counted: all but the routes with limits of their own (/graphql, /admin/*),
  the probes of load balancers and the metrics (loopback or token only).

Every refusal carries a stable code (`PAYLOAD_TOO_LARGE`, `REQUEST_TIMEOUT`,
`REQUEST_HEADER_FIELDS_TOO_LARGE`, `RATE_LIMITED`). This module decides nothing about privacy and
never reads a body it is not going to refuse or hand on whole. docs/operators.md ("Limits and
timeouts") lists every setting and its default.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from cachetools import LRUCache
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .planner import DocumentLimits

logger = logging.getLogger("citygate.http")

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class HttpLimits:
    """Every limit of the HTTP edge. Defaults follow Apollo Router's where it has one."""

    max_body_bytes: int = 2 * MiB  # /graphql (Apollo Router: limits.http_max_request_bytes, 2 MB)
    admin_max_body_bytes: int = 1 * MiB  # /admin/*
    max_header_bytes: int = 64 * KiB  # request line and headers
    max_headers: int = 100  # Apollo Router: limits.http1_max_request_headers
    header_timeout: float = 10.0  # Apollo Router: server.http.header_read_timeout
    body_timeout: float = 10.0  # the whole body, from the end of the headers
    keep_alive_timeout: float = 5.0  # an idle connection between requests
    write_timeout: float = 30.0  # a client must take 64 KiB of its answer (or all of it) per period
    rate_limit: float = 0.0  # requests per second per identified client; 0: no limit
    public_rate_limit: float = 0.0  # requests per second per remote address of the public; 0: no limit
    max_in_flight: int = 0  # /graphql requests one client (or public address) has in flight; 0: no limit
    # requests to /admin/* per remote address per minute whose key is refused (each costs a hash
    # and a store query), at most that many at once; 0: no limit
    admin_auth_failures: int = 10
    redis_url: str | None = None  # rate limits shared by replicas; None: in this process's memory
    # what one operation may cost (depth, expanded size, aliases, variables, planning time, who
    # may introspect): the planner's limits (gateway/settings.py reads them all, Settings.http_limits)
    document: DocumentLimits = field(default_factory=DocumentLimits)


def _problem(message: str, code: str) -> bytes:
    return orjson.dumps({"errors": [{"message": message, "extensions": {"code": code}}]})


# -- the connection -------------------------------------------------------------------------------


_REASONS = {408: b"Request Timeout", 413: b"Content Too Large", 431: b"Request Header Fields Too Large"}
# what a client must take of its answer per write_timeout to keep the connection: less is a slow
# reader (a kernel that tops its receive buffer up a few KiB at a time while its reader sleeps is not progress)
WRITE_PROGRESS_BYTES = 64 * KiB
_SIOCOUTQ = 0x5411 if sys.platform.startswith("linux") else None  # bytes the kernel still holds for a socket
_LINGER_RESET = struct.pack("ii", 1, 0)  # close with a reset: the kernel drops what it still holds too


def _kernel_unsent(transport: asyncio.Transport) -> int:
    """What the kernel holds of the answers written to this connection (Linux; else 0). With a
    client that does not read, that is up to the socket's send buffer (4 MiB by default)."""
    if _SIOCOUTQ is None:
        return 0
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        import fcntl

        return struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0"))[0]
    except (OSError, ValueError):
        return 0


class _HeaderLimit(Exception):
    """Raised from a parser callback: the parser stops, and `send_400_response` sends the refusal."""


def edge_protocol(limits: HttpLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the connection limits of `limits`."""

    class EdgeProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._header_timer: asyncio.TimerHandle | None = None
            self._write_timer: asyncio.TimerHandle | None = None
            self._write_buffered = 0
            self._in_headers = True
            self._header_bytes = 0
            self._header_count = 0
            self._tail = b""  # the last bytes seen while reading headers: "\r\n\r\n" may straddle two reads
            self._refusal: tuple[int, bytes] | None = None

        # headers: a deadline and a size ----------------------------------------------------------

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(limits.header_timeout, self._headers_too_slow)

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            self._refuse(
                408,
                _problem(f"the request headers did not arrive within {limits.header_timeout:g} s", "REQUEST_TIMEOUT"),
            )

        def data_received(self, data: bytes) -> None:
            if self._refusal is not None:
                return
            if self._in_headers:
                # only the bytes up to the end of the headers count; a body sent in the same read does not
                window = self._tail + data
                end = window.find(b"\r\n\r\n")
                counted = len(data) if end < 0 else max(0, end + 4 - len(self._tail))
                self._header_bytes += counted
                self._tail = window[-3:] if end < 0 else b""
                if self._header_bytes > limits.max_header_bytes:
                    self._refuse(
                        431,
                        _problem(
                            f"the request headers are larger than {limits.max_header_bytes} bytes",
                            "REQUEST_HEADER_FIELDS_TOO_LARGE",
                        ),
                    )
                    return
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._header_count = 0
            if self._header_timer is None:  # a later request on this connection: its headers get the same deadline
                self._arm_header_timer()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            # what comes next on this connection is the next request's headers (counted from here;
            # the wait for them is the keep-alive timeout's, until their first byte)
            self._in_headers = True
            self._header_bytes = 0
            self._tail = b""

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_count += 1
            if self._header_count > limits.max_headers:
                self._refusal = (
                    431,
                    _problem(
                        f"the request has more than {limits.max_headers} headers", "REQUEST_HEADER_FIELDS_TOO_LARGE"
                    ),
                )
                raise _HeaderLimit
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_headers = False
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().on_headers_complete()

        def send_400_response(self, msg: str) -> None:
            if self._refusal is not None:  # a parser callback refused: our answer, not "invalid request"
                status, body = self._refusal
                self._refusal = None
                self._refuse(status, body)
                return
            super().send_400_response(msg)

        def _refuse(self, status: int, body: bytes) -> None:
            """Answer `status` and close, when no answer has started on this connection."""
            self._refusal = (status, body)
            if self.transport is None or self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                self.transport.abort()  # a request is being answered: nothing to add, only to stop
                return
            head = (
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
                % (status, _REASONS[status], len(body))
            )
            self.transport.write(head + body)
            self.transport.close()

        # answers: a client that does not read loses the connection -------------------------------
        # What is unsent sits in uvloop's buffer (past the high-water mark it pauses the writer) and
        # in the kernel's send buffer; both are watched from when an answer is written whole or the
        # writer pauses, until they are empty.

        def _unsent(self) -> int:
            return self.transport.get_write_buffer_size() + _kernel_unsent(self.transport)

        def _watch_writes(self) -> None:
            """After a write: the client must take WRITE_PROGRESS_BYTES of what is unsent (or all) within write_timeout."""
            self._write_buffered = self._unsent()
            if self._write_buffered and self._write_timer is None:
                self._write_timer = self.loop.call_later(limits.write_timeout, self._check_write_progress)

        def pause_writing(self) -> None:
            super().pause_writing()
            self._watch_writes()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch_writes()

        def _check_write_progress(self) -> None:
            self._write_timer = None
            unsent = self._unsent()
            if unsent == 0:
                return
            if unsent <= self._write_buffered - WRITE_PROGRESS_BYTES:  # the client took enough: another period
                self._write_buffered = unsent
                self._write_timer = self.loop.call_later(limits.write_timeout, self._check_write_progress)
                return
            logger.info(
                "a client took less than %d bytes of its answer in %g s: connection dropped",
                WRITE_PROGRESS_BYTES,
                limits.write_timeout,
            )
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            self.transport.abort()  # drops the unsent answer with the connection

        def connection_lost(self, exc: Exception | None) -> None:
            for timer in (self._header_timer, self._write_timer):
                if timer is not None:
                    timer.cancel()
            self._header_timer = self._write_timer = None
            super().connection_lost(exc)

    return EdgeProtocol


def server_config(app: Any, *, host: str, port: int, limits: HttpLimits, log_level: str = "warning", **options: Any):
    """A uvicorn configuration serving `app` with the edge's connection limits."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=edge_protocol(limits),
        timeout_keep_alive=limits.keep_alive_timeout,  # type: ignore[arg-type]
        log_level=log_level,
        access_log=False,
        **options,
    )


class WorkerConfig(uvicorn.Config):
    """The uvicorn configuration of one worker process among several sharing a socket: spawned
    workers each receive it as it is, so it holds how to build the app (`build`: a picklable
    callable, run in the worker when uvicorn loads the configuration), never an app."""

    def __init__(
        self, build: Callable[[], Any], *, limits: HttpLimits, host: str, port: int, workers: int, log_level: str
    ) -> None:
        super().__init__(
            None,
            host=host,
            port=port,
            workers=workers,
            timeout_keep_alive=limits.keep_alive_timeout,
            log_level=log_level,
            log_config=None,
            access_log=False,
        )
        self.build = build
        self.limits = limits

    def load(self) -> None:
        self.http = edge_protocol(self.limits)
        self.app = self.build()
        super().load()


# -- the request body -----------------------------------------------------------------------------

Refusal = Callable[[dict, int, str, str], tuple[str, bytes]]  # (scope, status, code, message) -> (media type, body)


class EdgeMiddleware:
    """Streams request bodies under the route's size limit and the body deadline (ASGI)."""

    def __init__(self, app: Any, limits: HttpLimits, refusal: Refusal) -> None:
        self.app = app
        self.limits = limits
        self.refusal = refusal

    async def __call__(
        self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.admin_max_body_bytes if scope["path"].startswith("/admin/") else self.limits.max_body_bytes
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.body_timeout
        # complete: the whole body was handed on; started: an answer began; refused: the edge answered
        state = {"received": 0, "complete": not chunked and not declared, "started": False, "refused": False}

        async def refuse(status: int, code: str, message: str) -> None:
            if state["started"]:
                return  # the handler answered already; its connection closes after the answer (edge_send)
            state["started"] = state["refused"] = True
            media, body = self.refusal(scope, status, code, message)
            headers = [
                (b"content-type", media.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        async def limited_receive() -> dict:
            if state["refused"]:
                return {"type": "http.disconnect"}
            if declared is not None and declared > limit:
                await refuse(413, "PAYLOAD_TOO_LARGE", f"the request body is larger than {limit} bytes")
                return {"type": "http.disconnect"}
            if state["complete"]:
                return await receive()  # nothing left to read: uvicorn answers a disconnect when there is one
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                await refuse(
                    408, "REQUEST_TIMEOUT", f"the request body did not arrive within {self.limits.body_timeout:g} s"
                )
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    await refuse(413, "PAYLOAD_TOO_LARGE", f"the request body is larger than {limit} bytes")
                    return {"type": "http.disconnect"}
                if not message.get("more_body", False):
                    state["complete"] = True
            return message

        async def edge_send(message: dict) -> None:
            if state["refused"]:
                return  # the edge's refusal was the answer: the handler's is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
                if not state["complete"]:
                    # answered before the body was read (an admin request without a key, say): close
                    # after the answer rather than read and drop the rest of the body
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, limited_receive, edge_send)
        except ClientDisconnect:
            pass  # the client went away, or the edge refused the body and answered already
        except Exception:
            if not state["refused"]:
                raise


# -- the client -----------------------------------------------------------------------------------


def address_key(scope: Mapping[str, Any]) -> str:
    """The rate-limit key of a public request: its remote address (IPv6: its /64, what one host gets)."""
    client = scope.get("client")
    host = client[0] if client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"addr:{host}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"addr:{address.ipv4_mapped}"
        return f"addr:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return f"addr:{address}"


# GCRA (the generic cell rate algorithm): one number per client, its theoretical arrival time; a
# client may be `burst` requests ahead of its rate. Redis keeps it in milliseconds of Redis's clock.
_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - now - (burst - 1) * interval
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.ceil(tat + interval - now) + 1000)
return 0
"""


# One request given back (its key was good, say): the theoretical arrival time one interval earlier.
_GCRA_REFUND = """
local interval = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now) - interval
if tat <= now then redis.call('DEL', KEYS[1]) return 0 end
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
return 0
"""


class Admission:
    """Rate limits (GCRA, in memory or in Redis) and requests in flight, per client key."""

    REDIS_BACKOFF = 5.0  # seconds without asking Redis after it failed (limits stay, in memory)

    def __init__(self, limits: HttpLimits, *, redis_prefix: str = "citygate:rate:") -> None:
        self.limits = limits
        self._arrivals: LRUCache = LRUCache(maxsize=100_000)  # key -> theoretical arrival time (monotonic)
        self._in_flight: dict[str, int] = {}
        self._prefix = redis_prefix
        self._redis: Any = None
        self._script: Any = None
        self._redis_down_until = 0.0
        if limits.redis_url:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(limits.redis_url, socket_timeout=0.25, socket_connect_timeout=0.25)
            self._script = self._redis.register_script(_GCRA)
            self._refund_script = self._redis.register_script(_GCRA_REFUND)

    def _use_redis(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, error: Exception) -> None:
        self._redis_down_until = time.monotonic() + self.REDIS_BACKOFF
        logger.warning("rate limits in memory for %g s: Redis failed (%s)", self.REDIS_BACKOFF, type(error).__name__)

    async def wait_time(self, key: str, rate: float, *, burst: float | None = None) -> float:
        """0 when a request of `key` may go now at `rate` per second (and counts); else the seconds
        until one may. `burst`: requests at once (default: a second's worth)."""
        if rate <= 0:
            return 0.0
        interval = 1.0 / rate
        burst = max(1.0, rate if burst is None else burst)
        if self._use_redis():
            try:
                waited_ms = await self._script(keys=[self._prefix + key], args=[interval * 1000, burst])
                return float(waited_ms) / 1000
            except Exception as error:  # Redis down or slow: limit in memory meanwhile, never fail the request
                self._redis_failed(error)
        now = time.monotonic()
        arrival = max(self._arrivals.get(key, now), now)
        wait = arrival - now - (burst - 1) * interval
        if wait > 0:
            return wait
        self._arrivals[key] = arrival + interval
        return 0.0

    async def give_back(self, key: str, rate: float) -> None:
        """Uncount one request of `key` that wait_time counted (at the same `rate`)."""
        if rate <= 0:
            return
        interval = 1.0 / rate
        if self._use_redis():
            try:
                await self._refund_script(keys=[self._prefix + key], args=[interval * 1000])
                return
            except Exception as error:
                self._redis_failed(error)
        arrival = self._arrivals.get(key)
        if arrival is not None:
            self._arrivals[key] = max(arrival - interval, time.monotonic())

    @contextlib.contextmanager
    def in_flight(self, key: str, limit: int) -> Iterator[bool]:
        """Holds one of `key`'s `limit` slots while the block runs; yields False (and holds none) when all are taken."""
        if limit <= 0:
            yield True
            return
        count = self._in_flight.get(key, 0)
        if count >= limit:
            yield False
            return
        self._in_flight[key] = count + 1
        try:
            yield True
        finally:
            left = self._in_flight[key] - 1
            if left:
                self._in_flight[key] = left
            else:
                del self._in_flight[key]

    async def close(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def over_rate(rate: float) -> str:
    """The message of a request refused for its rate (/graphql and the other public routes alike)."""
    return f"more than {rate:g} requests per second: retry after the time in Retry-After"


def over_in_flight(limit: int) -> str:
    """The message of a request refused for its requests in flight."""
    return f"more than {limit} requests in flight: retry when one is answered"


async def send_rate_limited(
    scope: dict, send: Callable[[dict], Awaitable[None]], refusal: Refusal, message: str, retry: str
) -> None:
    """A 429 RATE_LIMITED answer from a middleware, before the route runs, in the client's format."""
    media, body = refusal(scope, 429, "RATE_LIMITED", message)
    headers = [
        (b"content-type", media.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", retry.encode()),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# -- the other public routes ------------------------------------------------------------------------


class PublicRouteLimit:
    """Requests to the public routes beside /graphql count against the public's rate and requests
    in flight of their remote address (`address_key`: the same count as an anonymous /graphql
    request's), before their handler runs: a flood of /audit/head (two store reads and a signature
    each) or /.well-known/jwks.json gets 429 `RATE_LIMITED` like a flood of queries. `exempt(path)`:
    the routes left alone (they have limits of their own, or must answer a load balancer's probes).
    Fail closed: a route added later is limited unless exempted."""

    def __init__(
        self,
        app: Any,
        limits: HttpLimits,
        admission: Callable[[], Admission | None],
        refusal: Refusal,
        exempt: Callable[[str], bool],
    ) -> None:
        self.app = app
        self.rate = limits.public_rate_limit
        self.max_in_flight = limits.max_in_flight
        self.admission = admission
        self.refusal = refusal
        self.exempt = exempt

    async def __call__(
        self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]]
    ) -> None:
        admission = self.admission()
        if (
            scope["type"] != "http"
            or admission is None
            or not (self.rate or self.max_in_flight)
            or self.exempt(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        key = address_key(scope)
        wait = await admission.wait_time(key, self.rate)
        if wait:
            await send_rate_limited(scope, send, self.refusal, over_rate(self.rate), retry_after(wait))
            return
        with admission.in_flight(key, self.max_in_flight) as admitted:
            if not admitted:
                await send_rate_limited(scope, send, self.refusal, over_in_flight(self.max_in_flight), "1")
                return
            await self.app(scope, receive, send)


# -- the admin API's keys -------------------------------------------------------------------------

# set True in a request's scope by whoever accepted its key (gateway/registry/_admin.py, Keys)
AUTHENTICATED = "citygate.authenticated"


class AdminAuthLimit:
    """Refused admin keys per remote address (ASGI, on /admin/*): each request counts against its
    address before anything looks at its key or reads its body, and is given back when its key is
    accepted; an address over `admin_auth_failures` a minute gets 429 `RATE_LIMITED` at once."""

    def __init__(
        self, app: Any, limits: HttpLimits, admission: Callable[[], Admission | None], refusal: Refusal
    ) -> None:
        self.app = app
        self.rate = limits.admin_auth_failures / 60
        self.burst = limits.admin_auth_failures
        self.admission = admission
        self.refusal = refusal

    async def __call__(
        self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]]
    ) -> None:
        admission = self.admission()
        if scope["type"] != "http" or not scope["path"].startswith("/admin/") or not self.rate or admission is None:
            await self.app(scope, receive, send)
            return
        key = "admin-auth:" + address_key(scope)
        wait = await admission.wait_time(key, self.rate, burst=self.burst)
        if wait:
            message = (
                f"more than {self.burst} refused keys a minute from this address: retry after the time in Retry-After"
            )
            await send_rate_limited(scope, send, self.refusal, message, retry_after(wait))
            return
        try:
            await self.app(scope, receive, send)
        finally:
            if scope.get(AUTHENTICATED):
                await admission.give_back(key, self.rate)
