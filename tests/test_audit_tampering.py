"""Every kind of tampering with the audit trail is found by verify, before
and after retention pruning; pruning removes only the old prefix."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from gateway.audit import (
    GENESIS,
    AuditStore,
    record_hash,
)
from gateway.audit import schema, verify
from gateway.audit.rows import entry_row
from tests.audit_support import (  # noqa: F401 (fixtures)
    T0, USCC_A, USCC_B, PERSON, entry, pg_database, audit_url, store,
)

pytestmark = pytest.mark.anyio

# --- tampering ---------------------------------------------------------------------------

Tamper = Callable[[AsyncConnection], Awaitable[None]]
R = schema.records.c
S = schema.subjects.c


async def _row(conn: AsyncConnection, seq: int) -> dict:
    return dict((await conn.execute(sa.select(schema.records).where(R.seq == seq))).mappings().one())


async def _renumber(conn: AsyncConnection, table: sa.Table, first: int, by: int) -> None:
    """Shift ``seq >= first`` by ``by`` without colliding primary keys on the way."""
    await conn.execute(sa.update(table).where(table.c.seq >= first).values(seq=-table.c.seq))
    await conn.execute(sa.update(table).where(table.c.seq < 0).values(seq=-table.c.seq + by))


def _forged_row(seq: int, prev_hash: str, *, consistent: bool) -> dict:
    forged = entry(99, client_id="intruder", subjects=())
    digest = record_hash(seq, prev_hash, forged) if consistent else "f" * 64
    return {**entry_row(forged), "seq": seq, "prev_hash": prev_hash, "hash": digest}


async def alter_purpose(conn):
    await conn.execute(sa.update(schema.records).where(R.seq == 4).values(purpose="marketing"))


async def alter_recorded_at(conn):
    await conn.execute(sa.update(schema.records).where(R.seq == 4)
                       .values(recorded_at=T0 - timedelta(days=400)))


async def alter_latency(conn):
    await conn.execute(sa.update(schema.records).where(R.seq == 4).values(latency_us=1))


async def alter_subjects_of_record_and_index(conn):
    # Hide a release from a data subject: remove it from the record and from the index.
    await conn.execute(sa.update(schema.records).where(R.seq == 4)
                       .values(subjects=f'["{USCC_A}"]'))
    await conn.execute(sa.delete(schema.subjects).where(S.seq == 4, S.subject == PERSON))


async def alter_payload_to_garbage(conn):
    await conn.execute(sa.update(schema.records).where(R.seq == 4).values(released="{not json"))


async def alter_hash(conn):
    await conn.execute(sa.update(schema.records).where(R.seq == 6).values(hash="0" * 63 + "1"))


async def alter_prev_hash(conn):
    await conn.execute(sa.update(schema.records).where(R.seq == 6).values(prev_hash=GENESIS))


async def delete_middle_record(conn):
    await conn.execute(sa.delete(schema.subjects).where(S.seq == 5))
    await conn.execute(sa.delete(schema.records).where(R.seq == 5))


async def delete_two_middle_records(conn):
    await conn.execute(sa.delete(schema.subjects).where(S.seq.in_([5, 6])))
    await conn.execute(sa.delete(schema.records).where(R.seq.in_([5, 6])))


async def delete_last_record(conn):
    await conn.execute(sa.delete(schema.subjects).where(S.seq == 10))
    await conn.execute(sa.delete(schema.records).where(R.seq == 10))


async def delete_last_record_and_rewind_head(conn):
    # The head is moved back too: the chain then ends cleanly at 9 and only an
    # anchored head could tell; but the hash the head names is record 10's.
    await conn.execute(sa.delete(schema.subjects).where(S.seq == 10))
    await conn.execute(sa.delete(schema.records).where(R.seq == 10))
    await conn.execute(sa.update(schema.head).values(seq=9))


async def insert_forged_record_in_middle(conn):
    # A careful forger: records 6.. move up one, the forged record 6 links to
    # record 5 and carries its own correct hash, the head follows. The first
    # record that no longer verifies is the displaced one, now 7.
    await _renumber(conn, schema.records, 6, 1)
    await _renumber(conn, schema.subjects, 6, 1)
    await conn.execute(sa.insert(schema.records),
                       [_forged_row(6, (await _row(conn, 5))["hash"], consistent=True)])
    await conn.execute(sa.update(schema.head).values(seq=11, hash=(await _row(conn, 11))["hash"]))


async def insert_crude_forged_record_in_middle(conn):
    await _renumber(conn, schema.records, 6, 1)
    await _renumber(conn, schema.subjects, 6, 1)
    await conn.execute(sa.insert(schema.records),
                       [_forged_row(6, (await _row(conn, 5))["hash"], consistent=False)])


async def insert_forged_record_at_end(conn):
    await conn.execute(sa.insert(schema.records),
                       [_forged_row(11, (await _row(conn, 10))["hash"], consistent=True)])


async def insert_forged_record_before_the_first(conn):
    await conn.execute(sa.insert(schema.records), [_forged_row(0, GENESIS, consistent=True)])


async def swap_two_records_contents(conn):
    payload = [c.name for c in schema.records.c if c.name not in ("seq", "prev_hash", "hash")]
    third, seventh = await _row(conn, 3), await _row(conn, 7)
    for seq, source in ((3, seventh), (7, third)):
        await conn.execute(sa.update(schema.records).where(R.seq == seq)
                           .values({name: source[name] for name in payload}))


async def swap_two_whole_records(conn):
    third, seventh = await _row(conn, 3), await _row(conn, 7)
    await conn.execute(sa.delete(schema.records).where(R.seq.in_([3, 7])))
    await conn.execute(sa.insert(schema.records), [{**third, "seq": 7}, {**seventh, "seq": 3}])


async def drop_subject_from_index(conn):
    await conn.execute(sa.delete(schema.subjects).where(S.seq == 8, S.subject == USCC_A))


async def add_subject_to_index(conn):
    await conn.execute(sa.insert(schema.subjects), [{"seq": 2, "subject": USCC_A, "salt": bytes(16)}])


async def add_stray_subject_to_index(conn):
    await conn.execute(sa.insert(schema.subjects), [{"seq": 99, "subject": USCC_B, "salt": bytes(16)}])


async def alter_head_hash(conn):
    await conn.execute(sa.update(schema.head).values(hash="a" * 64))


TAMPERING = [
    # (tampering, first bad seq, intact records before it, a word of the problem)
    (alter_purpose, 4, 3, "altered"),
    (alter_recorded_at, 4, 3, "altered"),
    (alter_latency, 4, 3, "altered"),
    (alter_subjects_of_record_and_index, 4, 3, "altered"),
    (alter_payload_to_garbage, 4, 3, "altered"),
    (alter_hash, 6, 5, "altered"),
    (alter_prev_hash, 6, 5, "altered"),
    (delete_middle_record, 5, 4, "record 5 is missing"),
    (delete_two_middle_records, 5, 4, "records 5..6 are missing"),
    (delete_last_record, 10, 9, "record 10 is missing"),
    (delete_last_record_and_rewind_head, 9, 8, "head"),
    (insert_forged_record_in_middle, 7, 6, "altered"),
    (insert_crude_forged_record_in_middle, 6, 5, "altered"),
    (insert_forged_record_at_end, 11, 10, "outside the audit writer"),
    (insert_forged_record_before_the_first, 0, 0, "inserted"),
    (swap_two_records_contents, 3, 2, "altered"),
    (swap_two_whole_records, 3, 2, "altered"),
    (drop_subject_from_index, 8, 7, "subject index"),
    (add_subject_to_index, 2, 1, "subject index"),
    (add_stray_subject_to_index, 99, 10, "subject index"),
    (alter_head_hash, 10, 9, "head"),
]


@pytest.mark.parametrize("page_size", [1000, 3])
@pytest.mark.parametrize(("tamper", "seq", "intact", "words"), TAMPERING,
                         ids=[t[0].__name__ for t in TAMPERING])
async def test_verify_finds_the_first_tampered_record(store, audit_url, monkeypatch, page_size,
                                                      tamper: Tamper, seq, intact, words):
    monkeypatch.setattr(verify, "PAGE_SIZE", page_size)
    subjects = [(), (USCC_B,), (USCC_A, USCC_B), (USCC_A, PERSON)]  # record 4: (USCC_A, PERSON)
    for n in range(10):
        await store.append(entry(n, subjects=subjects[n % 4]))
    assert (await store.verify()).ok

    engine = create_async_engine(audit_url)
    try:
        async with engine.begin() as conn:
            await tamper(conn)
    finally:
        await engine.dispose()

    report = await store.verify()
    assert not report.ok
    assert (report.seq, report.records) == (seq, intact), report.problem
    assert words in report.problem


# --- retention: prune ---------------------------------------------------------------------


async def _tamper(url: str, tamper: Tamper) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await tamper(conn)
    finally:
        await engine.dispose()


async def _anchor(url: str) -> tuple[int, str, datetime | None]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(sa.select(schema.anchor))).one()
            return row.seq, row.hash, row.pruned_at
    finally:
        await engine.dispose()


async def test_prune_removes_exactly_the_old_prefix_and_records_it(store, audit_url):
    appended = [await store.append(entry(n, subjects=(f"subject-{n}",))) for n in range(10)]
    cutoff = T0 + timedelta(seconds=3)  # records 1..3 are older

    report = await store.prune(cutoff)

    assert (report.removed, report.anchor_seq, report.anchor_hash) == (3, 3, appended[2].hash)
    kept = await store.query(newest_first=False, limit=100)
    assert [r.seq for r in kept] == list(range(4, 12))
    assert kept[:-1] == appended[3:]
    maintenance = kept[-1]
    assert (maintenance.prev_hash, maintenance.entry.kind, maintenance.entry.outcome) == \
        (appended[-1].hash, "maintenance", "pruned")
    assert "records 1..3" in maintenance.entry.detail
    assert appended[2].hash in maintenance.entry.detail
    assert cutoff.isoformat() in maintenance.entry.detail
    assert await store.query(subject="subject-2") == []
    assert [r.seq for r in await store.query(subject="subject-3")] == [4]
    seq, digest, pruned_at = await _anchor(audit_url)
    assert (seq, digest) == (3, appended[2].hash) and pruned_at is not None
    report = await store.verify()
    assert (report.ok, report.records) == (True, 8), report.problem
    assert (await store.append(entry(10))).seq == 12
    assert (await store.verify()).ok


async def test_a_second_prune_continues_from_the_anchor(store):
    appended = [await store.append(entry(n)) for n in range(10)]
    await store.prune(T0 + timedelta(seconds=3))
    report = await store.prune(T0 + timedelta(seconds=6))
    assert (report.removed, report.anchor_seq, report.anchor_hash) == (3, 6, appended[5].hash)
    assert [r.seq for r in await store.query(newest_first=False)] == list(range(7, 13))
    assert (await store.verify()).ok

    # Everything up to now, the first prune's record (11) included; its successor confirms.
    first_prune = (await store.query(limit=2))[1]
    report = await store.prune(datetime.now(UTC) + timedelta(seconds=1))
    assert (report.removed, report.anchor_seq, report.anchor_hash) == (6, 12, (await store.query(
        limit=1))[0].prev_hash)
    assert first_prune.seq == 11
    remaining = await store.query()
    assert [r.seq for r in remaining] == [13] and remaining[0].entry.kind == "maintenance"
    report = await store.verify()
    assert (report.ok, report.records) == (True, 1), report.problem


async def test_prune_with_nothing_old_enough_changes_nothing(store, audit_url):
    appended = [await store.append(entry(n)) for n in range(5)]
    report = await store.prune(T0)  # record 1 is recorded at T0: not before it
    assert (report.removed, report.anchor_seq, report.anchor_hash) == (0, 0, GENESIS)
    would = await store.prune(T0 + timedelta(seconds=2), dry_run=True)
    assert (would.removed, would.anchor_seq, would.anchor_hash) == (2, 2, appended[1].hash)
    assert await store.query(newest_first=False) == appended
    assert await _anchor(audit_url) == (0, GENESIS, None)
    assert (await store.verify()).records == 5
    with pytest.raises(ValueError):
        await store.prune(datetime(2026, 5, 9))
    with pytest.raises(ValueError):
        await store.append(entry(5, kind="maintenance", outcome="pruned"))


async def test_prune_removes_only_a_prefix(store):
    """A record older than the cutoff that follows a newer one stays, and so do the rest."""
    old, new = T0, T0 + timedelta(days=1)
    for n, recorded_at in enumerate([old, old, new, old, new]):
        await store.append(entry(n, recorded_at=recorded_at))
    report = await store.prune(T0 + timedelta(hours=1))
    assert (report.removed, report.anchor_seq) == (2, 2)
    assert [r.seq for r in await store.query(newest_first=False)] == [3, 4, 5, 6]
    assert (await store.verify()).ok
    assert (await store.prune(T0 + timedelta(hours=1))).removed == 0


async def delete_maintenance_record(conn):
    await conn.execute(sa.delete(schema.records).where(R.seq == 11))


async def delete_maintenance_record_and_rewind_the_head(conn):
    # A clean tail: the head names record 10, as if no prune had happened after it.
    await conn.execute(sa.delete(schema.subjects).where(S.seq >= 11))
    await conn.execute(sa.delete(schema.records).where(R.seq >= 11))
    await conn.execute(sa.update(schema.head).values(seq=10, hash=(await _row(conn, 10))["hash"]))


async def move_anchor_back_to_genesis(conn):
    await conn.execute(sa.update(schema.anchor).values(seq=0, hash=GENESIS))


async def move_anchor_forward_over_deleted_records(conn):
    # Records 4..5 deleted and the anchor set to record 5: the chain itself links.
    fifth = await _row(conn, 5)
    await conn.execute(sa.delete(schema.subjects).where(S.seq.in_([4, 5])))
    await conn.execute(sa.delete(schema.records).where(R.seq.in_([4, 5])))
    await conn.execute(sa.update(schema.anchor).values(seq=5, hash=fifth["hash"]))


async def alter_anchor_hash(conn):
    await conn.execute(sa.update(schema.anchor).values(hash="a" * 64))


async def reinsert_a_pruned_record(conn):
    await conn.execute(sa.insert(schema.records), [_forged_row(2, GENESIS, consistent=True)])


async def delete_the_anchor(conn):
    await conn.execute(sa.delete(schema.anchor))


PRUNE_TAMPERING = [
    (delete_maintenance_record, 11, 7, "record 11 is missing"),
    (delete_maintenance_record_and_rewind_the_head, None, 7, "anchor was altered"),
    (move_anchor_back_to_genesis, 1, 0, "records 1..3 are missing"),
    (move_anchor_forward_over_deleted_records, None, 8, "anchor was altered"),
    (alter_anchor_hash, 4, 0, "anchor's hash"),
    (reinsert_a_pruned_record, 2, 0, "inserted"),
    (delete_the_anchor, None, 0, "audit_anchor table holds 0 row(s)"),
]


@pytest.mark.parametrize("page_size", [1000, 3])
@pytest.mark.parametrize(("tamper", "seq", "intact", "words"), PRUNE_TAMPERING,
                         ids=[t[0].__name__ for t in PRUNE_TAMPERING])
async def test_verify_finds_tampering_with_a_pruned_trail(store, audit_url, monkeypatch,
                                                          page_size, tamper, seq, intact, words):
    """Records 1..3 pruned: the anchor is record 3, the prune is record 11, then 12 and 13."""
    monkeypatch.setattr(verify, "PAGE_SIZE", page_size)
    for n in range(10):
        await store.append(entry(n))
    assert (await store.prune(T0 + timedelta(seconds=3))).removed == 3
    for n in range(10, 12):
        await store.append(entry(n, recorded_at=datetime.now(UTC)))
    assert (await store.verify()).ok

    await _tamper(audit_url, tamper)

    report = await store.verify()
    assert not report.ok
    assert (report.seq, report.records) == (seq, intact), report.problem
    assert words in report.problem


async def test_appends_during_a_prune_keep_one_chain(store, audit_url):
    for n in range(50):
        await store.append(entry(n))
    cutoff = T0 + timedelta(hours=1)
    async with AuditStore(audit_url, max_batch=8) as gateway:
        new = [entry(100 + n, recorded_at=cutoff + timedelta(seconds=n)) for n in range(200)]
        appends = [asyncio.ensure_future(gateway.append(e)) for e in new]
        await asyncio.wait(appends, return_when=asyncio.FIRST_COMPLETED)  # a batch is in
        report = await store.prune(cutoff)
        records = await asyncio.gather(*appends)

    assert (report.removed, report.anchor_seq) == (50, 50)
    assert [r.entry for r in records] == new
    stored = await store.query(newest_first=False, limit=1000)
    assert [r.seq for r in stored] == list(range(51, 252))
    (pruned_at,) = [r.seq for r in stored if r.entry.kind == "maintenance"]
    assert pruned_at > 51  # appends were committed before it, and went on (or waited)
    result = await store.verify()
    assert (result.ok, result.records) == (True, 201), result.problem
