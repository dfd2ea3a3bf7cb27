"""Retention: removing the oldest records while the trail stays verifiable.

The chain starts after the anchor (``audit_anchor``: a ``seq`` and its hash,
0 and the genesis hash until the first prune). A prune, in one write
transaction that holds the chain head lock like an append (``append.py``),
removes the records after the anchor that are older than the cutoff, up to
the first one that is not (a contiguous prefix, never a chosen record), moves
the anchor to the last one removed and appends a "maintenance" record naming
the new anchor. That record is in the chain, so its hash protects the anchor:
``verify`` requires the anchor to be the one the latest prune record names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit import schema
from gateway.audit.append import extend_chain
from gateway.audit.entry import AuditEntry
from gateway.audit.errors import AuditUnavailable

PRUNED = "pruned"  # the outcome of a prune's maintenance record
_ANCHOR = re.compile(r"; anchor: record (\d+) hash ([0-9a-f]{64})$")


@dataclass(frozen=True)
class PruneReport:
    """``removed`` records (those numbered ``anchor_seq - removed + 1`` to
    ``anchor_seq``); the anchor is record ``anchor_seq`` with ``anchor_hash``
    (the anchor unchanged when nothing was removed)."""

    removed: int
    anchor_seq: int
    anchor_hash: str


def prune_detail(first: int, last: int, anchor_hash: str, before: datetime) -> str:
    """The detail of a prune's maintenance record; ``named_anchor`` reads it back."""
    return (f"removed records {first}..{last} recorded before "
            f"{before.astimezone(UTC).isoformat()}; anchor: record {last} hash {anchor_hash}")


def named_anchor(detail: str | None) -> tuple[int, str] | None:
    """The ``(seq, hash)`` of the anchor a prune record's detail names, if any."""
    found = _ANCHOR.search(detail or "")
    return (int(found[1]), found[2]) if found else None


async def prune_chain(conn: AsyncConnection, before: datetime, *, dry_run: bool) -> PruneReport:
    """Prune through ``conn``, which must be in a write transaction (any
    transaction for ``dry_run``, which only counts); ``before`` is timezone-aware."""
    r = schema.records.c
    head_query = sa.select(schema.head.c.seq).where(schema.head.c.id == schema.HEAD_ID)
    head = (await conn.execute(head_query if dry_run else head_query.with_for_update())).scalar()
    anchor = (await conn.execute(
        sa.select(schema.anchor.c.seq, schema.anchor.c.hash)
        .where(schema.anchor.c.id == schema.ANCHOR_ID)
    )).one_or_none()
    if head is None or anchor is None:
        raise AuditUnavailable("the audit trail has no chain head or anchor: "
                               "run AuditStore.migrate()")
    first_kept = (await conn.execute(
        sa.select(sa.func.min(r.seq)).where(r.seq > anchor.seq, r.recorded_at >= before)
    )).scalar()
    last = head if first_kept is None else min(head, first_kept - 1)
    if last <= anchor.seq:
        return PruneReport(removed=0, anchor_seq=anchor.seq, anchor_hash=anchor.hash)
    prefix = (r.seq > anchor.seq) & (r.seq <= last)
    count = (await conn.execute(sa.select(sa.func.count()).where(prefix))).scalar()
    last_hash = (await conn.execute(sa.select(r.hash).where(r.seq == last))).scalar()
    if count != last - anchor.seq or last_hash is None:
        raise AuditUnavailable(f"records {anchor.seq + 1}..{last} are not all in the trail: "
                               f"run verify; nothing was pruned")
    report = PruneReport(removed=count, anchor_seq=last, anchor_hash=last_hash)
    if dry_run:
        return report
    s = schema.subjects.c
    await conn.execute(sa.delete(schema.subjects).where(s.seq > anchor.seq, s.seq <= last))
    await conn.execute(sa.delete(schema.records).where(prefix))
    now = datetime.now(UTC)
    await conn.execute(
        sa.update(schema.anchor).where(schema.anchor.c.id == schema.ANCHOR_ID)
        .values(seq=last, hash=last_hash, pruned_at=now)
    )
    await conn.run_sync(extend_chain, [AuditEntry(
        kind="maintenance", request_id=f"prune-{anchor.seq + 1}-{last}", recorded_at=now,
        client_id=None, organization=None, purpose=None, legal_basis=(), subjects=(),
        released=(), masked=(), denied=(), withheld=0, sources=(), outcome=PRUNED,
        latency_ms=0, detail=prune_detail(anchor.seq + 1, last, last_hash, before),
    )])
    return report
