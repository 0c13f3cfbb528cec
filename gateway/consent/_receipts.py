"""Verifiable records: what the gateway signs so that anyone can check it without trusting us.

- A consent receipt in ISO/IEC TS 27560 form (W3C DPV JSON-LD), beside its Kantara v1.1 fields,
  both inside one compact JWS (ES256) signed by the gateway;
- the audit chain's head (seq, hash, time), signed with the same key, so a third party that kept
  an earlier head can tell that the log was not rewritten.

The key is the operator's (`CITYGATE_SIGNING_KEY`: a PEM EC P-256 private key, or the path of a
file holding one) or, without it, generated at first start and kept in the store's settings (as
the pseudonymisation key is), so every replica and every restart signs with the same key. Its
public half is published as a JWKS (`/.well-known/jwks.json`); `kid` is its RFC 7638 thumbprint.
Never signed: anything that is not what the store holds (a record is built from the ledger's
events, a head from the chain), nor another resident's identifier than the receipt's subject.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

if TYPE_CHECKING:  # the ledger holds a signer: no import cycle at run time
    from ..policy import Policy
    from ..store import Store
    from ._ledger import ConsentRecord

SIGNING_KEY_SETTING = "receipt_signing_key"
ALGORITHM = "ES256"
RECEIPT_TYPE = "citygate-consent-receipt+jwt"
AUDIT_HEAD_TYPE = "citygate-audit-head+jwt"
ISO_27560 = "ISO/IEC TS 27560:2023"

# the DPV vocabulary and the terms a record uses, so the record reads as plain JSON too
DPV_CONTEXT: dict[str, Any] = {
    "dpv": "https://w3id.org/dpv#",
    "eu-gdpr": "https://w3id.org/dpv/legal/eu/gdpr#",
    "dct": "http://purl.org/dc/terms/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "fides": "https://ethyca.github.io/fideslang/taxonomy/data_categories/#",
    "dct:created": {"@type": "xsd:dateTime"},
    "dct:modified": {"@type": "xsd:dateTime"},
    "dpv:isIndicatedAtTime": {"@type": "xsd:dateTime"},
    "dpv:hasExpiryTime": {"@type": "xsd:dateTime"},
    "dpv:hasWithdrawalTime": {"@type": "xsd:dateTime"},
}


class SigningKeyError(Exception):
    """The operator's signing key is not a usable EC P-256 private key."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    private: ec.EllipticCurvePrivateKey
    kid: str
    public_jwk: dict[str, str]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signing_key(pem: str) -> SigningKey:
    try:
        private = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as error:
        raise SigningKeyError(f"the signing key is not a PEM private key without password ({type(error).__name__})") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(private.curve, ec.SECP256R1):
        raise SigningKeyError("the signing key must be an EC key on P-256 (ES256)")
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    required = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    # RFC 7638: the required members, sorted, no whitespace
    kid = _b64url(hashlib.sha256(orjson.dumps(required, option=orjson.OPT_SORT_KEYS)).digest())
    return SigningKey(private, kid, {**required, "kid": kid, "use": "sig", "alg": ALGORITHM})


def new_signing_key_pem() -> str:
    private = ec.generate_private_key(ec.SECP256R1())
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _operator_pem(configured: str) -> str:
    configured = configured.strip()
    if configured.startswith("-----BEGIN"):
        return configured
    path = Path(configured)
    if not path.is_file():
        raise SigningKeyError("CITYGATE_SIGNING_KEY is neither a PEM key nor the path of a file holding one")
    return path.read_text()


class RecordSigner:
    """Signs receipts and audit heads with the gateway's key, loaded once (from the environment,
    else from the store, created there at first use)."""

    def __init__(self, store: Store, configured: str | None = None) -> None:
        self.store = store
        self.configured = configured if configured is not None else os.environ.get("CITYGATE_SIGNING_KEY")
        self._key: SigningKey | None = None
        self._loading = asyncio.Lock()

    async def key(self) -> SigningKey:
        if self._key is None:
            async with self._loading:
                if self._key is None:
                    if self.configured:
                        pem = _operator_pem(self.configured)
                    else:
                        pem = await self.store.setting(SIGNING_KEY_SETTING, new_signing_key_pem)
                    self._key = _signing_key(pem)
        return self._key

    async def jwks(self) -> dict[str, Any]:
        return {"keys": [dict((await self.key()).public_jwk)]}

    async def sign(self, claims: dict[str, Any], token_type: str) -> str:
        key = await self.key()
        return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": token_type})


