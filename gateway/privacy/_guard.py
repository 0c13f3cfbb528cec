"""Deciding on every personal value of a response, in SPEC.md's order, and applying it.

The shaper asks a request's `RequestDecisions` about each personal or aggregate value as it places
it; one decision per (subject, category, the field's sources and way) serves every value of the
response. For each value:

1. allowed when the requester acts for the subject themself;
2. allowed when a legal-basis rule of the policy matches (role, purpose, category), covers the
   owners of every subgraph that can resolve the field (its sources) and, when the rule names
   paths, the object was reached through one of them (the parent field's coordinate);
3. allowed when the ledger holds an active consent of the subject for (recipient, purpose,
   category). The ledger's cache answers while shaping; subjects it does not hold are loaded
   in one query, and the response is shaped again with them (until then their values are null);
4. otherwise withheld: masked with the field's or the category's strategy.

Allowed disclosures to anyone but the subject are written to the audit log before the response
leaves; if the audit log refuses them, the response is shaped again with all of them withheld. If
the ledger cannot be read, every personal value is withheld.
Aggregates below k contributors are withheld too. Withheld values are listed (path, category,
reason, strategy), never their value. This stage never returns a value it has not decided on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from cachetools import LRUCache

from .. import telemetry
from ..consent import AuditLog, Disclosure, Ledger, LedgerUnavailable
from ..executor import SUBJECT_CONFLICT, ExecutionResult, FieldGuard, path_of
from ..identity import Requester
from ..policy import Policy
from ._masking import mask, recipient_key
from ._noise import release_aggregate, settle_releases

logger = logging.getLogger("citygate.privacy")


@dataclass(frozen=True, slots=True)
class _Decision:
    allowed: bool
    basis: str | None  # "self", "policy:<rule>", "consent:<id>"
    reason: str | None
    valid_until: float | None = None  # when the consent allowing it expires (POSIX time)


_SELF = _Decision(True, "self", None)
_UNKNOWN_SUBJECT = _Decision(False, None, "subject-unknown")
# two answers (or two keys of one answer) disagree on whose data the object is (executor/_merge.py)
_SUBJECT_CONFLICT = _Decision(False, None, "subject-conflict")
_PUBLIC = _Decision(False, None, "public-requester")
_NO_CONSENT = _Decision(False, None, "no-consent")
_LEDGER_DOWN = _Decision(False, None, "ledger-unavailable")
# consent reads one response may need: links nested in links reveal subjects one level per read
_LEDGER_READS = 8
_AUDIT_DOWN = _Decision(False, None, "audit-unavailable")


class PrivacyGuard:
    def __init__(self, policy: Policy, ledger: Ledger, audit: AuditLog | None, pseudonym_master: bytes) -> None:
        self.policy = policy
        self.ledger = ledger
        self.audit = audit if policy.audit_enabled else None
        self.pseudonym_master = pseudonym_master
        self._recipient_keys: dict[str, bytes] = {}
        # (recipient, purpose, subject, category) -> (decision, ledger generation): consent
        # decisions outlive a request until the ledger changes or the consent expires
        self.consent_decisions: LRUCache = LRUCache(maxsize=200_000)
        # (requester, ledger generation) -> what values get, for every request of that requester
        # until the ledger changes (see _VerdictTable)
        # (bounded: 128 tables x 5,000 pairs, some 130 MB at worst; a requester reaching more
        # subjects than that starts afresh, which costs what no table would)
        self.verdict_tables: LRUCache = LRUCache(maxsize=128)
        # (recipient owner, requester, flow value) -> (verdict, ledger generation, valid until):
        # flows decided for a requester's earlier requests (privacy/_flows.py)
        self.flow_verdicts: LRUCache = LRUCache(maxsize=200_000)

    def _key(self, recipient: str) -> bytes:
        key = self._recipient_keys.get(recipient)
        if key is None:
            key = self._recipient_keys[recipient] = recipient_key(self.pseudonym_master, recipient)
        return key

    def _policy_rule(
        self,
        roles: frozenset[str],
        purpose: str | None,
        category: str,
        sources: frozenset[str],
        via: frozenset[str] = frozenset(),
    ) -> str | None:
        """The first legal basis that covers a value of `category` from the data of `sources`
        (owners), whose object was reached through `via` (coordinates; empty: not through a field
        a path-scoped rule names), disclosed to someone with `roles` for `purpose`; else None."""
        if purpose is None:
            return None
        for rule in self.policy.legal_bases:
            if rule.covers(roles, purpose, category, sources, via):
                return rule.name
        return None

    def flow_rule(self, recipient: str, purpose: str, category: str, sources: frozenset[str]) -> str | None:
        """The first legal basis that lets a value of `category` from `sources` go to the subgraphs
        of `recipient` (an owner) for `purpose`; else None (see _flows.py)."""
        for rule in self.policy.legal_bases:
            if rule.covers_flow(recipient, purpose, category, sources):
                return rule.name
        return None

    def client_rule(self, requester: Requester, category: str, sources: frozenset[str]) -> str | None:
        """The legal basis that would give the requester a value of `category` from `sources`
        reached through no particular field (a flow is not a position of the response)."""
        return self._policy_rule(requester.roles, requester.purpose, category, sources)

    async def record_shared(self, requester: Requester, disclosures: list[Disclosure], request_id: str) -> None:
        """Audit another request's disclosures again, for a request that shares its answer."""
        if self.audit is not None:
            await self.audit.record(request_id, requester.recipient, requester.purpose or "", disclosures)

    def verdict_table(self, requester: Requester, generation: int) -> _VerdictTable:
        key = (requester.recipient, requester.purpose, requester.resident, requester.roles, generation)
        table = self.verdict_tables.get(key)
        if table is None or len(table.fields) + len(table.objects) > _VERDICT_TABLE_LIMIT:
            table = self.verdict_tables[key] = _VerdictTable()
        return table

    def decisions(self, requester: Requester, *, audit_refused: bool = False) -> RequestDecisions:
        """A request's decisions, for the shaper to consult as it places values; with
        `audit_refused`, every disclosure that needs auditing is withheld instead."""
        return RequestDecisions(self, requester, mode=_AUDIT_DOWN if audit_refused else None)

    async def settle(
        self,
        requester: Requester,
        decisions: RequestDecisions,
        result: ExecutionResult,
        request_id: str,
        decided: Callable[[dict[str, Any] | None], None],
        *,
        refusal_raises: bool = False,
    ) -> list[Disclosure]:
        """Complete what shaping could not decide and audit the disclosures; return them.

        `decided(extensions.privacy or None)` is called once every value of `result` is final.
        Normally that is after the audit log took the disclosures (if it refuses, they are
        withheld and the response shaped again first). With `refusal_raises` it is called before
        the audit write is awaited, so the caller can serialize the answer while it is still in the
        CPU's caches; a refusal then raises AuditRefused, and the response must not leave: the
        caller answers the request again with `decisions(..., audit_refused=True)`.
        """
        privacy = telemetry.begin("privacy")
        reads = 0
        while decisions.missing:
            # A link (a field of one subject leading to objects of others) is decided like any
            # field: while it waits for its subject's consents, the objects inside it are not
            # visited, so their subjects only come to light once it is placed. Each read may so
            # reveal more subjects, up to _LEDGER_READS reads; then whatever is still unread is
            # withheld (final), never placed undecided.
            reads += 1
            try:
                loaded = await self.ledger.active_for(decisions.missing, requester.recipient, requester.purpose or "")
            except LedgerUnavailable:
                logger.error("the consent ledger cannot be read: every personal value is withheld")
                decisions = RequestDecisions(self, requester, mode=_LEDGER_DOWN)
            else:
                # the ledger generation of before the read: decisions made on what was read are only
                # kept for requests that arrive before any change the read may have missed
                decisions = RequestDecisions(
                    self,
                    requester,
                    consents={**decisions.consents, **loaded},
                    mode=decisions.mode,
                    final=reads >= _LEDGER_READS,
                    generation=decisions.generation,
                )
            assert result.reshape is not None
            result.data, result.errors = result.reshape(decisions)
            if decisions.final or decisions.mode is _LEDGER_DOWN:
                break
        if not decisions.final and reads:
            # every subject the last reshaping met was read: the decisions are final as they stand
            decisions.final = True
        decisions = await settle_releases(self, requester, decisions, result)  # open data released (_noise.py)
        audited = decisions.audited()
        early = refusal_raises and bool(audited) and self.audit is not None
        if early:
            decided(_extension(decisions))  # every value is final: the caller may serialize now
        if audited and self.audit is not None:
            try:
                await self.audit.record(request_id, requester.recipient, requester.purpose or "", audited)
            except Exception:
                if early:
                    logger.exception(
                        "the audit log refused the disclosures: the request is answered again without them"
                    )
                    raise AuditRefused from None
                logger.exception("the audit log refused the disclosures: they are withheld")
                audited = []
                decisions = RequestDecisions(
                    self,
                    requester,
                    consents=decisions.consents,
                    mode=_AUDIT_DOWN,
                    final=True,
                    generation=decisions.generation,
                )
                assert result.reshape is not None
                result.data, result.errors = result.reshape(decisions)
        if not early:
            decided(_extension(decisions))
        telemetry.privacy_settled(privacy, decisions.withheld, audited)
        return audited


