"""The consent stage: the ledger, the audit log, and the control plane residents use."""

from ._audit import AuditLog, Disclosure, Verification, entry_hash
from ._control_plane import CONTROL_PLANE, control_plane_schema
from ._ledger import ConsentError, ConsentRecord, Ledger, LedgerUnavailable

__all__ = [
    "CONTROL_PLANE",
    "AuditLog",
    "ConsentError",
    "ConsentRecord",
    "Disclosure",
    "Ledger",
    "LedgerUnavailable",
    "Verification",
    "control_plane_schema",
    "entry_hash",
]
