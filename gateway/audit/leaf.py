"""What a record's Merkle leaf is: the bytes the tree hashes for it.

A record's own canonical bytes (``chain.canonical_bytes``) name every subject
of its request, so a proof built on them would show an enterprise the other
enterprises a bank asked about in the same request. The leaf commits to the
whole record through its chain hash and shows only what the record's data
subject is told anyway (``accessHistory``): the leaf data is orjson, sorted
keys, of::

    {"v": 1, "seq": ..., "record_hash": <the record's chain hash, hex>,
     "kind", "recorded_at" (ISO-8601 UTC, microseconds), "organization",
     "purpose", "released": [...], "outcome",
     "subjects": sorted hex SHA-256(salt || subject UTF-8) for each distinct subject}

with a random 16-byte ``salt`` per (record, subject), kept in the subject
index. A data subject handed the leaf, its salt and an inclusion proof checks
that its commitment is among ``subjects`` and that the leaf is in the tree a
signed checkpoint commits to; the other commitments tell it nothing about who
else was asked (a salted hash of a public code cannot be looked up). An
auditor handed the full record and every salt recomputes the leaf
(``record_hash`` from the record's canonical bytes). Changing this function
changes every leaf: bump ``LEAF_FORMAT`` and keep the old one for the leaves
written under it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.audit.entry import AuditRecord

LEAF_FORMAT = 1
SALT_BYTES = 16


def subject_commitment(salt: bytes, subject: str) -> str:
    """The hex commitment to ``subject`` a leaf lists."""
    return hashlib.sha256(bytes(salt) + subject.encode()).hexdigest()


def leaf_document(record: AuditRecord, salts: Mapping[str, bytes]) -> dict[str, Any]:
    """The leaf of ``record``; ``salts`` holds one salt per distinct subject
    (``KeyError`` when one is missing)."""
    e = record.entry
    return {
        "v": LEAF_FORMAT,
        "seq": record.seq,
        "record_hash": record.hash,
        "kind": e.kind,
        "recorded_at": e.recorded_at.isoformat(timespec="microseconds"),
        "organization": e.organization,
        "purpose": e.purpose,
        "released": list(e.released),
        "outcome": e.outcome,
        "subjects": sorted(subject_commitment(salts[s], s) for s in dict.fromkeys(e.subjects)),
    }


def leaf_data(record: AuditRecord, salts: Mapping[str, bytes]) -> bytes:
    """The exact bytes the tree hashes for ``record`` (``merkle.leaf_hash``)."""
    return orjson.dumps(leaf_document(record, salts), option=orjson.OPT_SORT_KEYS)


def names_subject(leaf: Mapping[str, Any], subject: str, salt: bytes) -> bool:
    """Does the leaf document commit to ``subject`` under ``salt``?"""
    mine = subject_commitment(salt, subject)
    return any(hmac.compare_digest(mine, c) for c in leaf.get("subjects", ()) if isinstance(c, str))
