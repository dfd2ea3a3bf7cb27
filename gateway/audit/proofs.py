"""Reading the audit tree: its head, proofs from the stored subtrees, salts, checkpoints.

Synchronous functions over a connection (an async one runs them with
``run_sync``), each a handful of statements whatever the trail's size: a
proof needs O(log n) stored subtrees (``merkle.proof_nodes``), read in one
``SELECT``. Record ``seq`` is leaf ``seq - 1 - tree_base``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from gateway.audit import schema
from gateway.audit.entry import AuditRecord
from gateway.audit.errors import AuditUnavailable
from gateway.audit.leaf import leaf_data
from gateway.audit.merkle import (
    Frontier, NodeMap, consistency_proof_from, inclusion_proof_from, proof_nodes,
)


@dataclass(frozen=True)
class TreeHead:
    """The tree as the head row holds it: leaves of records ``base + 1 .. base + size``."""

    size: int
    root: bytes
    base: int

    def leaf_index(self, seq: int) -> int:
        return seq - 1 - self.base


def tree_head(conn: sa.Connection, *, lock: bool = False) -> TreeHead:
    query = sa.select(schema.head.c.seq, schema.head.c.tree_base, schema.head.c.frontier)
    row = conn.execute(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        raise AuditUnavailable("the audit trail has no chain head: run AuditStore.migrate()")
    frontier = Frontier.from_bytes(row.seq - row.tree_base, bytes(row.frontier))
    return TreeHead(size=frontier.size, root=frontier.root(), base=row.tree_base)


# One statement of constant shape (compiled once): every wanted level and
# every wanted index; the rows outside the wanted pairs (at most levels x
# indexes, a few hundred hashes) are dropped here.
_READ_NODES = sa.select(schema.tree.c.level, schema.tree.c.idx, schema.tree.c.hash).where(
    schema.tree.c.level.in_(sa.bindparam("levels", expanding=True)),
    schema.tree.c.idx.in_(sa.bindparam("idxs", expanding=True)),
)


def read_nodes(conn: sa.Connection, coordinates: Iterable[tuple[int, int]]) -> NodeMap:
    """The stored subtrees at ``coordinates`` (those missing are left out)."""
    wanted = set(coordinates)
    if not wanted:
        return {}
    rows = conn.execute(_READ_NODES, {"levels": sorted({lv for lv, _ in wanted}),
                                      "idxs": sorted({ix for _, ix in wanted})})
    return {(r.level, r.idx): bytes(r.hash) for r in rows if (r.level, r.idx) in wanted}


def inclusion_proofs(conn: sa.Connection, indexes: Iterable[int], size: int
                     ) -> dict[int, list[bytes]]:
    """The audit path of each leaf index in the tree of ``size`` leaves."""
    indexes = [i for i in dict.fromkeys(indexes) if 0 <= i < size]
    needed = set().union(*(proof_nodes("inclusion", i, size) for i in indexes)) if indexes else set()
    nodes = read_nodes(conn, needed)
    try:
        return {i: inclusion_proof_from(nodes, i, size) for i in indexes}
    except KeyError as missing:
        raise AuditUnavailable(f"the audit tree lacks subtree {missing}: run audit verify") from None


def consistency_proof(conn: sa.Connection, first: int, second: int) -> list[bytes]:
    nodes = read_nodes(conn, proof_nodes("consistency", first, second))
    try:
        return consistency_proof_from(nodes, first, second)
    except KeyError as missing:
        raise AuditUnavailable(f"the audit tree lacks subtree {missing}: run audit verify") from None


def subject_salts(conn: sa.Connection, seqs: Iterable[int]) -> dict[int, dict[str, bytes]]:
    """``{seq: {subject: salt}}`` for the records ``seqs``."""
    s = schema.subjects.c
    out: dict[int, dict[str, bytes]] = defaultdict(dict)
    seqs = sorted(set(seqs))
    for start in range(0, len(seqs), 500):
        for row in conn.execute(sa.select(s.seq, s.subject, s.salt)
                                .where(s.seq.in_(seqs[start:start + 500]))):
            out[row.seq][row.subject] = bytes(row.salt)
    return out


def latest_checkpoint(conn: sa.Connection) -> tuple[int, str] | None:
    c = schema.checkpoints.c
    row = conn.execute(sa.select(c.tree_size, c.note).order_by(c.tree_size.desc()).limit(1)).first()
    return None if row is None else (row.tree_size, row.note)


def save_checkpoint(conn: sa.Connection, size: int, note: str) -> None:
    """Keep ``note`` as the checkpoint of ``size`` leaves (replacing one with fewer signatures)."""
    c = schema.checkpoints.c
    old = conn.execute(sa.select(c.note).where(c.tree_size == size)).scalar()
    now = datetime.now(UTC)
    if old is None:
        conn.execute(sa.insert(schema.checkpoints).values(tree_size=size, note=note, signed_at=now))
    elif old.count("\n\u2014 ") < note.count("\n\u2014 "):
        conn.execute(sa.update(schema.checkpoints).where(c.tree_size == size)
                     .values(note=note, signed_at=now))


@dataclass(frozen=True)
class RecordProof:
    """Record ``seq``'s leaf (``leaf.leaf_data``), its index, the tree size and
    audit path of the proof, and the salts of its subjects' commitments."""

    seq: int
    leaf: bytes
    index: int
    size: int
    hashes: list[bytes]
    salts: dict[str, bytes]


def record_proofs(conn: sa.Connection, records: Iterable[AuditRecord], size: int
                  ) -> dict[int, RecordProof]:
    """Proofs of ``records`` in the tree of ``size`` leaves (those it covers)."""
    head = tree_head(conn)
    covered = [r for r in records if 0 <= head.leaf_index(r.seq) < size]
    salts = subject_salts(conn, (r.seq for r in covered))
    paths = inclusion_proofs(conn, (head.leaf_index(r.seq) for r in covered), size)
    return {
        r.seq: RecordProof(seq=r.seq, leaf=leaf_data(r, salts[r.seq]),
                           index=head.leaf_index(r.seq), size=size,
                           hashes=paths[head.leaf_index(r.seq)], salts=salts[r.seq])
        for r in covered
    }
