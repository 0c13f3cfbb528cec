"""The control plane: a built-in subgraph, run in-process, in the same supergraph as the city.

Residents read their consents and the disclosures made about them, grant consents (through a
client the policy lets collect them) and withdraw them (through any client); everyone can read
which clients exist and for which purposes they ask. Each consent reads as an ISO/IEC TS 27560
record (DPV JSON-LD) and as a receipt signed by the gateway (`_receipts.py`). The requester arrives as the execution
context; nothing here trusts a resident id sent as an argument.

The types are defined once, here; what one gateway's schema serves them from (its ledger, audit
log, policy and residents' rights) is a `ControlPlane`, which the schema hands every resolver in
its execution context beside the requester (`info.context`, a `PlaneRequest`).
"""

# No `from __future__ import annotations`: Strawberry resolves the types below from the
# annotations themselves.
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.types import Info

from ..identity import Requester
from ..policy import Policy
from ._audit import AuditLog
from ._ledger import ConsentError, ConsentRecord, Ledger
from ._receipts import iso_27560_record, signed_receipt
from ._rights import ResidentRights, RightsError

CONTROL_PLANE = "citygate"
logger = logging.getLogger("citygate.consent")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True, slots=True)
class ControlPlane:
    """What the resolvers of one control-plane schema read and write."""

    ledger: Ledger
    audit: AuditLog
    policy: Policy
    rights: ResidentRights | None = None

    @property
    def audited(self) -> AuditLog | None:
        """The audit log residents' rights record into, or None when the policy turns audit off."""
        return self.audit if self.policy.audit_enabled else None

    def rights_or_refuse(self) -> ResidentRights:
        if self.rights is None:
            raise GraphQLError("residents' rights are not served by this gateway", extensions={"code": "NOT_SUPPORTED"})
        return self.rights

    async def sign(self, record: ConsentRecord) -> str:
        try:
            _, jws = await signed_receipt(self.ledger.signer, record, self.ledger.receipt(record), self.policy)
        except Exception as error:  # the key cannot be read: the consent stands, its signature waits
            logger.error("a consent receipt could not be signed (%s)", type(error).__name__)
            raise GraphQLError(
                "the receipt cannot be signed now: ask again later", extensions={"code": "RECEIPT_UNAVAILABLE"}
            ) from None
        return jws


@dataclass(frozen=True, slots=True)
class PlaneRequest:
    """The execution context of one control-plane request: the plane, and whoever the executor
    says is asking (a `Requester`; anything else is refused by `_requester`)."""

    plane: ControlPlane
    requester: Any


def _plane(info: Info) -> ControlPlane:
    return info.context.plane


def _requester(info: Info) -> Requester:
    requester = info.context.requester
    if not isinstance(requester, Requester):
        raise GraphQLError("no requester", extensions={"code": "UNAUTHENTICATED"})
    return requester


def _resident(info: Info) -> tuple[Requester, str]:
    requester = _requester(info)
    if requester.resident is None:
        raise GraphQLError("sign in as a resident to manage your consents", extensions={"code": "UNAUTHENTICATED"})
    return requester, requester.resident


def _refused(error: ConsentError | RightsError) -> GraphQLError:
    """The ledger's or the rights' refusal, as the client reads it: its message and stable code."""
    return GraphQLError(error.message, extensions={"code": error.code})


