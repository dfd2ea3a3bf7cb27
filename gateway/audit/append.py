"""Extending the chain: one transaction appends a batch of entries after the head.

The head row is read with ``SELECT ... FOR UPDATE`` (PostgreSQL: a second
writer, in this process or another, waits here until the first commits, then
reads the head it left; SQLite: a no-op, the connection already holds the
database write lock from ``BEGIN IMMEDIATE``). The records, their subject
index rows (each with its commitment's salt), their Merkle leaves and the
subtrees they complete are inserted and the head moves, with the tree's
frontier, all in the caller's transaction: either the whole batch is in the
trail and its tree or none of it. Record ``seq`` is leaf ``seq - 1 -
tree_base``; the append costs O(log n) hashes per record and one insert of
about two tree rows per record.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import sqlalchemy as sa

from gateway.audit import schema
from gateway.audit.chain import record_hash
from gateway.audit.entry import AuditEntry, AuditRecord
from gateway.audit.errors import AuditUnavailable
from gateway.audit.leaf import SALT_BYTES, leaf_data
from gateway.audit.merkle import Frontier, leaf_hash
from gateway.audit.rows import entry_row


# Built once: constructing and cache-keying them per batch cost more than running them.
_LOCK_HEAD = (
    sa.select(schema.head.c.seq, schema.head.c.hash, schema.head.c.tree_base,
              schema.head.c.frontier)
    .where(schema.head.c.id == schema.HEAD_ID)
    .with_for_update()
)
_INSERT_RECORDS = sa.insert(schema.records)
_INSERT_SUBJECTS = sa.insert(schema.subjects)
_INSERT_NODES = sa.insert(schema.tree)
_MOVE_HEAD = (
    sa.update(schema.head)
    .where(schema.head.c.id == schema.HEAD_ID, schema.head.c.seq == sa.bindparam("from_seq"))
    .values(seq=sa.bindparam("to_seq"), hash=sa.bindparam("to_hash"),
            frontier=sa.bindparam("to_frontier"))
)


def lock_head(conn: sa.Connection) -> None:
    """What an append does before it inserts: lock the chain head (``AuditStore.check``)."""
    if conn.execute(_LOCK_HEAD).one_or_none() is None:
        raise AuditUnavailable("the audit trail has no chain head: run AuditStore.migrate()")


def extend_chain(conn: sa.Connection, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
    """Append ``entries`` in order; ``conn`` must be in a (write) transaction.
    Synchronous: an async connection runs it with ``run_sync``."""
    head = conn.execute(_LOCK_HEAD).one_or_none()
    if head is None:
        raise AuditUnavailable("the audit trail has no chain head: run AuditStore.migrate()")
    seq, prev_hash = head.seq, head.hash
    frontier = Frontier.from_bytes(seq - head.tree_base, bytes(head.frontier))
    added: list[AuditRecord] = []
    record_rows: list[dict[str, object]] = []
    subject_rows: list[dict[str, object]] = []
    leaves: list[bytes] = []
    for entry in entries:
        seq += 1
        digest = record_hash(seq, prev_hash, entry)
        record = AuditRecord(seq=seq, entry=entry, prev_hash=prev_hash, hash=digest)
        added.append(record)
        record_rows.append({**entry_row(entry), "seq": seq, "prev_hash": prev_hash, "hash": digest})
        distinct = dict.fromkeys(entry.subjects)
        random = os.urandom(SALT_BYTES * len(distinct))  # one call: a 500-firm portfolio too
        salts = {s: random[i * SALT_BYTES:(i + 1) * SALT_BYTES] for i, s in enumerate(distinct)}
        subject_rows.extend({"subject": s, "seq": seq, "salt": salt} for s, salt in salts.items())
        leaves.append(leaf_hash(leaf_data(record, salts)))
        prev_hash = digest
    frontier, nodes = frontier.extend_with_nodes(leaves)
    conn.execute(_INSERT_RECORDS, record_rows)
    if subject_rows:
        conn.execute(_INSERT_SUBJECTS, subject_rows)
    conn.execute(_INSERT_NODES, [{"level": lv, "idx": ix, "hash": h} for lv, ix, h in nodes])
    moved = conn.execute(_MOVE_HEAD, {"from_seq": head.seq, "to_seq": seq, "to_hash": prev_hash,
                                      "to_frontier": frontier.to_bytes()})
    if moved.rowcount != 1:  # cannot happen under the lock; refuse rather than fork
        raise AuditUnavailable("the chain head moved during the append")
    return added
