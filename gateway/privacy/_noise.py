"""Open data under differential privacy: aggregates released with calibrated noise, charged to a
budget.

When the policy has an `open_data` section, every aggregate value a requester receives (after
k-suppression, which still comes first and costs nothing) is released through an OpenDP
measurement, the Laplace mechanism, with scale = sensitivity / epsilon_per_query, where the
sensitivity follows from the field's `@aggregate(statistic:, lower:, upper:)`: a count 1, a sum
max(|lower|, |upper|), a mean (upper - lower) / n with n the public minimum of contributors,
max(k, the field's min_contributors), never the count the partner answers (a partner inflating
its count would otherwise shrink the noise). After the draw, a mean is clamped to [lower, upper],
a whole number rounded and a count kept at zero or above: post-processing of the released value
with public constants only, which costs no privacy. The epsilon OpenDP's privacy map gives for
that sensitivity is charged to the requester's budget for the period (the store's
`open_data_budgets`, checked and charged in one transaction); a budget that cannot pay withholds
the value (reason `budget`, error `PRIVACY_BUDGET_EXHAUSTED`).

The same question (requester, coordinate, entity, period) is answered from the store's
`open_data_releases` for the rest of the period, on every replica, without another charge: asking
again neither spends budget nor gets a fresh draw to average. A question is recognised by its
entity: the shaper passes (contributor count, the entity's key values), read where the injection
selected the type's first resolvable @key (_inject.py); a type without one, or an object whose key
did not come back, is never recognised, so each of its releases is charged (docs/privacy.md says why
a position or a value is no substitute).

This module never releases an exact aggregate while `open_data` is configured, never releases a
value it could not charge, and never charges for a value withheld below k. The shaper asks
synchronously; the store is asynchronous: a first shaping records the values to release and
places nothing, `settle_releases` releases them and shapes the response again (as the consent
ledger's second chance does in _guard.py).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import opendp.prelude as dp
import orjson
from cachetools import LRUCache

from ..executor import ExecutionResult, FieldGuard, path_of
from ..identity import Requester
from ..policy import OpenDataBudget

if TYPE_CHECKING:
    from ..store import Store
    from ._guard import PrivacyGuard, RequestDecisions

# OpenDP's Laplace mechanism over floats is in its "contrib" set (vetted by its authors, not yet
# by an external review): https://docs.opendp.org/en/stable/api/user-guide/#feature-listing
dp.enable_features("contrib")

logger = logging.getLogger("citygate.privacy")

BUDGET_EXHAUSTED = "PRIVACY_BUDGET_EXHAUSTED"
PUBLIC_BUDGET = "(public)"  # the public's row in the store: no client id can be spelt so


def sensitivity(statistic: str | None, lower: float | None, upper: float | None, contributors: int) -> float | None:
    """How much one contributor can move the aggregate; None when it cannot be bounded (an
    unknown statistic, or a sum or mean without bounds)."""
    if statistic == "count":
        return 1.0
    if lower is None or upper is None or lower > upper:
        return None
    if statistic == "sum":
        return max(abs(lower), abs(upper))
    if statistic == "mean" and contributors > 0:
        return (upper - lower) / contributors
    return None


@lru_cache(maxsize=4096)
def laplace(scale: float) -> dp.Measurement:
    """OpenDP's Laplace mechanism on one float (absolute distance) with this scale."""
    return dp.m.make_laplace(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=scale)


@dataclass(frozen=True, slots=True)
class Calibrated:
    measurement: dp.Measurement
    sensitivity: float
    epsilon: float  # what releasing through `measurement` costs: its privacy map at `sensitivity`


def calibrate(
    statistic: str | None, lower: float | None, upper: float | None, contributors: int, epsilon: float
) -> Calibrated | None:
    found = sensitivity(statistic, lower, upper, contributors)
    if found is None or found <= 0 or epsilon <= 0:
        return None
    measurement = laplace(found / epsilon)
    return Calibrated(measurement, found, float(measurement.map(found)))