@strawberry.type(description="A consent a resident gave: ISO/IEC TS 27560 fields.")
class Consent:
    id: strawberry.ID
    recipient: str
    purpose: str
    categories: list[str]
    legal_basis: str
    granted_at: str
    expires_at: str | None
    withdrawn_at: str | None
    active: bool
    collection_method: str
    notice_version: str
    ledger_record: strawberry.Private[ConsentRecord]

    @strawberry.field(
        description="This consent as an ISO/IEC TS 27560 record in W3C DPV JSON-LD, its status as of now."
    )
    def record(self, info: Info) -> JSON:
        return iso_27560_record(self.ledger_record, _plane(info).policy)

    @strawberry.field(
        description="A compact JWS (ES256) signed by the gateway, payload `iso27560` (the record, status as of now) and `kantara` "
        "(the Kantara receipt); verify it with the keys at /.well-known/jwks.json."
    )
    async def signed_receipt(self, info: Info) -> str | None:
        return await _plane(info).sign(self.ledger_record)

    @classmethod
    def of(cls, record: ConsentRecord) -> "Consent":
        return cls(
            id=strawberry.ID(record.id),
            recipient=record.recipient,
            purpose=record.purpose,
            categories=list(record.categories),
            legal_basis=record.legal_basis,
            granted_at=_iso(record.granted_at) or "",
            expires_at=_iso(record.expires_at),
            withdrawn_at=_iso(record.withdrawn_at),
            active=record.active(),
            collection_method=record.collection_method,
            notice_version=record.notice_version,
            ledger_record=record,
        )


@strawberry.type(
    description="Granting a consent answers with the consent, its Kantara receipt, its ISO/IEC TS 27560 record and both signed."
)
class ConsentReceipt:
    consent: Consent
    receipt: JSON

    @strawberry.field(description="The consent as an ISO/IEC TS 27560 record in W3C DPV JSON-LD.")
    def record(self, info: Info) -> JSON:
        return iso_27560_record(self.consent.ledger_record, _plane(info).policy)

    @strawberry.field(
        description="The record and the Kantara receipt in one compact JWS signed by the gateway (keys: /.well-known/jwks.json)."
    )
    async def signed_receipt(self, info: Info) -> str | None:
        return await _plane(info).sign(self.consent.ledger_record)


@strawberry.type(description="A disclosure of the resident's data to someone else, from the audit log.")
class Disclosure:
    at: str
    request_id: str
    recipient: str
    purpose: str
    fields: list[str]
    basis: list[str]


@strawberry.type(description="Where one connector stands with an erasure request.")
class ErasureDelivery:
    connector: str
    owner: str
    status: str = strawberry.field(
        description="pending, done, failed, not-supported (the connector declares no erasure endpoint) or retained (the city declares "
        "a legal obligation to keep the data, GDPR art. 17(3))."
    )
    reason: str | None = strawberry.field(
        description="Why it failed, is not supported or is retained (the legal reason): a stable code of the gateway's, never the partner's words."
    )
    attempts: int
    updated_at: str


@strawberry.type(description="An erasure request (GDPR art. 17), forwarded to every connector holding residents' data.")
class ErasureRequest:
    id: strawberry.ID
    requested_at: str
    via: str
    deliveries: list[ErasureDelivery]

    @classmethod
    def of(cls, request: Any) -> "ErasureRequest":
        return cls(
            id=strawberry.ID(request.id),
            requested_at=_iso(request.requested_at) or "",
            via=request.via,
            deliveries=[
                ErasureDelivery(
                    connector=d.connector,
                    owner=d.owner,
                    status=d.status,
                    reason=d.reason,
                    attempts=d.attempts,
                    updated_at=_iso(d.updated_at) or "",
                )
                for d in request.deliveries
            ],
        )


@strawberry.type
class Purpose:
    id: strawberry.ID
    description: str


@strawberry.type(description="A client of the city's API, and the purposes it asks for.")
class Client:
    id: strawberry.ID
    name: str
    description: str
    purposes: list[Purpose]


