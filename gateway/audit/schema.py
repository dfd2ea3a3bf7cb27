"""The audit tables as SQLAlchemy Core objects (the migrations create them;
a test compares the two).

* ``audit_records``: one row per record, ``seq`` 1, 2, 3, ... assigned by the
  writer; list fields are JSON arrays in text columns, the latency an integer
  of microseconds; ``prev_hash`` and ``hash`` link the chain.
* ``audit_subjects``: ``(subject, seq)`` for every distinct subject of a
  record, the index behind ``query(subject=...)``, with the random ``salt``
  of the subject's commitment in the record's Merkle leaf (``leaf.py``).
* ``audit_head``: one row (``id`` 1): the last ``seq`` and its ``hash``, and
  the Merkle tree's compact ``frontier`` (``merkle.Frontier.to_bytes``) over
  the leaves of records ``tree_base + 1 .. seq`` (``tree_base`` is 0 unless
  the trail was pruned before it had a tree), updated in the transaction
  that inserts the records; writers lock it.
* ``audit_tree``: every complete subtree hash of the Merkle tree, ``(level,
  idx)`` covering leaves ``idx * 2**level`` up to the next; written with the
  records, never pruned (hashes only: proofs for the kept records and
  consistency with old checkpoints need those of the pruned range).
* ``audit_checkpoints``: the signed checkpoints, one note per tree size (the
  latest cosigned version), the newest served at ``/audit/checkpoint``.
* ``audit_anchor``: one row (``id`` 1): the ``seq`` and ``hash`` of the last
  record removed by ``AuditStore.prune`` (0 and the genesis hash until then);
  the chain starts after it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

HEAD_ID = 1
ANCHOR_ID = 1
VERSION_TABLE = "audit_alembic_version"


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("audit timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = sa.MetaData()

records = sa.Table(
    "audit_records",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("client_id", sa.Text),
    sa.Column("organization", sa.Text),
    sa.Column("purpose", sa.Text),
    sa.Column("legal_basis", sa.Text, nullable=False),
    sa.Column("subjects", sa.Text, nullable=False),
    sa.Column("released", sa.Text, nullable=False),
    sa.Column("masked", sa.Text, nullable=False),
    sa.Column("denied", sa.Text, nullable=False),
    sa.Column("withheld", sa.Integer, nullable=False),
    sa.Column("sources", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("latency_us", sa.BigInteger, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_records_client_id", "client_id", "seq"),
    sa.Index("ix_audit_records_purpose", "purpose", "seq"),
    sa.Index("ix_audit_records_recorded_at", "recorded_at"),
)

subjects = sa.Table(
    "audit_subjects",
    metadata,
    sa.Column("subject", sa.Text, primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("salt", sa.LargeBinary(16), nullable=False),
    sa.Index("ix_audit_subjects_seq", "seq"),
)

head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("tree_base", sa.BigInteger, nullable=False),
    sa.Column("frontier", sa.LargeBinary, nullable=False),
    sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),
)

anchor = sa.Table(
    "audit_anchor",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("pruned_at", UtcDateTime),
    sa.CheckConstraint("id = 1", name="ck_audit_anchor_single_row"),
)

tree = sa.Table(
    "audit_tree",
    metadata,
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("signed_at", UtcDateTime, nullable=False),
)
