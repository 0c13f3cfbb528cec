"""Hearing of changes made through other replicas: PostgreSQL LISTEN on one dedicated connection.

The store's triggers (and the application, for policy reloads) notify `CHANGES_CHANNEL` with a small
JSON payload (see gateway/store/__init__.py). `ChangeListener` keeps one asyncpg connection of its
own LISTENing and hands each payload to the application's handler; it knows nothing of what the
changes mean. Notifications sent while it is disconnected are lost: on every (re)connection, once
it LISTENs again, it calls `on_connect` so the application catches up with everything (drop the
consent caches, read the registry again, reload the policy). While disconnected, `problem()` says
so (for /readyz) and it reconnects with backoff.

It must never take the process down, and never be what keeps a consent change from applying: the
per-request consent clock (gateway/consent/_ledger.py) holds the guarantee without it; notifications
only make replicas catch up early.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson

# the channel the store's triggers notify (gateway/store/__init__.py); here, where it is listened
# to, so that the package can export the listener without importing itself
CHANGES_CHANNEL = "citygate_changes"

logger = logging.getLogger("citygate.replicas")

LISTENER_NAME = "citygate-listener"  # application_name of the listening connection (pg_stat_activity)


class ChangeListener:
    """LISTEN on CHANGES_CHANNEL through one connection, reconnecting with backoff."""

    def __init__(
        self,
        dsn: str,
        *,
        on_change: Callable[[dict[str, Any]], Awaitable[None]],
        on_connect: Callable[[], Awaitable[None]],
        connect_timeout: float = 5.0,
        keepalive: float = 5.0,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        self.dsn = dsn
        self.on_change = on_change
        self.on_connect = on_connect
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive  # seconds between two checks that the connection still answers
        self.backoff = backoff  # first and longest wait before reconnecting
        self.connected = asyncio.Event()  # set while LISTENing (and caught up once)
        self.backend_pid: int | None = None  # the server process of the listening connection
        self._task: asyncio.Task | None = None
        self._handlers: set[asyncio.Task] = set()
        self._last_error: str | None = None

    def problem(self) -> str | None:
        """None while listening; else why not (for /readyz)."""
        if self.connected.is_set():
            return None
        reason = f" ({self._last_error})" if self._last_error else ""
        return f"the change listener (PostgreSQL LISTEN {CHANGES_CHANNEL}) is not connected{reason}"

    async def start(self, wait: float | None = None) -> None:
        """Start listening; wait up to `wait` seconds for the first connection (never fails)."""
        self._task = asyncio.ensure_future(self._run())
        if wait:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.connected.wait(), wait)

    async def stop(self) -> None:
        for task in [self._task, *self._handlers]:
            if task is not None:
                task.cancel()
        for task in [self._task, *self._handlers]:
            if task is not None:
                with contextlib.suppress(BaseException):
                    await task
        self._task = None

    async def _run(self) -> None:
        delay = self.backoff[0]
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(
                    self.dsn, timeout=self.connect_timeout, server_settings={"application_name": LISTENER_NAME}
                )
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await connection.add_listener(CHANGES_CHANNEL, self._notified)
                self.backend_pid = connection.get_server_pid()
                # listening from here on: what changed before is read again, nothing after is missed
                await self.on_connect()
                self._last_error = None
                self.connected.set()
                logger.info("listening to %s", CHANGES_CHANNEL)
                delay = self.backoff[0]
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self.keepalive)
                    if not lost.is_set():  # a connection dropped silently shows on the next query
                        await connection.fetchval("SELECT 1", timeout=self.connect_timeout)
                raise ConnectionError("the connection was closed")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._last_error = type(error).__name__
                if self.connected.is_set():
                    logger.error("the change listener lost its connection (%s): reconnecting", type(error).__name__)
                else:
                    logger.warning(
                        "the change listener cannot connect (%s): retrying in %g s", type(error).__name__, delay
                    )
            finally:
                self.connected.clear()
                self.backend_pid = None
                if connection is not None:
                    with contextlib.suppress(Exception):
                        connection.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff[1])

    def _notified(self, _connection, _pid: int, _channel: str, payload: str) -> None:
        try:
            change = orjson.loads(payload)
        except orjson.JSONDecodeError:
            logger.error("an unreadable notification on %s was ignored", CHANGES_CHANNEL)
            return
        if not isinstance(change, dict):
            return
        task = asyncio.ensure_future(self._handle(change))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _handle(self, change: dict[str, Any]) -> None:
        try:
            await self.on_change(change)
        except Exception:  # one change handled badly never stops the listener
            logger.exception("a %s change could not be applied", change.get("kind"))


class Rerun:
    """Runs `action` again once it ends if it was asked for meanwhile; asks while it is already
    queued add nothing. Whoever asks gets a run that started after the ask (or joins it)."""

    def __init__(self, action: Callable[[], Awaitable[None]], what: str) -> None:
        self.action = action
        self.what = what
        self._running: asyncio.Task | None = None
        self._again = False

    def ask(self) -> asyncio.Task:
        if self._running is None:
            self._running = asyncio.ensure_future(self._run())
        else:
            self._again = True
        return self._running

    async def _run(self) -> None:
        try:
            again = True
            while again:
                self._again = False
                try:
                    await self.action()
                except Exception:
                    logger.exception("%s failed", self.what)
                again = self._again
        finally:
            self._running = None