@strawberry.type(description="The signed-in resident.")
class Me:
    resident_id: strawberry.ID

    @strawberry.field
    async def consents(self, info: Info, active_only: bool = False) -> list[Consent]:
        records = await _plane(info).ledger.consents(str(self.resident_id))
        return [Consent.of(r) for r in records if r.active() or not active_only]

    @strawberry.field
    async def disclosures(self, info: Info, limit: int = 50) -> list[Disclosure]:
        entries = await _plane(info).audit.entries_for(str(self.resident_id), limit=max(1, min(limit, 500)))
        return [
            Disclosure(
                at=e["at"],
                request_id=e["request_id"],
                recipient=e["recipient"],
                purpose=e["purpose"],
                fields=e["fields"],
                basis=e["basis"],
            )
            for e in entries
        ]

    @strawberry.field(
        description="Everything the city's graph holds about you, from every connector, as one JSON document (format citygate-export/1; "
        'docs/privacy.md, "Residents\' rights"). Each export is recorded in the audit log.'
    )
    async def export(self, info: Info) -> JSON:
        requester = _requester(info)
        plane = _plane(info)
        try:
            return await plane.rights_or_refuse().export(requester, plane.audited)
        except RightsError as error:
            raise _refused(error) from None

    @strawberry.field(description="Your erasure requests, newest first, with each connector's status.")
    async def erasure_requests(self, info: Info, limit: int = 20) -> list[ErasureRequest]:
        try:
            found = await _plane(info).rights_or_refuse().requests(str(self.resident_id), max(1, min(limit, 100)))
        except RightsError as error:
            raise _refused(error) from None
        return [ErasureRequest.of(r) for r in found]


@strawberry.type
class Query:
    @strawberry.field(description="The signed-in resident, or null for anyone else.")
    def me(self, info: Info) -> Me | None:
        requester = _requester(info)
        return Me(resident_id=strawberry.ID(requester.resident)) if requester.resident else None

    @strawberry.field(description="Who each client is and for which purposes it asks.")
    def clients(self, info: Info) -> list[Client]:
        policy = _plane(info).policy
        return [
            Client(
                id=strawberry.ID(c.id),
                name=c.name,
                description=c.description,
                purposes=[Purpose(id=strawberry.ID(p), description=policy.purposes.get(p, "")) for p in c.purposes],
            )
            for c in policy.clients.values()
        ]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Consent to one client using some categories of your data for one purpose.")
    async def grant_consent(
        self, info: Info, recipient: str, purpose: str, categories: list[str], expires_in_days: int | None = None
    ) -> ConsentReceipt:
        requester, resident = _resident(info)
        if requester.client is None or not requester.client.collects_consent:
            raise GraphQLError("this client may not collect consents", extensions={"code": "FORBIDDEN"})
        try:
            record, receipt = await _plane(info).ledger.grant(
                subject=resident,
                recipient=recipient,
                purpose=purpose,
                categories=categories,
                expires_in_days=expires_in_days,
                collection_method=f"citygate-api via {requester.client.id}",
            )
        except ConsentError as error:
            raise _refused(error) from None
        return ConsentReceipt(consent=Consent.of(record), receipt=receipt)

    @strawberry.mutation(description="Withdraw a consent: effective from the next request.")
    async def withdraw_consent(self, info: Info, consent_id: strawberry.ID) -> Consent:
        _, resident = _resident(info)
        try:
            record = await _plane(info).ledger.withdraw(subject=resident, consent_id=str(consent_id))
        except ConsentError as error:
            raise _refused(error) from None
        return Consent.of(record)

    @strawberry.mutation(
        description="Ask every connector holding your data to erase it (GDPR art. 17): recorded at once, forwarded in the background; "
        "follow it in me { erasureRequests }."
    )
    async def request_erasure(self, info: Info) -> ErasureRequest:
        requester, _ = _resident(info)
        plane = _plane(info)
        try:
            request = await plane.rights_or_refuse().request_erasure(requester, plane.audited)
        except RightsError as error:
            raise _refused(error) from None
        return ErasureRequest.of(request)


class ControlPlaneSchema(strawberry.federation.Schema):
    """The control plane's federation schema for one `ControlPlane`: whatever context the executor
    passes (the requester) reaches the resolvers wrapped in a `PlaneRequest` with the plane."""

    def __init__(self, plane: ControlPlane) -> None:
        super().__init__(query=Query, mutation=Mutation, federation_version="2.5")
        self.plane = plane

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any = None,
        **options: Any,
    ) -> Any:
        return await super().execute(
            query, variable_values=variable_values, context_value=PlaneRequest(self.plane, context_value), **options
        )


def control_plane_schema(
    ledger: Ledger, audit: AuditLog, policy: Policy, rights: ResidentRights | None = None
) -> strawberry.federation.Schema:
    return ControlPlaneSchema(ControlPlane(ledger, audit, policy, rights))
