"""The consent stage: the ledger, the audit log, and the control plane residents use."""

from ._audit import AuditLog, Disclosure, Verification, entry_hash
from ._control_plane import CONTROL_PLANE, control_plane_schema
from ._erasure import ErasureSettings, ErasureStore
from ._ledger import ConsentError, ConsentRecord, Ledger, LedgerUnavailable
from ._receipts import RecordSigner, SigningKeyError, SigningKeyStore, signed_audit_head
from ._rights import ResidentRights

__all__ = [
    "CONTROL_PLANE",
    "AuditLog",
    "ConsentError",
    "ConsentRecord",
    "Disclosure",
    "ErasureSettings",
    "ErasureStore",
    "Ledger",
    "LedgerUnavailable",
    "RecordSigner",
    "ResidentRights",
    "SigningKeyError",
    "SigningKeyStore",
    "Verification",
    "control_plane_schema",
    "entry_hash",
    "signed_audit_head",
]