def consent_status(record: ConsentRecord, at: datetime | None = None) -> str:
    at = at or datetime.now(UTC)
    if record.withdrawn_at is not None:
        return "dpv:ConsentWithdrawn"
    if record.active(at):
        return "dpv:ConsentGiven"
    return "dpv:ConsentExpired"


def iso_27560_record(record: ConsentRecord, policy: Policy, at: datetime | None = None) -> dict[str, Any]:
    """The consent record as ISO/IEC TS 27560 asks for it, in W3C DPV JSON-LD: who (subject),
    to whom (recipient), why (purpose), what (the Fides categories), on which basis, its status
    now and the times of each change."""
    at = at or datetime.now(UTC)
    client = policy.clients.get(record.recipient)
    controller = policy.controller
    document: dict[str, Any] = {
        "@context": DPV_CONTEXT,
        "@id": f"urn:uuid:{record.id}",
        "@type": "dpv:ConsentRecord",
        "dct:conformsTo": ISO_27560,
        "dct:identifier": record.id,
        "dct:created": record.granted_at.isoformat(),
        "dpv:hasDataSubject": {"@type": "dpv:DataSubject", "dct:identifier": record.subject},
        "dpv:hasDataController": {
            "@type": "dpv:DataController",
            "dpv:hasName": controller.name,
            "dpv:hasJurisdiction": controller.jurisdiction,
        },
        "dpv:hasPurpose": {
            "@type": "dpv:Purpose",
            "dct:identifier": record.purpose,
            "dct:description": policy.purposes.get(record.purpose, ""),
        },
        "dpv:hasPersonalData": [{"@id": f"fides:{category}", "@type": "dpv:PersonalData", "dct:identifier": category} for category in record.categories],
        "dpv:hasRecipient": {
            "@type": "dpv:Recipient",
            "dct:identifier": record.recipient,
            "dpv:hasName": client.name if client is not None else record.recipient,
        },
        "dpv:hasLegalBasis": {"@id": "eu-gdpr:A6-1-a" if record.legal_basis == "consent" else f"dpv:{record.legal_basis}"},
        "dpv:hasConsentStatus": {"@id": consent_status(record, at)},
        "dpv:isIndicatedAtTime": record.granted_at.isoformat(),
        "dpv:isIndicatedBy": {"@type": "dpv:DataSubject", "dct:identifier": record.subject},
        "dpv:hasIndicationMethod": record.collection_method,
        "dpv:hasNotice": {"@type": "dpv:PrivacyNotice", "dct:hasVersion": record.notice_version, "dct:source": controller.policy_url},
    }
    if record.expires_at is not None:
        document["dpv:hasExpiryTime"] = record.expires_at.isoformat()
    if record.withdrawn_at is not None:
        document["dpv:hasWithdrawalTime"] = record.withdrawn_at.isoformat()
        document["dct:modified"] = record.withdrawn_at.isoformat()
    return document


async def signed_receipt(signer: RecordSigner, record: ConsentRecord, kantara: dict[str, Any], policy: Policy) -> tuple[dict[str, Any], str]:
    """The 27560 record and the compact JWS whose payload carries it beside the Kantara receipt."""
    now = datetime.now(UTC)
    document = iso_27560_record(record, policy, now)
    claims = {
        "jti": record.id,
        "sub": record.subject,
        "iat": int(now.timestamp()),
        "iso27560": document,
        "kantara": kantara,
    }
    return document, await signer.sign(claims, RECEIPT_TYPE)


async def signed_audit_head(signer: RecordSigner, seq: int, head_hash: str, at: str | None) -> str:
    """The chain head as a JWS: seq and hash of the newest entry, its time, and when it was signed."""
    claims = {"seq": seq, "hash": head_hash, "at": at, "iat": int(datetime.now(UTC).timestamp())}
    return await signer.sign(claims, AUDIT_HEAD_TYPE)
