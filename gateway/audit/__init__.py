"""The audit trail: one hash-chained, append-only record per request (PIPL),
each a leaf of an RFC 9162 Merkle tree whose signed checkpoints leave the
building (``merkle.py``, ``leaf.py``, ``checkpoint.py``, ``publisher.py``,
``witness.py``; ``offline.py`` checks a proof with the log's key alone).

``AuditStore`` appends ``AuditEntry`` values (group commit, fail closed),
verifies the chain and the tree (against a checkpoint too), serves proofs,
queries the trail and prunes it past retention; see ``store.py``.
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
