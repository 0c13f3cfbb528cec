"""Composition and the registry's rules, off the event loop, within a time budget.

A registration recomposes every connector and runs the ownership, annotation and lint rules over
them: seconds of CPU for a large SDL. Run on the event loop, that stalls every request the gateway
serves meanwhile; run in a thread, it still holds the GIL most of the time. So it runs in one
worker process (spawned, warmed once, reused; measured in docs/operators.md): the loop only waits
for a small answer. Over the budget, the worker is killed (the next change starts a new one) and
the change is refused with COMPOSITION_BUDGET_EXCEEDED; the running supergraph is never touched
here, whatever happens.

What crosses to the worker is plain data (SDL text, names, the registry policy) and what comes
back is problems as dicts, the supergraph's text and the schema checks' changes (_checks.py: the
served supergraph's API schema against the candidate's): no secret (manifests and clients stay in
the gateway), no live object.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.pool
from dataclasses import dataclass, field
from typing import Any

from ..composition import SdlLimits, SubgraphSource, compose, read_subgraph
from ..errors import CitygateError
from ..policy import RegistryPolicy
from ..supergraph import SupergraphError
from ._checks import SchemaChange, schema_changes
from ._rules import Problem, Registered, check_annotation_ownership, check_ownership, privacy_lint

COMPOSITION_BUDGET_EXCEEDED = "COMPOSITION_BUDGET_EXCEEDED"


@dataclass(frozen=True, slots=True)
class Change:
    """A change to check: the connectors it would serve; `candidate` is the one registered (None: a removal)."""

    sources: list[SubgraphSource]
    owners: dict[str, str]  # connector name -> owner
    policy: RegistryPolicy
    candidate: str | None = None
    previous: tuple[str, str] | None = None  # the candidate's served (owner, SDL), when it replaces one
    # every connector's annotations checked, not only a candidate's: a replica serving what another
    # replica checked under its own folder (which may differ) checks the whole again
    whole: bool = False
    served: str | None = None  # the supergraph served now: the schema checks compare the change's with it


@dataclass(slots=True)
class Outcome:
    problems: list[dict[str, Any]] = field(default_factory=list)
    supergraph: str | None = None
    changes: list[SchemaChange] = field(default_factory=list)  # to the clients' API schema, when `served` was given


def check_change(change: Change) -> Outcome:
    """Composition and, for a registration, every rule the candidate must pass. Runs in the worker."""
    policy = change.policy
    limits = SdlLimits(policy.max_sdl_bytes, policy.max_types, policy.max_fields)
    limited = frozenset({change.candidate}) if change.candidate is not None else frozenset()
    result = compose(change.sources, limits=limits, limited=limited)
    outcome = Outcome([error.to_dict() for error in result.errors])
    subgraphs = {s.name: s for s in result.subgraphs}
    name = change.candidate
    if name is not None and name in subgraphs:
        owner = change.owners[name]
        others = [Registered(n, change.owners[n], subgraphs[n]) for n in change.owners if n in subgraphs and n != name]
        problems: list[Problem] = check_ownership(Registered(name, owner, subgraphs[name]), others, policy)
        problems += privacy_lint(subgraphs[name])
        # annotations only from the owner of what they annotate: what this registration would add
        after = [*others, Registered(name, owner, subgraphs[name])]
        before = list(others)
        if change.previous is not None:
            previous, _ = read_subgraph(name, change.previous[1])
            if previous is not None:
                before.append(Registered(name, change.previous[0], previous))
        problems += check_annotation_ownership(after, candidate=name, before=before)
        outcome.problems += [p.to_dict() for p in problems]
    elif change.whole and not outcome.problems:
        registered = [Registered(n, change.owners[n], subgraphs[n]) for n in change.owners if n in subgraphs]
        outcome.problems += [p.to_dict() for p in check_annotation_ownership(registered)]
    if not outcome.problems and change.served is not None and result.supergraph is not None:
        try:
            outcome.changes = schema_changes(change.served, result.supergraph)
        except SupergraphError as error:  # the build of its Engine would refuse it too
            outcome.problems.append(Problem("NOT_SERVABLE", str(error)).to_dict())
    if not outcome.problems:
        outcome.supergraph = result.supergraph
    return outcome


def _ready() -> bool:
    return True


class BudgetExceeded(CitygateError):
    """A change's composition went past the policy's budget: the change is refused."""

    code = COMPOSITION_BUDGET_EXCEEDED


class CompositionWorker:
    """One worker process, spawned on first use (never forked from the gateway's threads), one change
    at a time. Belongs to one event loop (one Registry)."""

    def __init__(self) -> None:
        self._pool: multiprocessing.pool.Pool | None = None
        self._lock = asyncio.Lock()

    async def run(self, change: Change, budget: float) -> Outcome:
        """The change's outcome, or BudgetExceeded after `budget` seconds of work (the worker is killed)."""
        async with self._lock:  # the budget counts this change's work, not the queue before it
            if self._pool is None:
                # spawning and importing take a second or so: not counted against anyone's budget
                self._pool = multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=50)
                try:
                    await self._call(_ready, None, 120.0)
                except BaseException:
                    await self.terminate()
                    raise
            try:
                return await self._call(check_change, change, budget)
            except TimeoutError:
                await self.terminate()
                raise BudgetExceeded(f"composition took over the budget of {budget:g} s") from None

    async def _call(self, function, argument: Any, budget: float | None) -> Any:
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        answer: asyncio.Future = loop.create_future()

        def settle(setter: str, value: Any) -> None:  # in the pool's result thread
            def apply() -> None:
                if not answer.done():
                    getattr(answer, setter)(value)

            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
                loop.call_soon_threadsafe(apply)

        self._pool.apply_async(
            function,
            (argument,) if argument is not None else (),
            callback=lambda value: settle("set_result", value),
            error_callback=lambda error: settle("set_exception", error),
        )
        return await asyncio.wait_for(answer, budget)

    async def terminate(self) -> None:
        """Kill the worker (a change over its budget keeps computing otherwise); joined off the loop."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.terminate)
