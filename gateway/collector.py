"""Engines and CPython's garbage collector: no full collection over an Engine on the event loop.

An Engine holds ~10 tracked objects per field of its supergraph, most of them in reference cycles
(graphql-core's schemas: a type refers to its fields, a field to its type); a 10,000-field Engine
is ~110,000. Each full collection visits every tracked object while holding the GIL, so with such
an Engine serving and its successor being built, the collector's full passes (several per build)
stopped the event loop for 150-600 ms each (`make attacks`, "a registration after a 10,000-field
one"). Three measures, together:

- while an Engine is built (in a thread), full collections are suspended and the GIL changes
  hands more often (`building`); the young generations are still collected, so what requests
  leave behind is reclaimed as usual;
- when an Engine starts serving, everything alive is frozen (`serving`: gc.freeze), so the
  long-lived Engine leaves the collector's view: later full passes visit only what was made since;
- a retired Engine is released once no request has used it for a while (`retire`): its
  graphql-core schemas' cycles are broken in slices on the loop, so reference counting frees it
  (a frozen object is never collected, but it is freed when its count drops to zero). What its
  transport held goes with it, unless an Engine still serving or awaiting release uses it too: the
  executable schema of each REST connector client (`RestClient.release_steps`: a connector
  replaced or removed), and the transport's own connection pool when the Engine created it
  (`Subgraphs.owns_pool`), closed; a late request is refused (SERVICE_UNAVAILABLE) before it
  could reach either.

What stays behind on each swap is the cyclic garbage that happened to be in the oldest generation,
unreachable but not yet collected, when it was frozen (a full pass first would remove it, but that
pass is as long as the ones avoided: 50-110 ms during a 10,000-field registration);
tests/engine/test_collector.py bounds what an Engine leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from graphql import GraphQLSchema, is_introspection_type, is_specified_directive, is_specified_scalar_type

logger = logging.getLogger("citygate.collector")

# Longer than any request can hold an Engine before Engine.run counts it (identifying the requester
# and reading its body are bounded by the HTTP limits' timeouts, well under this).
RELEASE_GRACE_SECONDS = 120.0
_CHECK_EVERY_SECONDS = 5.0
_TYPES_PER_SLICE = 200  # ~2,000 fields' objects freed per turn of the loop: a few ms
_NO_FULL_PASS = 1 << 30
# While a thread builds an Engine, the event loop's thread waits at most this long for the GIL
# each time it wakes (CPython's default is 5 ms: a request that wakes ten times waited 50 ms)
BUILD_SWITCH_INTERVAL = 0.0005

_lock = threading.Lock()
_builds = 0
_saved_threshold2 = 0
_saved_switch_interval = 0.005
_pending: set[asyncio.Task] = set()  # release tasks, held until done (the loop keeps only weak references)
_awaiting: list[Any] = []  # retired Engines not released yet: what their transports hold is still theirs
_managed = False  # only a serving process (`citygate serve`, `citygate demo`) manages the collector


def manage() -> None:
    """This process serves: from now on Engines are built, frozen and released as described above.

    Not the default: a process that builds Engines without serving them for long (tests, the CLI's
    offline commands) would only accumulate frozen objects."""
    global _managed
    _managed = True


@contextlib.contextmanager
def building() -> Iterator[None]:
    """Around building an Engine: no full collection meanwhile (builds may overlap, in threads)."""
    global _builds, _saved_threshold2, _saved_switch_interval
    if not _managed:
        yield
        return
    with _lock:
        if _builds == 0:
            young, middle, _saved_threshold2 = gc.get_threshold()
            gc.set_threshold(young, middle, _NO_FULL_PASS)
            _saved_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(BUILD_SWITCH_INTERVAL)
        _builds += 1
    try:
        yield
    finally:
        with _lock:
            _builds -= 1
            if _builds == 0:
                young, middle, _ = gc.get_threshold()
                gc.set_threshold(young, middle, _saved_threshold2)
                sys.setswitchinterval(_saved_switch_interval)


def serving() -> None:
    """A new Engine serves: collect the young generations (cheap) and freeze what is alive."""
    if not _managed:
        return
    gc.collect(1)
    gc.freeze()


def retire(engine: Any, serving: Callable[[], Any] | None = None) -> None:
    """`engine` no longer serves: release it once idle (on the running loop; without one, never:
    it is then collected or not like any other object). `serving`: the Engine served at the
    time of the release (its transport's clients and pool are not released with `engine`'s)."""
    if not _managed:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    _awaiting.append(engine)
    task = loop.create_task(_release_when_idle(engine, serving=serving))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _release_when_idle(engine: Any, grace: float | None = None, serving: Callable[[], Any] | None = None) -> None:
    retired = time.monotonic()
    grace = RELEASE_GRACE_SECONDS if grace is None else grace
    try:
        while time.monotonic() - retired < grace or getattr(engine, "runs", 0):
            await asyncio.sleep(min(_CHECK_EVERY_SECONDS, max(grace / 4, 0.01)))
        transport = getattr(engine, "transport", None)  # before release_steps drops it
        try:
            for _ in engine.release_steps():
                await asyncio.sleep(0)
        except Exception:  # freeing memory is never worth a failure elsewhere: the rest is left as it is
            logger.exception("releasing a retired engine failed")
            return
    finally:
        with contextlib.suppress(ValueError):
            _awaiting.remove(engine)
    if transport is not None:
        await _release_transport(transport, [serving() if serving is not None else None, *_awaiting])


async def _release_transport(transport: Any, others: list[Any]) -> None:
    """What a released Engine's transport holds, unless one of the `others` Engines uses it too
    (an unchanged connector's client, a transport handed on at a policy reload): REST clients'
    executable schemas released, an owned pool closed."""
    others_transports = [getattr(other, "transport", None) for other in others if other is not None]
    others_transports = [t for t in others_transports if t is not None]
    clients_in_use = {id(client) for t in others_transports for client in getattr(t, "clients", {}).values()}
    pools_in_use = {id(getattr(t, "http_pool", None)) for t in others_transports}
    try:
        for client in list(getattr(transport, "clients", {}).values()):
            release = getattr(client, "release_steps", None)
            if release is not None and id(client) not in clients_in_use:
                for _ in release():
                    await asyncio.sleep(0)
        if (
            getattr(transport, "owns_pool", False)
            and transport not in others_transports
            and id(transport.http_pool) not in pools_in_use
        ):
            await transport.close()
    except Exception:  # as above: a failure to free leaves the rest as it is, never fails a request
        logger.exception("releasing a retired engine's transport failed")


def schema_release_steps(schema: GraphQLSchema) -> Iterator[None]:
    """Break the reference cycles of a schema built for one Engine, `_TYPES_PER_SLICE` types a step.

    graphql-core's specified scalars, introspection types and specified directives are shared by
    every schema of the process: those are left alone."""
    named_types = [t for t in schema.type_map.values() if not (is_specified_scalar_type(t) or is_introspection_type(t))]
    for start in range(0, len(named_types), _TYPES_PER_SLICE):
        for named in named_types[start : start + _TYPES_PER_SLICE]:
            vars(named).clear()
        yield
    for directive in schema.directives:
        if not is_specified_directive(directive):
            vars(directive).clear()
    vars(schema).clear()
    yield


__all__ = ["RELEASE_GRACE_SECONDS", "building", "manage", "retire", "schema_release_steps", "serving"]