def bounded(exact: float, statistic: str, lower: float | None, upper: float | None, contributors: int) -> float:
    """The exact value within what the declared bounds allow, so that the sensitivity holds
    whatever a subgraph answers."""
    if statistic == "count":
        return max(exact, 0.0)
    assert lower is not None and upper is not None
    if statistic == "sum":
        return min(max(exact, contributors * min(lower, 0.0)), contributors * max(upper, 0.0))
    return min(max(exact, lower), upper)


def release(
    calibrated: Calibrated,
    exact: float,
    statistic: str,
    lower: float | None,
    upper: float | None,
    contributors: int,
    whole: bool,
) -> float | int:
    """One draw of the mechanism, then post-processing, which costs no privacy: a mean is clamped
    to [lower, upper] (no mean of values within the bounds lies outside them, so a draw beyond one
    only adds error), a whole number (the field is an Int) is rounded, a count kept at zero or above."""
    noisy = float(calibrated.measurement(float(bounded(exact, statistic, lower, upper, contributors))))
    if statistic == "mean":
        assert lower is not None and upper is not None  # calibrate() gives no measurement otherwise
        noisy = min(max(noisy, float(lower)), float(upper))
        if whole:
            # rounded within the bounds: the nearest whole number may lie just past a fractional bound
            rounded = round(noisy)
            if math.ceil(lower) <= math.floor(upper):
                rounded = min(max(rounded, math.ceil(lower)), math.floor(upper))
            return rounded
    if whole:
        return max(round(noisy), 0) if statistic == "count" else round(noisy)
    return noisy


def period_of(period: str, now: datetime | None = None) -> str:
    """The budget period `now` falls in (UTC): 2026-11-25, 2026-W48 or 2026-11."""
    now = now or datetime.now(UTC)
    if period == "day":
        return now.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = now.isocalendar()
        return f"{year}-W{week:02d}"
    return now.strftime("%Y-%m")


def budget_key(requester: Requester) -> str:
    return PUBLIC_BUDGET if requester.is_public else requester.recipient