class AuditRefused(Exception):
    """The audit log refused a response's disclosures after it was serialized: it must not leave."""


def _extension(decisions: RequestDecisions) -> dict[str, Any] | None:
    """`extensions.privacy` of a response: None when nothing was withheld."""
    return {"withheld": decisions.withheld} if decisions.withheld else None


_VERDICT_TABLE_LIMIT = 5_000  # pairs kept per requester: started afresh beyond


class Action(IntEnum):
    """What a (field, subject) pair's values get, decided once per request."""

    PLACE = 0  # as they are, nothing to record
    PLACE_AUDITED = 1  # as they are, a disclosure to audit: recorded once, then PLACE for the response
    MASK = 2  # masked with the verdict's strategy (listed as withheld)
    BELOW_K = 3  # an aggregate of fewer contributors than k: null (listed as withheld)
    UNDECIDED = 4  # null until the ledger is read (RequestDecisions.missing), then shaped again


@dataclass(frozen=True, slots=True)
class Verdict:
    """A (field, subject) pair's verdict. What else it carries depends on its action."""

    action: Action
    # PLACE_AUDITED (and the PLACE it becomes): what the audit log records; UNDECIDED: `subject` only
    subject: str | None = None
    coordinate: str | None = None  # "Type.field"
    basis: str | None = None  # "policy:<rule>", "consent:<id>"
    valid_until: float | None = None  # when the consent allowing it expires (POSIX time), if it does
    # MASK
    category: str | None = None
    reason: str | None = None
    strategy: str | None = None


