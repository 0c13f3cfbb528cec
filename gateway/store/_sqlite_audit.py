"""The audit log's appends on SQLite, each batch one transaction in one trip to one thread.

Through SQLAlchemy and aiosqlite a batch cost five trips between the event loop and the driver's
thread (begin, read the head, insert, move the head, commit), each with SQLAlchemy's processing
of every row: about half of what privacy annotations cost a request (bench/privacy_cpu.py). Here
the standard library's driver does the same statements on its own connection to the same file,
in a thread of its own, fed through a queue (cheaper per batch than an executor's futures); the
event loop waits for the batch once. SQLite's own lock still orders this writer with every other
one (BEGIN IMMEDIATE), and the commit is synced as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from operator import itemgetter
from typing import Any

_COLUMNS = ("seq", "at", "request_id", "recipient", "purpose", "subject", "fields", "basis", "prev_hash", "hash")
_ROW = itemgetter(*_COLUMNS)
_INSERT = f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"


def link(entries: list[dict[str, Any]], seq: int, previous: str, chain: Callable[[dict], str]) -> tuple[int, str]:
    """Number and chain the caller's rows after the head (seq, previous hash); the new head."""
    for row in entries:
        seq += 1
        row["seq"] = seq
        row["prev_hash"] = previous
        row["hash"] = previous = chain(row)
    return seq, previous


class SQLiteAuditWriter:
    def __init__(self, path: str, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout  # another writer's lock: wait this long, then the batch fails (withheld)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._connection: sqlite3.Connection | None = None

    async def append(self, entries: list[dict[str, Any]], chain: Callable[[dict], str]) -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        if self._thread is None or not self._thread.is_alive():  # a writer that died is replaced, never waited on
            self._thread = threading.Thread(target=self._work, name="citygate-audit", daemon=True)
            self._thread.start()
        self._jobs.put((entries, chain, loop, done))
        await done

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            entries, chain, loop, done = job
            outcome: BaseException | None = None
            try:
                self._append(entries, chain)
            except BaseException as error:  # handed to the waiting request: it withholds
                outcome = error
            with contextlib.suppress(RuntimeError):  # the event loop closed meanwhile: nobody waits
                loop.call_soon_threadsafe(_settle, done, outcome)
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _append(self, entries: list[dict[str, Any]], chain: Callable[[dict], str]) -> None:
        connection = self._connection
        if connection is None:
            # autocommit mode: the transaction is the one opened below, nothing implicit
            connection = self._connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        connection.execute("BEGIN IMMEDIATE")  # the write lock first: the head read below stays the head
        try:
            seq, previous = link(
                entries, *connection.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone(), chain
            )
            connection.executemany(_INSERT, [_ROW(row) for row in entries])
            connection.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq, previous))
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)  # after the batches already queued
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
            self._thread = None


def _settle(done: asyncio.Future, error: BaseException | None) -> None:
    if done.done():  # the request went away meanwhile
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
