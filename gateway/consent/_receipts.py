"""Verifiable records: what the gateway signs so that anyone can check it without trusting us.

- A consent receipt in ISO/IEC TS 27560 form (W3C DPV JSON-LD), beside its Kantara v1.1 fields,
  both inside one compact JWS (ES256) signed by the gateway;
- the audit chain's head (seq, hash, time), signed with the same key, so a third party that kept
  an earlier head can tell that the log was not rewritten.

The key is the operator's (`CITYGATE_SIGNING_KEY`: a PEM EC P-256 private key, or the path of a
file holding one) or, without it, generated at first start and kept in the store (table
`signing_keys`; the first one was kept in the settings as `receipt_signing_key`, and is taken over
from there), so every replica and every restart signs with the same key. `citygate keys rotate`
(`rotate_signing_key`) makes a new key the current one; the previous ones stay published until
their verification window ends (30 days by default), so what they signed still verifies. Public
halves are published as a JWKS (`/.well-known/jwks.json`); `kid` is a key's RFC 7638 thumbprint.
A running signer reads the store's keys again every `refresh` seconds: a rotation reaches every
replica within that time, the old key still published meanwhile.
Never signed: anything that is not what the store holds (a record is built from the ledger's
events, a head from the chain), nor another resident's identifier than the receipt's subject.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, and_, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

if TYPE_CHECKING:  # the ledger holds a signer: no import cycle at run time
    from ..policy import Policy
    from ..store import Store
    from ._ledger import ConsentRecord

logger = logging.getLogger("citygate.receipts")

SIGNING_KEY_SETTING = "receipt_signing_key"
ALGORITHM = "ES256"
RECEIPT_TYPE = "citygate-consent-receipt+jwt"
AUDIT_HEAD_TYPE = "citygate-audit-head+jwt"
ISO_27560 = "ISO/IEC TS 27560:2023"
DEFAULT_VERIFICATION_DAYS = 30  # how long a rotated-out key stays published

metadata = MetaData()

# the gateway's signing keys: one current (retired_at null), the previous ones published until
# verify_until; private halves, as the settings table held the first one
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("pem", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True)),
    Column("verify_until", DateTime(timezone=True)),
)

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
        raise SigningKeyError(
            f"the signing key is not a PEM private key without password ({type(error).__name__})"
        ) from None
    if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(private.curve, ec.SECP256R1):
        raise SigningKeyError("the signing key must be an EC key on P-256 (ES256)")
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    required = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    # RFC 7638: the required members, sorted, no whitespace
    kid = _b64url(hashlib.sha256(orjson.dumps(required, option=orjson.OPT_SORT_KEYS)).digest())
    return SigningKey(private, kid, {**required, "kid": kid, "use": "sig", "alg": ALGORITHM})


def new_signing_key_pem() -> str:
    private = ec.generate_private_key(ec.SECP256R1())
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _operator_pem(configured: str) -> str:
    configured = configured.strip()
    if configured.startswith("-----BEGIN"):
        return configured
    path = Path(configured)
    if not path.is_file():
        raise SigningKeyError("CITYGATE_SIGNING_KEY is neither a PEM key nor the path of a file holding one")
    return path.read_text()


def _aware(moment: datetime | None) -> datetime | None:
    return moment if moment is None or moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One of the store's signing keys, as `citygate keys list` shows it (never its private half)."""

    kid: str
    created_at: datetime
    retired_at: datetime | None
    verify_until: datetime | None

    def published(self, at: datetime) -> bool:
        return self.retired_at is None or (self.verify_until is not None and self.verify_until > at)


class SigningKeyStore:
    """The signing keys kept in the gateway's store (SQLite or PostgreSQL)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._created = False

    async def _create(self) -> None:
        if not self._created:
            await self.store.create_tables(metadata)
            self._created = True

    async def rows(self) -> list[Any]:
        """Every key, current first; the first start (or a store from before rotation) takes the
        settings' key over as the current one (first writer wins, as for the setting itself)."""
        await self._create()
        rows = await self._read()
        if not any(row.retired_at is None for row in rows):
            pem = await self.store.setting(SIGNING_KEY_SETTING, new_signing_key_pem)
            key = _signing_key(pem)
            dialect_insert = postgresql_insert if self.store.kind == "postgresql" else sqlite_insert
            statement = (
                dialect_insert(signing_keys)
                .values(kid=key.kid, pem=pem, created_at=datetime.now(UTC))
                .on_conflict_do_nothing(index_elements=[signing_keys.c.kid])
            )
            async with self.store.engine.begin() as connection:
                await connection.execute(statement)
            rows = await self._read()
        if not rows or rows[0].retired_at is not None:
            raise SigningKeyError("the store holds no current signing key")
        return rows

    async def _read(self) -> list[Any]:
        """Every key, the current one (never retired) first, then the newest."""
        async with self.store.engine.connect() as connection:
            rows = (await connection.execute(select(signing_keys).order_by(signing_keys.c.created_at.desc()))).all()
        return sorted(rows, key=lambda row: row.retired_at is not None)

    async def listed(self) -> list[StoredKey]:
        return [
            StoredKey(row.kid, _aware(row.created_at), _aware(row.retired_at), _aware(row.verify_until))
            for row in await self.rows()
        ]

    async def rotate(self, verification_days: float = DEFAULT_VERIFICATION_DAYS) -> tuple[str, str]:
        """A new current key; the current one retired, published `verification_days` more. (new kid,
        old kid). Two rotations at once: one wins, the other raises SigningKeyError."""
        if verification_days < 0:
            raise SigningKeyError("the verification window is a number of days, 0 or more")
        current = next(row for row in await self.rows() if row.retired_at is None)
        pem = new_signing_key_pem()
        new = _signing_key(pem)
        now = datetime.now(UTC)
        async with self.store.engine.begin() as connection:
            retired = await connection.execute(
                update(signing_keys)
                .where(and_(signing_keys.c.kid == current.kid, signing_keys.c.retired_at.is_(None)))
                .values(retired_at=now, verify_until=now + timedelta(days=verification_days))
            )
            if retired.rowcount != 1:  # another rotation retired it first: this one changes nothing
                raise SigningKeyError("another rotation happened at the same time: list the keys and try again")
            await connection.execute(insert(signing_keys).values(kid=new.kid, pem=pem, created_at=now))
        return new.kid, current.kid