_PLACED = Verdict(Action.PLACE)
_BELOW_K = Verdict(Action.BELOW_K)


@dataclass(frozen=True, slots=True)
class _WholeObject:
    """Objects of a (type fields, subject) pair whose every guarded field goes in as it is."""

    disclosure: (
        tuple[str, frozenset[str], frozenset[str]] | None
    )  # (subject, "Type.field"s, bases); None: nothing to audit
    valid_until: float | None  # the earliest expiry of the consents it rests on


class _VerdictTable:
    """One requester's verdicts on one ledger generation, kept across its requests."""

    __slots__ = ("fields", "objects")

    def __init__(self) -> None:
        # (field guard, subject) -> its verdict, good until the verdict's `valid_until`
        self.fields: dict[tuple[FieldGuard, Any], Verdict] = {}
        # (type fields, subject) -> what placing such an object discloses, for the pairs whose
        # every guarded field goes in as it is
        self.objects: dict[tuple, _WholeObject] = {}


class RequestDecisions:
    """One request's decisions, made while the shaper walks the response (no I/O: see settle)."""

    __slots__ = (
        "consents",
        "decided",
        "disclosures",
        "final",
        "generation",
        "guard",
        "missing",
        "mode",
        "now",
        "objects",
        "placed_whole",
        "requester",
        "table",
        "verdicts",
        "withheld",
    )

    def __init__(
        self,
        guard: PrivacyGuard,
        requester: Requester,
        *,
        consents: dict[str, list] | None = None,
        mode: _Decision | None = None,
        final: bool = False,
        generation: int | None = None,
    ) -> None:
        self.guard = guard
        self.requester = requester
        # the ledger generation before anything this view holds was read: a later change makes it stale
        self.generation = guard.ledger.generation if generation is None else generation
        # subject -> the active consents this request decided on (one view for the whole response)
        self.consents: dict[str, list] = consents if consents is not None else {}
        self.mode = mode  # _LEDGER_DOWN: everything withheld; _AUDIT_DOWN: audited disclosures withheld
        self.final = final  # no second chance: a subject still unknown to the ledger is withheld
        self.decided: dict[tuple, _Decision | None] = {}  # (subject, category, sources, via) -> decision
        self.verdicts: dict[tuple[FieldGuard, Any], Verdict] = {}  # this response's, made here or taken from the table
        # (type fields, subject) -> its disclosure or None: the shaper's fast path (PrivacyDecisions.placed_whole)
        self.placed_whole: dict[tuple, tuple | None] = {}
        self.withheld: list[dict[str, Any]] = []
        self.disclosures: dict[str, Disclosure] = {}
        self.missing: set[str] = set()
        self.now = time.time()
        # verdicts made for this requester by earlier requests on the same ledger generation; none
        # when the ledger or the audit log is down (those verdicts are this request's alone)
        self.table = guard.verdict_table(requester, self.generation) if mode is None else None
        self.objects: dict[tuple, _WholeObject] = self.table.objects if self.table is not None else {}

    def place(self, field_guard: FieldGuard, subject: Any, value: Any, node: tuple | None, key: str) -> Any:
        if field_guard.kind == "aggregate" and self.guard.policy.open_data is not None:
            return release_aggregate(self, field_guard, subject, value, node, key)  # differential privacy (_noise.py)
        verdict = self.verdicts.get((field_guard, subject))
        if verdict is None:
            verdict = self.verdicts[(field_guard, subject)] = self._verdict(field_guard, subject)
        action = verdict.action
        if action is Action.PLACE:
            return value
        if action is Action.PLACE_AUDITED:
            # audited even when null: the requester learns that the subject has no such value.
            # Disclosed once: the field's other values of this subject go in as they are
            self.verdicts[(field_guard, subject)] = Verdict(
                Action.PLACE, verdict.subject, verdict.coordinate, verdict.basis, verdict.valid_until
            )
            subject_id: str = verdict.subject  # type: ignore[assignment]
            disclosure = self.disclosures.get(subject_id)
            if disclosure is None:
                disclosure = self.disclosures[subject_id] = Disclosure(subject_id)
            disclosure.fields.add(verdict.coordinate)
            disclosure.basis.add(verdict.basis)
            return value
        if action is Action.MASK:
            if value is None:
                return None  # nothing to withhold, nothing listed
            self.withheld.append(
                {
                    "path": path_of((node, key)),
                    "category": verdict.category,
                    "reason": verdict.reason,
                    "strategy": verdict.strategy,
                }
            )
            return mask(value, verdict.strategy, verdict.category, self.guard._key(self.requester.recipient))
        if action is Action.BELOW_K:
            self.withheld.append(
                {"path": path_of((node, key)), "category": "aggregate", "reason": "below-k", "strategy": "null"}
            )
            return None
        self.missing.add(verdict.subject)  # type: ignore[arg-type]  # UNDECIDED: settled after the ledger is read
        return None

    def withholds(self, field_guard: FieldGuard, subject: Any) -> bool:
        """Whether the value of a guarded object field is withheld whole, before the object is
        shaped (PrivacyDecisions.withholds): masked with anything but coarsen (which keeps a
        point's coordinates), below k, or undecided yet. Nothing inside it is then decided."""
        verdict = self.verdicts.get((field_guard, subject))
        if verdict is None:
            verdict = self.verdicts[(field_guard, subject)] = self._verdict(field_guard, subject)
        action = verdict.action
        return (
            action is Action.UNDECIDED
            or action is Action.BELOW_K
            or (action is Action.MASK and verdict.strategy != "coarsen")
        )

    def known_object(self, object_key: tuple) -> bool:
        known = self.objects.get(object_key)
        if known is None or (known.valid_until is not None and known.valid_until <= self.now):
            return False
        self.placed_whole[object_key] = known.disclosure
        return True

    def object_placed(self, object_key: tuple, guards: tuple[FieldGuard, ...]) -> None:
        subject = object_key[1]
        fields, bases, valid_until = [], [], None
        for field_guard in guards:
            verdict = self.verdicts.get((field_guard, subject))
            if verdict is None or verdict.action is not Action.PLACE:
                return  # masked, withheld or undecided: each value of it goes through `place`
            if verdict.coordinate is not None:  # audited
                fields.append(verdict.coordinate)
                bases.append(verdict.basis)
                if verdict.valid_until is not None:
                    valid_until = verdict.valid_until if valid_until is None else min(valid_until, verdict.valid_until)
        disclosure = (str(subject), frozenset(fields), frozenset(bases)) if fields else None
        self.objects[object_key] = _WholeObject(disclosure, valid_until)
        self.placed_whole[object_key] = disclosure

    def audited(self) -> list[Disclosure]:
        """What this response discloses to anyone but the subject, one Disclosure per subject."""
        disclosures = self.disclosures
        for disclosure in self.placed_whole.values():
            if disclosure is not None:
                subject, fields, bases = disclosure
                found = disclosures.get(subject)
                if found is None:
                    found = disclosures[subject] = Disclosure(subject)
                found.fields.update(fields)
                found.basis.update(bases)
        return list(disclosures.values())

    def _verdict(self, field_guard: FieldGuard, subject: Any) -> Verdict:
        table = self.table
        if table is not None:
            known = table.fields.get((field_guard, subject))
            if known is not None and (known.valid_until is None or known.valid_until > self.now):
                return known
        kind, annotation = field_guard.kind, field_guard.annotation
        keep = True
        if kind == "aggregate":
            minimum = max(self.guard.policy.k, annotation.min_contributors or 0)
            verdict = _PLACED if isinstance(subject, int) and subject >= minimum else _BELOW_K
        else:
            category = annotation.category
            decision = self._decision(subject, field_guard)
            if decision is None:
                return Verdict(Action.UNDECIDED, str(subject))  # never kept: the next request may know more
            if decision.allowed and decision.basis == "self":
                verdict = _PLACED
            elif decision.allowed and self.mode is not _AUDIT_DOWN:
                verdict = Verdict(
                    Action.PLACE_AUDITED,
                    str(subject),
                    f"{field_guard.parent}.{field_guard.name}",
                    decision.basis,
                    decision.valid_until,
                )
            else:
                keep = decision is not _LEDGER_DOWN
                if decision.allowed:
                    decision = _AUDIT_DOWN
                # a category rule the field's type cannot take masks with null (annotation.fits)
                strategy = self.guard.policy.strategy_for(category, annotation.strategy, annotation.fits)
                verdict = Verdict(Action.MASK, category=category, reason=decision.reason, strategy=strategy)
        if table is not None and keep:
            table.fields[(field_guard, subject)] = verdict
        return verdict

    def _decision(self, subject: Any, field_guard: FieldGuard) -> _Decision | None:
        category = field_guard.annotation.category
        # a legal basis covers a category only from some owners' data, and maybe only through some
        # fields: one decision per (subject, category) and the field's sources and way here
        key = (subject, category, field_guard.sources, field_guard.via)
        if key in self.decided:
            return self.decided[key]
        requester = self.requester
        if self.mode is _LEDGER_DOWN:
            decision: _Decision | None = _LEDGER_DOWN
        elif subject is None:
            decision = _UNKNOWN_SUBJECT
        elif subject is SUBJECT_CONFLICT:
            decision = _SUBJECT_CONFLICT
        elif requester.resident is not None and str(subject) == requester.resident:
            decision = _SELF
        elif requester.is_public:
            decision = _PUBLIC
        else:
            rule = self.guard._policy_rule(
                requester.roles, requester.purpose, category, field_guard.sources, field_guard.via
            )
            if rule is not None:
                decision = _Decision(True, f"policy:{rule}", None)
            else:
                decision = self._by_consent(str(subject), category)
        self.decided[key] = decision
        return decision

    def _by_consent(self, subject: str, category: str) -> _Decision | None:
        requester = self.requester
        shared_key = (requester.recipient, requester.purpose, subject, category)
        shared = self.guard.consent_decisions.get(shared_key)
        if (
            shared is not None
            and shared[1] == self.generation
            and (shared[0].valid_until is None or shared[0].valid_until > self.now)
        ):
            return shared[0]
        records = self.consents.get(subject)
        if records is None:
            records = self.guard.ledger.cached_active(subject, requester.recipient, requester.purpose or "")
            telemetry.consent_cache(records is not None)
            if records is None:
                return _LEDGER_DOWN if self.final else None
            self.consents[subject] = records  # the same view if this response is shaped again
        consent = next((c for c in records if c.covers(category)), None)
        decision = (
            _NO_CONSENT if consent is None else _Decision(True, f"consent:{consent.id}", None, consent.valid_until())
        )
        self.guard.consent_decisions[shared_key] = (decision, self.generation)
        return decision
