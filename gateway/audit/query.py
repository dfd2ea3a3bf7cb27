"""The SELECT behind ``AuditStore.query``: filters, order and the ``after_seq`` cursor."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from gateway.audit import schema


def records_query(
    *,
    client_id: str | None,
    purpose: str | None,
    subject: str | None,
    since: datetime | None,
    until: datetime | None,
    after_seq: int | None,
    limit: int,
    newest_first: bool,
) -> sa.Select[tuple[object, ...]]:
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and (not isinstance(moment, datetime) or moment.utcoffset() is None):
            raise ValueError(f"{name} must be a timezone-aware datetime")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError("limit must be an integer >= 1")
    r = schema.records.c
    query = sa.select(schema.records)
    if client_id is not None:
        query = query.where(r.client_id == client_id)
    if purpose is not None:
        query = query.where(r.purpose == purpose)
    if subject is not None:
        query = query.where(r.seq.in_(
            sa.select(schema.subjects.c.seq).where(schema.subjects.c.subject == subject)
        ))
    if since is not None:
        query = query.where(r.recorded_at >= since)
    if until is not None:
        query = query.where(r.recorded_at < until)
    if after_seq is not None:
        query = query.where(r.seq < after_seq if newest_first else r.seq > after_seq)
    return query.order_by(r.seq.desc() if newest_first else r.seq.asc()).limit(limit)
