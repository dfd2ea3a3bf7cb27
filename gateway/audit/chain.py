"""The hash chain: the canonical bytes of a record and their SHA-256.

``record_hash(seq, prev_hash, entry)`` is SHA-256 over orjson with sorted keys
of ``{"v": 1, "seq", "prev_hash", "entry": {...}}``, where the entry's
``recorded_at`` is ISO-8601 UTC with microseconds and its latency an integer of
microseconds (``latency_us``): no float formatting enters the hash. Changing
this function changes every hash: bump ``FORMAT`` and keep the old one for the
records written under it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from gateway.audit.entry import AuditEntry

FORMAT = 1
GENESIS = "0" * 64  # the prev_hash of record 1


def canonical_entry(entry: AuditEntry) -> dict[str, Any]:
    """The entry's fields as JSON-ready values, exactly as they are hashed."""
    return {
        "kind": entry.kind,
        "request_id": entry.request_id,
        "recorded_at": entry.recorded_at.isoformat(timespec="microseconds"),
        "client_id": entry.client_id,
        "organization": entry.organization,
        "purpose": entry.purpose,
        "legal_basis": list(entry.legal_basis),
        "subjects": list(entry.subjects),
        "released": list(entry.released),
        "masked": list(entry.masked),
        "denied": list(entry.denied),
        "withheld": entry.withheld,
        "sources": list(entry.sources),
        "outcome": entry.outcome,
        "latency_us": entry.latency_us,
        "detail": entry.detail,
    }


def canonical_bytes(seq: int, prev_hash: str, entry: AuditEntry) -> bytes:
    document = {"v": FORMAT, "seq": seq, "prev_hash": prev_hash, "entry": canonical_entry(entry)}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def record_hash(seq: int, prev_hash: str, entry: AuditEntry) -> str:
    """The hex SHA-256 that record ``seq`` must carry."""
    return hashlib.sha256(canonical_bytes(seq, prev_hash, entry)).hexdigest()