class RecordSigner:
    """Signs receipts, audit heads and erasure requests with the gateway's current key (from the
    environment, else from the store, created there at first use) and publishes the keys that
    verify them: the current one and those rotated out within their verification window."""

    def __init__(self, store: Store, configured: str | None = None, refresh: float = 60.0) -> None:
        self.store = store
        self.configured = configured if configured is not None else os.environ.get("CITYGATE_SIGNING_KEY")
        self.keys = SigningKeyStore(store)
        self.refresh = refresh  # seconds between two reads of the store's keys
        self._key: SigningKey | None = None
        self._published: list[tuple[SigningKey, datetime | None]] = []  # (key, verify until; None: current)
        self._read_at = float("-inf")
        self._loading = asyncio.Lock()

    async def _load(self) -> None:
        if self._key is not None and (self.configured or time.monotonic() - self._read_at < self.refresh):
            return
        async with self._loading:
            if self._key is not None and (self.configured or time.monotonic() - self._read_at < self.refresh):
                return
            if self.configured:
                self._key = _signing_key(_operator_pem(self.configured))
                self._published = [(self._key, None)]
            else:
                try:
                    rows = await self.keys.rows()
                except Exception as error:
                    if self._key is None:
                        raise
                    # the keys read a minute ago still sign and verify: a store that does not
                    # answer now delays a rotation, it does not stop receipts being signed
                    logger.warning(
                        "the signing keys could not be read again (%s): the ones read before are kept",
                        type(error).__name__,
                    )
                    self._read_at = time.monotonic()
                    return
                current = _signing_key(rows[0].pem)
                self._key = current
                self._published = [(current, None)] + [
                    (_signing_key(row.pem), _aware(row.verify_until)) for row in rows[1:]
                ]
            self._read_at = time.monotonic()

    async def key(self) -> SigningKey:
        await self._load()
        assert self._key is not None
        return self._key

    async def jwks(self) -> dict[str, Any]:
        """The current key and the previous ones still within their verification window."""
        await self._load()
        now = datetime.now(UTC)
        return {"keys": [dict(key.public_jwk) for key, until in self._published if until is None or until > now]}

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
        "dpv:hasPersonalData": [
            {"@id": f"fides:{category}", "@type": "dpv:PersonalData", "dct:identifier": category}
            for category in record.categories
        ],
        "dpv:hasRecipient": {
            "@type": "dpv:Recipient",
            "dct:identifier": record.recipient,
            "dpv:hasName": client.name if client is not None else record.recipient,
        },
        "dpv:hasLegalBasis": {
            "@id": "eu-gdpr:A6-1-a" if record.legal_basis == "consent" else f"dpv:{record.legal_basis}"
        },
        "dpv:hasConsentStatus": {"@id": consent_status(record, at)},
        "dpv:isIndicatedAtTime": record.granted_at.isoformat(),
        "dpv:isIndicatedBy": {"@type": "dpv:DataSubject", "dct:identifier": record.subject},
        "dpv:hasIndicationMethod": record.collection_method,
        "dpv:hasNotice": {
            "@type": "dpv:PrivacyNotice",
            "dct:hasVersion": record.notice_version,
            "dct:source": controller.policy_url,
        },
    }
    if record.expires_at is not None:
        document["dpv:hasExpiryTime"] = record.expires_at.isoformat()
    if record.withdrawn_at is not None:
        document["dpv:hasWithdrawalTime"] = record.withdrawn_at.isoformat()
        document["dct:modified"] = record.withdrawn_at.isoformat()
    return document


async def signed_receipt(
    signer: RecordSigner, record: ConsentRecord, kantara: dict[str, Any], policy: Policy
) -> tuple[dict[str, Any], str]:
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