def question_key(coordinate: str, entity: Any) -> str | None:
    """The stored name of a question: a digest of the coordinate and the entity's key (never a value)."""
    if entity is None:
        return None
    return hashlib.sha256(orjson.dumps([coordinate, entity], option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(slots=True)
class _Pending:
    coordinate: str
    entity: Any
    exact: float
    whole: bool
    contributors: int  # as fetched: what a sum is clamped with
    minimum: int  # the public minimum, max(k, min_contributors): what a mean's noise is calibrated on
    statistic: str
    lower: float | None
    upper: float | None


@dataclass(slots=True)
class _RequestReleases:
    pending: dict[Hashable, _Pending] = field(default_factory=dict)
    # question -> ("released", value) | ("exhausted",) | ("unavailable",)
    outcomes: dict[Hashable, tuple] = field(default_factory=dict)


class OpenDataReleases:
    """One gateway's releases: the store, and what requests being shaped wait for."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # RequestDecisions -> its releases (bounded: a request that never settles is forgotten)
        self.requests: LRUCache = LRUCache(maxsize=4096)

    async def release_one(self, requester: Requester, budget: OpenDataBudget, item: _Pending) -> tuple:
        calibrated = calibrate(item.statistic, item.lower, item.upper, item.minimum, budget.epsilon_per_query)
        if calibrated is None:
            return ("uncalibrated",)
        value = release(calibrated, item.exact, item.statistic, item.lower, item.upper, item.contributors, item.whole)
        outcome, released, _ = await self.store.open_data_release(
            budget_key(requester),
            period_of(budget.period),
            question_key(item.coordinate, item.entity),
            calibrated.epsilon,
            budget.epsilon,
            value,
        )
        return ("exhausted",) if outcome == "exhausted" else ("released", released)


def releases_of(guard: PrivacyGuard) -> OpenDataReleases:
    found = getattr(guard, "open_data_releases", None)
    if found is None:
        found = guard.open_data_releases = OpenDataReleases(guard.ledger.store)  # type: ignore[attr-defined]
    return found


QUESTIONS_PER_REQUEST = 200  # open-data releases one request may ask the store for


def release_aggregate(
    decisions: RequestDecisions, field_guard: FieldGuard, subject: Any, value: Any, node: tuple | None, key: str
) -> Any:
    """What the shaper places for an aggregate value while `open_data` is configured (see
    RequestDecisions.place): withheld below k, else the value released to this requester."""
    guard = decisions.guard
    policy = guard.policy
    annotation = field_guard.annotation
    # the shaper passes (contributor count, entity key); the count alone where the type has no key
    contributors, entity = subject if isinstance(subject, tuple) else (subject, None)
    minimum = max(policy.k, annotation.min_contributors or 0)
    path = None
    if contributors.__class__ is not int or contributors < minimum:
        decisions.withheld.append(
            {"path": path_of((node, key)), "category": "aggregate", "reason": "below-k", "strategy": "null"}
        )
        return None
    if value is None:
        return None  # nothing to disclose
    statistic = annotation.statistic
    numeric = value.__class__ in (int, float) and math.isfinite(value)
    reason = None
    # a mean's sensitivity is calibrated on the public minimum of contributors (max(k,
    # min_contributors)), never on the count a subgraph answers: a partner inflating its count
    # would otherwise shrink the noise
    if not numeric or sensitivity(statistic, annotation.lower, annotation.upper, minimum) is None:
        reason = "uncalibrated"
    else:
        coordinate = f"{field_guard.parent}.{field_guard.name}"
        path = path_of((node, key))
        # within a request, an unknown entity is told apart by its position
        question = (
            coordinate,
            orjson.dumps(entity, option=orjson.OPT_SORT_KEYS) if entity is not None else tuple(path),
        )
        state = releases_of(guard).requests.get(decisions)
        if state is None:
            state = releases_of(guard).requests[decisions] = _RequestReleases()
        outcome = state.outcomes.get(question)
        if outcome is None:
            state.pending[question] = _Pending(
                coordinate,
                entity,
                float(value),
                value.__class__ is int,
                contributors,
                minimum,
                statistic,
                annotation.lower,
                annotation.upper,  # type: ignore[arg-type]
            )
            return None  # placed once settle_releases has released it
        if outcome[0] == "released":
            return outcome[1]
        reason = {"exhausted": "budget", "unavailable": "budget-unavailable"}.get(outcome[0], "uncalibrated")
    decisions.withheld.append(
        {"path": path or path_of((node, key)), "category": "aggregate", "reason": reason, "strategy": "null"}
    )
    return None


async def settle_releases(
    guard: PrivacyGuard, requester: Requester, decisions: RequestDecisions, result: ExecutionResult
) -> RequestDecisions:
    """Release what the shaping of `result` under `decisions` is waiting for (store: budget and
    cache), then shape it again under decisions that know the outcomes; errors name the values
    a spent budget withholds. Returns the decisions the response is now shaped with."""
    state = getattr(guard, "open_data_releases", None)
    pending_state = state.requests.pop(decisions, None) if state is not None else None
    if pending_state is None or not pending_state.pending:
        return decisions
    budget = (
        guard.policy.open_data.budget_for(requester.recipient, requester.is_public) if guard.policy.open_data else None
    )
    outcomes: dict[Hashable, tuple] = {}
    for asked, (question, item) in enumerate(pending_state.pending.items()):
        # one store round trip or more per question, and a client chooses how many entities a
        # list holds: past a bound, the rest are withheld as over budget
        if budget is None or asked >= QUESTIONS_PER_REQUEST:
            outcomes[question] = ("exhausted",)
            continue
        try:
            outcomes[question] = await state.release_one(requester, budget, item)
        except Exception:
            logger.exception("the privacy budget cannot be read or charged: the aggregate is withheld")
            outcomes[question] = ("unavailable",)
    # final: a subject the ledger read did not cover is withheld as such, never left undecided
    again = type(decisions)(
        guard, requester, consents=decisions.consents, mode=decisions.mode, final=True, generation=decisions.generation
    )
    state.requests[again] = _RequestReleases(outcomes=outcomes)
    assert result.reshape is not None
    result.data, result.errors = result.reshape(again)
    state.requests.pop(again, None)
    for withheld in again.withheld:
        if withheld["category"] == "aggregate" and withheld["reason"] == "budget":
            result.errors.append(
                {
                    "message": "The privacy budget for open data is spent for this period: the aggregate is withheld.",
                    "path": withheld["path"],
                    "extensions": {"code": BUDGET_EXHAUSTED},
                }
            )
    return again
