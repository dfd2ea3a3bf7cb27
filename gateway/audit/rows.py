"""Conversion between an ``AuditEntry`` and its ``audit_records`` row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.audit.chain import canonical_entry
from gateway.audit.entry import AuditEntry, AuditRecord

_LISTS = ("legal_basis", "subjects", "released", "masked", "denied", "sources")


def entry_row(entry: AuditEntry) -> dict[str, Any]:
    """Column values for ``entry`` (without ``seq`` and the hashes)."""
    row = canonical_entry(entry)
    row["recorded_at"] = entry.recorded_at
    for name in _LISTS:
        row[name] = orjson.dumps(row[name]).decode()
    return row


def row_entry(row: Mapping[str, Any]) -> AuditEntry:
    """The entry a stored row holds; ``ValueError`` when the row cannot be one."""
    lists: dict[str, tuple[str, ...]] = {}
    for name in _LISTS:
        try:
            value = orjson.loads(row[name])
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{name} is not a JSON array") from exc
        if not isinstance(value, list):
            raise ValueError(f"{name} is not a JSON array")
        lists[name] = tuple(value)
    return AuditEntry(
        kind=row["kind"],
        request_id=row["request_id"],
        recorded_at=row["recorded_at"],
        client_id=row["client_id"],
        organization=row["organization"],
        purpose=row["purpose"],
        withheld=row["withheld"],
        outcome=row["outcome"],
        latency_ms=row["latency_us"] / 1000,
        detail=row["detail"],
        **lists,
    )


def row_record(row: Mapping[str, Any]) -> AuditRecord:
    return AuditRecord(
        seq=row["seq"], entry=row_entry(row), prev_hash=row["prev_hash"], hash=row["hash"]
    )
