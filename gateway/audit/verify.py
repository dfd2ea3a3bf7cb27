"""Verification: walk the trail in ``seq`` order and report the first problem.

The chain starts after the anchor (record 0 and the genesis hash until a
prune moves it, see ``prune.py``). The walk reads one consistent snapshot
(one transaction; REPEATABLE READ on PostgreSQL, a read transaction on
SQLite) a page at a time, so appends may go on while it runs and the trail
is never held in memory at once. For each record, in this order: is it after
the chain head (appended outside the writer)? is it after the anchor? is its
``seq`` the next one (a gap means deleted records)? does its content still
give its hash (altered)? does its ``prev_hash`` name the previous record's
hash, or the anchor's (inserted, replaced or reordered)? does the subject index hold
exactly its subjects? At the end: does the head name the last record (a
deleted tail), does the subject index name no record outside the chain, and
is the anchor the one the latest prune record names (none: record 0 and the
genesis hash)? A moved anchor would otherwise hide deleted leading records.

The walk also rebuilds the Merkle tree from the records' content (their
leaves, ``leaf.py``, from the subject index's salts), starting from the
stored subtrees that cover the pruned records, and checks every stored
subtree it completes and, at the end, the head's frontier.

An unkeyed hash chain detects any change short of a consistent rewrite of
every record from the change onwards together with the head (and the tree).
A signed checkpoint kept outside the database closes that: given one
(``checkpoint``), the rebuilt tree's root at the checkpoint's size must be
its root, so any record it covers that was altered, inserted, deleted or
reordered is found, the tail and head rewritten together included; a log
shorter than the checkpoint was truncated; a checkpoint older than the
pruned records is checked by a consistency proof from the stored subtrees
to the rebuilt root.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit import schema
from gateway.audit.chain import GENESIS, record_hash
from gateway.audit.checkpoint import Checkpoint
from gateway.audit.entry import AuditRecord
from gateway.audit.leaf import leaf_data
from gateway.audit.merkle import Frontier, leaf_hash, verify_consistency
from gateway.audit.proofs import consistency_proof, read_nodes
from gateway.audit.prune import PRUNED, named_anchor
from gateway.audit.rows import row_entry

PAGE_SIZE = 1000


@dataclass(frozen=True)
class VerifyReport:
    """``ok`` when the whole trail is intact; else ``problem`` says what is wrong
    at ``seq``, the first record altered, inserted or deleted (``None`` when the
    problem is not one record's). ``records`` counts the records found intact
    before the problem (all of them when ``ok``), those after the anchor."""

    ok: bool
    records: int
    problem: str | None
    seq: int | None
    tree_size: int = 0          # the rebuilt tree's size and root (when ``ok``)
    root: bytes = b""
    checkpoint_size: int | None = None  # the checkpoint checked, if one was given


class _Problem(Exception):
    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


async def verify_trail(conn: AsyncConnection, *, page_size: int | None = None,
                       checkpoint: Checkpoint | None = None) -> VerifyReport:
    """Verify the trail through ``conn``, which must be inside one transaction,
    reading ``page_size`` records at a time (``PAGE_SIZE`` by default), and
    against ``checkpoint`` (already verified as signed) if given."""
    page_size = page_size or PAGE_SIZE
    walk = _Walk(checkpoint)
    try:
        await walk.read_head_and_anchor(conn)
        last: int | None = None
        while True:
            query = sa.select(schema.records).order_by(schema.records.c.seq).limit(page_size)
            if last is not None:
                query = query.where(schema.records.c.seq > last)
            rows = (await conn.execute(query)).mappings().all()
            if not rows:
                break
            index = await _subject_index(conn, last, rows[-1]["seq"])
            for row in rows:
                walk.check(row, index)
            await walk.check_nodes(conn)
            last = rows[-1]["seq"]
        await walk.finish(conn)
    except _Problem as found:
        return VerifyReport(ok=False, records=walk.intact, problem=found.problem, seq=found.seq,
                            checkpoint_size=checkpoint and checkpoint.size)
    return VerifyReport(ok=True, records=walk.intact, problem=None, seq=None,
                        tree_size=walk.frontier.size, root=walk.frontier.root(),
                        checkpoint_size=checkpoint and checkpoint.size)


async def _subject_index(conn: AsyncConnection, after: int | None, upto: int
                         ) -> dict[int, dict[str, bytes]]:
    s = schema.subjects.c
    query = sa.select(s.seq, s.subject, s.salt).where(s.seq <= upto)
    if after is not None:
        query = query.where(s.seq > after)
    index: dict[int, dict[str, bytes]] = defaultdict(dict)
    for seq, subject, salt in (await conn.execute(query)).all():
        index[seq][subject] = bytes(salt)
    return index


class _Walk:
    def __init__(self, checkpoint: Checkpoint | None) -> None:
        self.checkpoint = checkpoint
        self.frontier = Frontier()
        self.stored_frontier: tuple[int, bytes] = (0, b"")  # size and bytes in the head
        self.completed: list[tuple[int, int, bytes]] = []  # this page's subtrees
        self.tree_problem: str | None = None
        self.head_seq = 0
        self.head_hash = GENESIS
        self.anchor_seq = 0
        self.anchor_hash = GENESIS
        self.prune_seq: int | None = None  # the latest prune record
        self.confirmed: tuple[int, str] | None = (0, GENESIS)  # the anchor it names
        self.expected_seq = 1
        self.expected_prev = GENESIS
        self.intact = 0

    async def read_head_and_anchor(self, conn: AsyncConnection) -> None:
        self.head_seq, self.head_hash = await _single_row(conn, schema.head, schema.HEAD_ID)
        self.anchor_seq, self.anchor_hash = await _single_row(conn, schema.anchor,
                                                              schema.ANCHOR_ID)
        self.expected_seq, self.expected_prev = self.anchor_seq + 1, self.anchor_hash
        row = (await conn.execute(sa.select(schema.head.c.tree_base, schema.head.c.frontier))).one()
        self.stored_frontier = (self.head_seq - row.tree_base, bytes(row.frontier))
        start = self.anchor_seq - row.tree_base  # leaves of the pruned records
        coordinates = Frontier.coordinates(start)
        stored = await conn.run_sync(read_nodes, coordinates)
        if len(stored) != len(coordinates):
            raise _Problem(None, "the tree's subtrees over the pruned records are missing: "
                                 "the tree was altered")
        self.frontier = Frontier(start, tuple(stored[c] for c in coordinates))
        self.start = start

    def check(self, row: Mapping[str, Any], index: Mapping[int, set[str]]) -> None:
        seq = row["seq"]
        if seq > self.head_seq:
            raise _Problem(seq, f"record {seq} comes after the chain head (record "
                                f"{self.head_seq}): it was appended outside the audit writer")
        if seq < self.expected_seq:
            raise _Problem(seq, f"record {seq} is outside the chain, whose records are "
                                f"numbered from {self.anchor_seq + 1}: it was inserted "
                                f"(or not removed by a prune)")
        if seq > self.expected_seq:
            missing = _span(self.expected_seq, seq - 1)
            raise _Problem(self.expected_seq, f"{missing} missing: record {seq} follows record "
                                              f"{self.expected_seq - 1}: deleted")
        try:
            entry = row_entry(row)
            content_hash = record_hash(seq, row["prev_hash"], entry)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise _Problem(seq, f"record {seq} was altered: it no longer reads as an "
                                f"entry ({exc})") from None
        if content_hash != row["hash"]:
            raise _Problem(seq, f"record {seq} was altered: its content does not match its hash")
        if row["prev_hash"] != self.expected_prev:
            previous = (f"record {seq - 1}'s hash" if seq - 1 > self.anchor_seq
                        else "the genesis hash" if seq == 1 else "the anchor's hash")
            raise _Problem(seq, f"record {seq} does not link to the chain: its prev_hash is not "
                                f"{previous} (a record was inserted, replaced or reordered)")
        if set(index.get(seq, ())) != set(entry.subjects):
            raise _Problem(seq, f"the subject index of record {seq} does not match its "
                                f"subjects: the index was altered")
        if seq == self.head_seq and row["hash"] != self.head_hash:
            raise _Problem(seq, f"the chain head's hash is not record {seq}'s hash: "
                                f"the head was altered")
        record = AuditRecord(seq=seq, entry=entry, prev_hash=row["prev_hash"], hash=row["hash"])
        self.frontier, nodes = self.frontier.extend_with_nodes(
            [leaf_hash(leaf_data(record, index[seq]))])
        self.completed.extend(nodes)
        cp = self.checkpoint
        if cp is not None and self.frontier.size == cp.size and self.frontier.root() != cp.root_hash:
            self._tree_problem(f"the records up to {seq} do not give the root of the "
                                 f"checkpoint of {cp.size} records: a record it covers was "
                                 f"altered, inserted, deleted or reordered")
        if entry.kind == "maintenance" and entry.outcome == PRUNED:
            self.prune_seq, self.confirmed = seq, named_anchor(entry.detail)
        self.intact += 1
        self.expected_seq = seq + 1
        self.expected_prev = row["hash"]

    async def check_nodes(self, conn: AsyncConnection) -> None:
        """The stored subtrees the page's records complete are theirs."""
        stored = await conn.run_sync(read_nodes, [(lv, ix) for lv, ix, _ in self.completed])
        for level, idx, digest in self.completed:
            if stored.get((level, idx)) != digest:
                self._tree_problem(f"the tree's subtree ({level}, {idx}) does not match the "
                                     f"records: the tree was altered")
                break
        self.completed.clear()

    def _tree_problem(self, problem: str) -> None:
        """Kept for the end: a problem of the chain, found later, names its record."""
        if self.tree_problem is None:
            self.tree_problem = problem

    async def finish(self, conn: AsyncConnection) -> None:
        await self._finish_chain(conn)
        if self.tree_problem is not None:
            raise _Problem(None, self.tree_problem)
        size, data = self.stored_frontier
        if (size, data) != (self.frontier.size, self.frontier.to_bytes()):
            raise _Problem(None, "the tree head does not match the records: the head was altered")
        cp = self.checkpoint
        if cp is None:
            return
        if cp.size > self.frontier.size:
            raise _Problem(None, f"the tree has {self.frontier.size} records but the checkpoint "
                                 f"covers {cp.size}: records were removed (truncated)")
        if cp.size <= self.start:  # before the pruned records' end: prove it from the subtrees
            proof = await conn.run_sync(consistency_proof, cp.size, self.frontier.size)
            if not verify_consistency(cp.size, self.frontier.size, cp.root_hash,
                                      self.frontier.root(), proof):
                raise _Problem(None, f"the tree is not an extension of the checkpoint of "
                                     f"{cp.size} records: the tree was rewritten")

    async def _finish_chain(self, conn: AsyncConnection) -> None:
        last = self.expected_seq - 1
        if self.head_seq > last:
            missing = _span(self.expected_seq, self.head_seq)
            raise _Problem(self.expected_seq, f"{missing} missing: the trail ends at record "
                                              f"{last} but the chain head names record "
                                              f"{self.head_seq}: deleted")
        if last == self.anchor_seq and (self.head_seq, self.head_hash) != (last, self.anchor_hash):
            raise _Problem(None, "the chain head of an empty chain is not its anchor: "
                                 "the head was altered")
        stray = (await conn.execute(
            sa.select(sa.func.min(schema.subjects.c.seq)).where(
                sa.or_(schema.subjects.c.seq > last, schema.subjects.c.seq <= self.anchor_seq)
            )
        )).scalar()
        if stray is not None:
            raise _Problem(stray, f"the subject index names record {stray}, which is not in "
                                  f"the trail: the index was altered")
        if self.confirmed != (self.anchor_seq, self.anchor_hash):
            if self.prune_seq is None:
                why = "no prune record names it"
            else:
                named = "none" if self.confirmed is None else \
                    f"record {self.confirmed[0]} hash {self.confirmed[1][:12]}…"
                why = f"the latest prune record, {self.prune_seq}, names {named}"
            raise _Problem(None, f"the anchor (record {self.anchor_seq} hash "
                                 f"{self.anchor_hash[:12]}…) is not confirmed by the chain: "
                                 f"{why}: the anchor was altered")


async def _single_row(conn: AsyncConnection, table: sa.Table, row_id: int) -> tuple[int, str]:
    rows = (await conn.execute(sa.select(table.c.id, table.c.seq, table.c.hash))).all()
    if len(rows) != 1 or rows[0].id != row_id:
        raise _Problem(None, f"the {table.name} table holds {len(rows)} row(s) instead of "
                             f"the single row id={row_id}")
    return rows[0].seq, rows[0].hash


def _span(first: int, last: int) -> str:
    return f"record {first} is" if first == last else f"records {first}..{last} are"
