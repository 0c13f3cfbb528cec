"""Deciding on every personal value of a response, in SPEC.md's order, and applying it.

For each personal value the shaper set aside (its slot in the response is null until decided):

1. allowed when the requester acts for the subject themself;
2. allowed when a legal-basis rule of the policy matches (role, purpose, category);
3. allowed when the ledger holds an active consent of the subject for (recipient, purpose,
   category) — looked up once per request for every subject at once;
4. otherwise withheld: masked with the field's or the category's strategy.

Allowed disclosures to anyone but the subject are written to the audit log before any of them is
placed in the response; if the ledger or the audit log cannot be used, everything is withheld.
Aggregates below k contributors are withheld too. Withheld values are listed (path, category,
reason, strategy), never their value. This stage never returns a value it has not decided on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..consent import AuditLog, Disclosure, Ledger, LedgerUnavailable
from ..executor import path_of
from ..identity import Requester
from ..policy import Policy
from ..taxonomy import category_covers
from ._masking import mask, recipient_key

logger = logging.getLogger("citygate.privacy")

# What the shaper sets aside, one tuple per value (kept as tuples: there may be thousands):
# ("personal", slot, key, value, type_name, field_name, PersonalField, subject, path node)
# ("aggregate", slot, key, value, type_name, field_name, AggregateField, contributors, path node)
Pending = tuple


@dataclass(frozen=True, slots=True)
class _Decision:
    allowed: bool
    basis: str | None  # "self", "policy:<rule>", "consent:<id>"
    reason: str | None


_SELF = _Decision(True, "self", None)
_UNKNOWN_SUBJECT = _Decision(False, None, "subject-unknown")
_PUBLIC = _Decision(False, None, "public-requester")
_NO_CONSENT = _Decision(False, None, "no-consent")
_LEDGER_DOWN = _Decision(False, None, "ledger-unavailable")
_AUDIT_DOWN = _Decision(False, None, "audit-unavailable")


class PrivacyGuard:
    def __init__(self, policy: Policy, ledger: Ledger, audit: AuditLog | None, pseudonym_master: bytes) -> None:
        self.policy = policy
        self.ledger = ledger
        self.audit = audit if policy.audit_enabled else None
        self.pseudonym_master = pseudonym_master
        self._recipient_keys: dict[str, bytes] = {}

    def _key(self, recipient: str) -> bytes:
        key = self._recipient_keys.get(recipient)
        if key is None:
            key = self._recipient_keys[recipient] = recipient_key(self.pseudonym_master, recipient)
        return key

    def _policy_rule(self, requester: Requester, category: str) -> str | None:
        if requester.purpose is None:
            return None
        for rule in self.policy.legal_bases:
            if (
                requester.purpose in rule.purposes
                and requester.roles.intersection(rule.roles)
                and any(category_covers(c, category) for c in rule.categories)
            ):
                return rule.name
        return None

    async def record_shared(self, requester: Requester, disclosures: list[Disclosure], request_id: str) -> None:
        """Audit another request's disclosures again, for a request that shares its answer."""
        if self.audit is not None:
            await self.audit.record(request_id, requester.recipient, requester.purpose or "", disclosures)

    async def enforce(self, requester: Requester, pending: list[Pending], request_id: str) -> tuple[dict[str, Any] | None, list[Disclosure]]:
        """Fill every set-aside slot; return `extensions.privacy` (None when nothing was withheld)
        and the disclosures audited."""
        # Decide once per (subject, category): a response repeats them across many values.
        decided: dict[tuple, _Decision] = {}
        needs_ledger: set[str] = set()
        for item in pending:
            if item[0] != "personal":
                continue
            subject, category = item[7], item[6].category
            if not isinstance(subject, (str, int)) or isinstance(subject, bool):
                subject = None
            key = (subject, category)
            if key in decided:
                continue
            if subject is None:
                decision = _UNKNOWN_SUBJECT
            elif requester.resident is not None and str(subject) == requester.resident:
                decision = _SELF
            elif requester.is_public:
                decision = _PUBLIC
            else:
                rule = self._policy_rule(requester, category)
                if rule is not None:
                    decision = _Decision(True, f"policy:{rule}", None)
                else:
                    decision = _NO_CONSENT
                    needs_ledger.add(str(subject))
            decided[key] = decision

        if needs_ledger:
            try:
                consents = await self.ledger.active_for(needs_ledger, requester.recipient, requester.purpose or "")
            except LedgerUnavailable:
                logger.error("the consent ledger cannot be read: every personal value is withheld")
                decided = dict.fromkeys(decided, _LEDGER_DOWN)
            else:
                for (subject, category), decision in decided.items():
                    if decision is _NO_CONSENT:
                        consent = next((c for c in consents.get(str(subject), ()) if c.covers(category)), None)
                        if consent is not None:
                            decided[(subject, category)] = _Decision(True, f"consent:{consent.id}", None)

        def decision_for(item: Pending) -> _Decision:
            subject = item[7]
            if not isinstance(subject, (str, int)) or isinstance(subject, bool):
                subject = None
            return decided[(subject, item[6].category)]

        disclosures: dict[str, Disclosure] = {}
        for item in pending:
            # a null discloses nothing: no audit record, as no withheld entry either
            if item[0] != "personal" or item[3] is None:
                continue
            decision = decision_for(item)
            if decision.allowed and decision.basis != "self":
                subject = str(item[7])
                disclosure = disclosures.get(subject)
                if disclosure is None:
                    disclosure = disclosures[subject] = Disclosure(subject)
                disclosure.fields.add(f"{item[4]}.{item[5]}")
                disclosure.basis.add(decision.basis)  # type: ignore[arg-type]
        audited = list(disclosures.values())
        if audited and self.audit is not None:
            try:
                await self.audit.record(request_id, requester.recipient, requester.purpose or "", audited)
            except Exception:
                logger.exception("the audit log refused the disclosures: they are withheld")
                audited = []
                decided = {k: (_AUDIT_DOWN if d.allowed and d.basis != "self" else d) for k, d in decided.items()}

        withheld: list[dict[str, Any]] = []
        key = self._key(requester.recipient)
        for item in pending:
            kind, slot, response_key, value = item[0], item[1], item[2], item[3]
            if kind == "aggregate":
                aggregate, contributors = item[6], item[7]
                minimum = max(self.policy.k, aggregate.min_contributors or 0)
                if isinstance(contributors, int) and not isinstance(contributors, bool) and contributors >= minimum:
                    slot[response_key] = value
                else:
                    withheld.append({"path": path_of(item[8]), "category": "aggregate", "reason": "below-k", "strategy": "null"})
                continue
            decision = decision_for(item)
            if decision.allowed:
                slot[response_key] = value
                continue
            personal = item[6]
            strategy = self.policy.strategy_for(personal.category, personal.strategy)
            slot[response_key] = mask(value, strategy, personal.category, key)
            if value is not None:
                withheld.append({"path": path_of(item[8]), "category": personal.category, "reason": decision.reason, "strategy": strategy})
        return ({"withheld": withheld} if withheld else None), audited
