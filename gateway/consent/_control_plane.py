"""The control plane: a built-in subgraph, run in-process, in the same supergraph as the city.

Residents read their consents and the disclosures made about them, grant consents (through a
client the policy lets collect them) and withdraw them (through any client); everyone can read
which clients exist and for which purposes they ask. The requester arrives as the execution
context; nothing here trusts a resident id sent as an argument.
"""

# No `from __future__ import annotations`: Strawberry must resolve the types defined in
# control_plane_schema() from the annotations themselves.
from datetime import datetime

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.types import Info

from ..identity import Requester
from ..policy import Policy
from ._audit import AuditLog
from ._ledger import ConsentError, ConsentRecord, Ledger

CONTROL_PLANE = "citygate"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _requester(info: Info) -> Requester:
    requester = info.context
    if not isinstance(requester, Requester):
        raise GraphQLError("no requester", extensions={"code": "UNAUTHENTICATED"})
    return requester


def _resident(info: Info) -> tuple[Requester, str]:
    requester = _requester(info)
    if requester.resident is None:
        raise GraphQLError("sign in as a resident to manage your consents", extensions={"code": "UNAUTHENTICATED"})
    return requester, requester.resident


def control_plane_schema(ledger: Ledger, audit: AuditLog, policy: Policy) -> strawberry.federation.Schema:
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
            )

    @strawberry.type(description="Granting a consent answers with the consent and its Kantara receipt.")
    class ConsentReceipt:
        consent: Consent
        receipt: JSON

    @strawberry.type(description="A disclosure of the resident's data to someone else, from the audit log.")
    class Disclosure:
        at: str
        request_id: str
        recipient: str
        purpose: str
        fields: list[str]
        basis: list[str]

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
        async def consents(self, active_only: bool = False) -> list[Consent]:
            records = await ledger.consents(str(self.resident_id))
            return [Consent.of(r) for r in records if r.active() or not active_only]

        @strawberry.field
        async def disclosures(self, limit: int = 50) -> list[Disclosure]:
            entries = await audit.entries_for(str(self.resident_id), limit=max(1, min(limit, 500)))
            return [
                Disclosure(at=e["at"], request_id=e["request_id"], recipient=e["recipient"], purpose=e["purpose"], fields=e["fields"], basis=e["basis"])
                for e in entries
            ]

    @strawberry.type
    class Query:
        @strawberry.field(description="The signed-in resident, or null for anyone else.")
        def me(self, info: Info) -> Me | None:
            requester = _requester(info)
            return Me(resident_id=strawberry.ID(requester.resident)) if requester.resident else None

        @strawberry.field(description="Who each client is and for which purposes it asks.")
        def clients(self) -> list[Client]:
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
                record, receipt = await ledger.grant(
                    subject=resident,
                    recipient=recipient,
                    purpose=purpose,
                    categories=categories,
                    expires_in_days=expires_in_days,
                    collection_method=f"citygate-api via {requester.client.id}",
                )
            except ConsentError as error:
                raise GraphQLError(error.message, extensions={"code": error.code}) from None
            return ConsentReceipt(consent=Consent.of(record), receipt=receipt)

        @strawberry.mutation(description="Withdraw a consent: effective from the next request.")
        async def withdraw_consent(self, info: Info, consent_id: strawberry.ID) -> Consent:
            _, resident = _resident(info)
            try:
                record = await ledger.withdraw(subject=resident, consent_id=str(consent_id))
            except ConsentError as error:
                raise GraphQLError(error.message, extensions={"code": error.code}) from None
            return Consent.of(record)

    return strawberry.federation.Schema(query=Query, mutation=Mutation, federation_version="2.5")
