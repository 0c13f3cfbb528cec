"""Deciding on the personal values the gateway sends to subgraphs: flows are disclosures too.

An entity fetch carries representations: key fields and `@requires` fields, read from what
other subgraphs answered. When one of them is personal, the subgraph's owner receives a
resident's value: SPEC.md's decision applies with that owner as the recipient and the request's
purpose, before the value leaves:

1. allowed when the request is the subject's own and either the recipient runs the requesting
   client (the resident sends their own data to the service whose app they signed in to) or the
   value is part of the entity's key (the subject asks the partner for what it holds about them,
   the export of their rights included, naming themselves by the key the partner keeps): basis
   `self`. A `@requires` input is not asked for by the subject: through any other client it needs
   one of the rules below like anyone's value, or a partner adding a field with `@requires` on a
   resident's e-mail would receive it from every resident who asks for everything they can see;
2. allowed when a legal basis of the policy names the recipient (`recipients:`), the purpose, a
   category covering the value's, and every source of the value (`sources:`);
3. allowed when the recipient is the organisation of the requesting client itself and the
   client would be given the value (its own legal basis or the subject's consent to the client):
   the partner receives nothing its own client does not;
4. allowed when the ledger holds an active consent of the subject for a client of the recipient
   (a policy client whose `partner:` is the recipient), the purpose and a covering category;
5. otherwise withheld: the representation is not sent, the fields it would have fetched are null
   and listed in `extensions.privacy.withheld` with the recipient.

Allowed flows are written to the audit log (recipient: the owner) before the fetch is sent; if
the audit log refuses, they are withheld. If the ledger cannot be read, every flow that needs it
is withheld. This module never sends anything: it answers which values may leave.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..consent import Disclosure, LedgerUnavailable
from ..executor import FlowValue
from ..identity import Requester
from ._guard import PrivacyGuard

logger = logging.getLogger("citygate.privacy")


@dataclass(frozen=True, slots=True)
class FlowVerdict:
    allowed: bool
    basis: str | None = None  # "self", "policy:<rule>", "consent:<id>", "client:<basis>"
    reason: str | None = None  # why it was withheld


_UNKNOWN_SUBJECT = FlowVerdict(False, reason="subject-unknown")
_NO_CONSENT = FlowVerdict(False, reason="no-consent")
_LEDGER_DOWN = FlowVerdict(False, reason="ledger-unavailable")
_AUDIT_DOWN = FlowVerdict(False, reason="audit-unavailable")
_SELF = FlowVerdict(True, basis="self")


class RequestFlows:
    """One request's decisions on flows; `withheld` lists what did not leave (for the response)."""

    __slots__ = ("_decided", "guard", "request_id", "requester", "withheld")

    def __init__(self, guard: PrivacyGuard, requester: Requester, request_id: str) -> None:
        self.guard = guard
        self.requester = requester
        self.request_id = request_id
        self.withheld: list[dict] = []
        self._decided: dict[tuple, FlowVerdict] = {}

    async def admit(self, recipient: str, values: list[FlowValue]) -> list[FlowVerdict]:
        """A verdict per value for `recipient` (a subgraph's owner); allowed ones are audited
        before this returns, and turned into withheld ones if the audit log refuses them."""
        guard = self.guard
        requester = self.requester
        generation = guard.ledger.generation
        now = time.time()
        kept = guard.flow_verdicts
        requester_key = (requester.recipient, requester.purpose, requester.resident, requester.roles)
        verdicts: list[FlowVerdict | None] = []
        pending: list[int] = []
        for index, value in enumerate(values):
            verdict = self._decided.get((recipient, value))
            if verdict is None:
                known = kept.get((recipient, requester_key, value))
                if known is not None and known[1] == generation and (known[2] is None or known[2] > now):
                    verdict = known[0]
                else:
                    pending.append(index)
            verdicts.append(verdict)
        if pending:
            decided = await self._decide(recipient, [values[i] for i in pending])
            for index, (verdict, valid_until) in zip(pending, decided, strict=True):
                verdicts[index] = verdict
                # kept across this requester's requests until the ledger changes or the consent
                # expires; never a ledger outage: the next request asks the ledger again
                if verdict is not _LEDGER_DOWN:
                    kept[(recipient, requester_key, values[index])] = (verdict, generation, valid_until)
        final: list[FlowVerdict] = verdicts  # type: ignore[assignment]
        # audited once per request, value and recipient; the recipient's own data is no disclosure
        fresh = [i for i, v in enumerate(final) if v.allowed and (recipient, values[i]) not in self._decided]
        if fresh and guard.audit is not None:
            disclosures: dict[str, Disclosure] = {}
            for i in fresh:
                value = values[i]
                disclosure = disclosures.get(value.subject)  # type: ignore[arg-type]
                if disclosure is None:
                    disclosure = disclosures[value.subject] = Disclosure(value.subject)  # type: ignore[index,arg-type]
                disclosure.fields.add(value.coordinate)
                disclosure.basis.add(final[i].basis or "")
            try:
                await guard.audit.record(
                    self.request_id, recipient, requester.purpose or "", list(disclosures.values())
                )
            except Exception:
                logger.exception("the audit log refused flows to %s: they are withheld", recipient)
                for i in fresh:
                    final[i] = _AUDIT_DOWN
        for i in fresh:
            self._decided[(recipient, values[i])] = final[i]
        return final

    async def _decide(self, recipient: str, values: list[FlowValue]) -> list[tuple[FlowVerdict, float | None]]:
        """(verdict, until when it holds: a consent's expiry, else None) per value."""
        requester = self.requester
        expiries: dict[int, float | None] = {}
        purpose = requester.purpose or ""
        policy = self.guard.policy
        verdicts: list[FlowVerdict | None] = []
        # the requesting client's own organisation: the service the resident is using
        client = requester.client
        own = client is not None and client.partner == recipient
        for value in values:
            if value.subject is None:
                verdicts.append(_UNKNOWN_SUBJECT)
            elif (own or value.key) and requester.resident is not None and value.subject == requester.resident:
                verdicts.append(_SELF)
            else:
                rule = self.guard.flow_rule(recipient, purpose, value.category, value.sources)
                verdicts.append(FlowVerdict(True, basis=f"policy:{rule}") if rule is not None else None)
        # the requesting client's own organisation receives what the client itself would
        if own:
            for index, value in enumerate(values):
                if verdicts[index] is None:
                    rule = self.guard.client_rule(requester, value.category, value.sources)
                    if rule is not None:
                        verdicts[index] = FlowVerdict(True, basis=f"policy:{rule}")
        undecided = [i for i, verdict in enumerate(verdicts) if verdict is None]
        if undecided:
            # consents of the subjects to the recipient's clients (and to the requesting client, when it is the recipient's)
            clients = sorted(c.id for c in policy.clients.values() if c.partner == recipient)
            subjects = {values[i].subject for i in undecided if values[i].subject is not None}
            try:
                by_client = {cid: await self.guard.ledger.active_for(subjects, cid, purpose) for cid in clients}  # type: ignore[arg-type]
            except LedgerUnavailable:
                logger.error("the consent ledger cannot be read: flows to %s that need consent are withheld", recipient)
                by_client = None
            for index in undecided:
                value = values[index]
                if by_client is None:
                    verdicts[index] = _LEDGER_DOWN
                    continue
                consent = next(
                    (c for cid in clients for c in by_client[cid].get(value.subject, ()) if c.covers(value.category)),  # type: ignore[arg-type]
                    None,
                )
                if consent is None:
                    verdicts[index] = _NO_CONSENT
                else:
                    verdicts[index] = FlowVerdict(True, basis=f"consent:{consent.id}")
                    expiries[index] = consent.valid_until()
        return [(v if v is not None else _NO_CONSENT, expiries.get(i)) for i, v in enumerate(verdicts)]
