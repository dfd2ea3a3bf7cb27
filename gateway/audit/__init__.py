"""The audit trail: one hash-chained, append-only record per request (PIPL).

``AuditStore`` appends ``AuditEntry`` values (group commit, fail closed),
verifies the chain, queries it and prunes it past retention; see ``store.py``.
"""

from gateway.audit.chain import GENESIS, record_hash
from gateway.audit.entry import AuditEntry, AuditRecord
from gateway.audit.errors import AuditUnavailable
from gateway.audit.prune import PruneReport
from gateway.audit.store import AuditStore
from gateway.audit.verify import VerifyReport

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditRecord",
    "AuditStore",
    "AuditUnavailable",
    "PruneReport",
    "VerifyReport",
    "record_hash",
]
