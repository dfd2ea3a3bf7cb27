"""The audit store: an append-only, hash-chained trail on SQLite and PostgreSQL.

PostgreSQL tests run in a database of their own (``audit_test_<random>``),
created for this module and dropped after it; without a server they are
skipped, except under CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from gateway.audit import (
    GENESIS,
    AuditEntry,
    AuditRecord,
    AuditStore,
    AuditUnavailable,
    record_hash,
)
from gateway.audit import schema, verify
from gateway.audit.rows import entry_row
from tests.conftest import SERVER_URLS, _server_problem

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 5, 9, 8, 0, tzinfo=UTC)
USCC_A = "91441302MA4W0K3X17"
USCC_B = "91441300195971850Y"
PERSON = "person:" + "ab" * 32
DROP_ALL = [
    "DROP TABLE IF EXISTS audit_records",
    "DROP TABLE IF EXISTS audit_subjects",
    "DROP TABLE IF EXISTS audit_head",
    "DROP TABLE IF EXISTS audit_anchor",
    "DROP TABLE IF EXISTS audit_alembic_version",
]


def entry(n: int = 0, **overrides) -> AuditEntry:
    fields = dict(
        kind="release",
        request_id=f"req-{n}",
        recorded_at=T0 + timedelta(seconds=n, microseconds=n),
        client_id="bank-001",
        organization="惠州农村商业银行",
        purpose="credit_approval",
        legal_basis=("enterprise_authorization:SQ2026-001",),
        subjects=(USCC_A, PERSON),
        released=("Entity.name", "Entity.penalties"),
        masked=("Entity.legalRepresentative.idNumber",),
        denied=(),
        withheld=n % 3,
        sources=("market", "tax"),
        outcome="ok",
        latency_ms=12.345 + n,
    )
    return AuditEntry(**{**fields, **overrides})


# --- databases ---------------------------------------------------------------------------


async def _execute(url: str, *statements: str | sa.Executable, autocommit: bool = False) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT") if autocommit \
        else create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement) if isinstance(statement, str) else statement)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this module's own, dropped after it."""
    problem = _server_problem("postgresql")
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide postgresql: {problem}")
        pytest.skip(problem)
    server = SERVER_URLS["postgresql"]
    name = f"audit_test_{secrets.token_hex(6)}"
    asyncio.run(_execute(server, f'CREATE DATABASE "{name}"', autocommit=True))
    try:
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                             autocommit=True))


@pytest.fixture(params=["sqlite", "postgresql"])
def audit_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty audit database of each kind (the module's PostgreSQL one, emptied)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    url = request.getfixturevalue("pg_database")
    asyncio.run(_execute(url, *DROP_ALL, "DROP FUNCTION IF EXISTS audit_fail() CASCADE"))
    return url


@pytest.fixture
async def store(audit_url: str) -> AsyncIterator[AuditStore]:
    audit = AuditStore(audit_url)
    await audit.migrate()
    try:
        yield audit
    finally:
        await audit.aclose()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- append and verify -------------------------------------------------------------------


async def test_append_returns_the_committed_record_and_the_chain_verifies(store, audit_url):
    assert (await store.verify()).ok

    appended = [await store.append(entry(n)) for n in range(5)]

    assert [r.seq for r in appended] == [1, 2, 3, 4, 5]
    assert appended[0].prev_hash == GENESIS
    for previous, record in zip(appended, appended[1:]):
        assert record.prev_hash == previous.hash
    for n, record in enumerate(appended):
        assert record.entry == entry(n)
        assert record.hash == record_hash(record.seq, record.prev_hash, record.entry)
    report = await store.verify()
    assert (report.ok, report.records, report.problem, report.seq) == (True, 5, None, None)

    # Another store (another gateway process) reads the same trail back, equal to the field.
    async with AuditStore(audit_url) as other:
        assert await other.query(newest_first=False) == appended
        assert (await other.verify()).records == 5
        assert (await other.append(entry(5))).seq == 6


async def test_entries_are_normalized_to_what_the_trail_stores():
    local = timezone(timedelta(hours=8))
    e = entry(recorded_at=datetime(2026, 5, 9, 16, 0, 0, 1, tzinfo=local),
              subjects=[USCC_A], latency_ms=1.23456789)
    assert e.recorded_at == datetime(2026, 5, 9, 8, 0, 0, 1, tzinfo=UTC)
    assert e.recorded_at.tzinfo is UTC and e.subjects == (USCC_A,)
    assert e.latency_ms == 1.235 and e.latency_us == 1235
    for bad in (dict(recorded_at=datetime(2026, 5, 9)), dict(kind="download"),
                dict(subjects=USCC_A), dict(withheld=-1), dict(latency_ms=float("nan")),
                dict(request_id="")):
        with pytest.raises(ValueError):
            entry(**bad)


async def test_security_events_are_recorded_with_their_detail(store):
    refused = entry(kind="security_event", client_id=None, organization=None, purpose=None,
                    legal_basis=(), subjects=(), released=(), masked=(), withheld=0, sources=(),
                    outcome="unauthenticated", detail="token signature invalid")
    record = await store.append(refused)
    assert (await store.query())[0] == record
    assert record.entry.detail == "token signature invalid"
    assert (await store.verify()).ok


async def test_migrate_is_idempotent_and_may_run_in_several_stores_at_once(audit_url):
    stores = [AuditStore(audit_url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.migrate() for s in stores))
        await stores[0].migrate()
        await stores[1].append(entry(1))
        assert (await stores[2].verify()).records == 1
    finally:
        for s in stores:
            await s.aclose()


async def test_the_migrated_schema_is_the_one_the_store_uses(store, audit_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def differences(conn: sa.Connection) -> list:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(context, schema.metadata)
                if not (d[0] == "remove_table" and d[1].name == schema.VERSION_TABLE)]

    engine = create_async_engine(audit_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(differences) == []
    finally:
        await engine.dispose()


# --- query -------------------------------------------------------------------------------


async def test_query_filters_by_client_purpose_subject_and_time(store):
    plan = [
        dict(client_id="bank-001", purpose="credit_approval", subjects=(USCC_A,)),
        dict(client_id="bank-002", purpose="credit_approval", subjects=(USCC_B,)),
        dict(client_id="bank-001", purpose="post_loan_monitoring", subjects=(USCC_A, USCC_B)),
        dict(client_id="city-sz", purpose="joint_discipline", subjects=(PERSON,)),
        dict(client_id="bank-001", purpose="credit_approval", subjects=()),
        dict(client_id="bank-002", purpose="post_loan_monitoring", subjects=(USCC_B, PERSON)),
    ]
    for n, fields in enumerate(plan):
        await store.append(entry(n, recorded_at=T0 + timedelta(minutes=n), **fields))

    async def seqs(**filters) -> list[int]:
        return [r.seq for r in await store.query(**filters)]

    assert await seqs() == [6, 5, 4, 3, 2, 1]
    assert await seqs(newest_first=False) == [1, 2, 3, 4, 5, 6]
    assert await seqs(client_id="bank-001") == [5, 3, 1]
    assert await seqs(purpose="post_loan_monitoring") == [6, 3]
    assert await seqs(subject=USCC_A) == [3, 1]
    assert await seqs(subject=USCC_B) == [6, 3, 2]
    assert await seqs(subject=PERSON) == [6, 4]
    assert await seqs(subject="91441300000000000X") == []
    assert await seqs(client_id="bank-002", subject=PERSON) == [6]
    assert await seqs(since=T0 + timedelta(minutes=2)) == [6, 5, 4, 3]
    assert await seqs(until=T0 + timedelta(minutes=2)) == [2, 1]
    window = dict(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=4))
    assert await seqs(**window) == [4, 3, 2]
    # A window given in another timezone means the same instants.
    east8 = timezone(timedelta(hours=8))
    assert await seqs(since=window["since"].astimezone(east8),
                      until=window["until"].astimezone(east8)) == [4, 3, 2]
    assert await seqs(client_id="bank-001", purpose="credit_approval", **window) == []
    assert await seqs(limit=2) == [6, 5]

    with pytest.raises(ValueError):
        await store.query(since=datetime(2026, 5, 9))
    with pytest.raises(ValueError):
        await store.query(limit=0)


async def test_query_pages_with_after_seq_in_either_order(store):
    for n in range(7):
        await store.append(entry(n, client_id="bank-001" if n % 2 == 0 else "bank-002"))

    async def pages(**filters) -> list[list[int]]:
        collected, cursor = [], None
        while page := await store.query(after_seq=cursor, limit=2, **filters):
            collected.append([r.seq for r in page])
            cursor = page[-1].seq
        return collected

    assert await pages() == [[7, 6], [5, 4], [3, 2], [1]]
    assert await pages(newest_first=False) == [[1, 2], [3, 4], [5, 6], [7]]
    assert await pages(client_id="bank-001") == [[7, 5], [3, 1]]
    assert await pages(client_id="bank-002", newest_first=False) == [[2, 4], [6]]


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
    await conn.execute(sa.insert(schema.subjects), [{"seq": 2, "subject": USCC_A}])


async def add_stray_subject_to_index(conn):
    await conn.execute(sa.insert(schema.subjects), [{"seq": 99, "subject": USCC_B}])


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


# --- concurrency -------------------------------------------------------------------------


async def test_concurrent_appends_keep_one_chain(audit_url):
    async with AuditStore(audit_url, max_batch=32) as audit:
        await audit.migrate()
        records = await asyncio.gather(*(audit.append(entry(n)) for n in range(300)))

        assert sorted(r.seq for r in records) == list(range(1, 301))
        assert [r.entry for r in records] == [entry(n) for n in range(300)]
        report = await audit.verify()
        assert (report.ok, report.records) == (True, 300), report.problem
        stored = await audit.query(newest_first=False, limit=1000)
        assert [r.seq for r in stored] == list(range(1, 301))


async def test_a_failed_batch_leaves_nothing_and_every_waiter_is_told(store, audit_url):
    """A trigger makes the INSERT of one entry fail: its whole batch fails."""
    await store.append(entry(0))
    await store.append(entry(1))
    if audit_url.startswith("sqlite"):
        trigger = ["CREATE TRIGGER audit_fail BEFORE INSERT ON audit_records "
                   "WHEN NEW.request_id = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END"]
    else:
        trigger = [
            "CREATE FUNCTION audit_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.request_id = 'boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER audit_fail BEFORE INSERT ON audit_records "
            "FOR EACH ROW EXECUTE FUNCTION audit_fail()",
        ]
    await _execute(audit_url, *trigger)

    batch = [entry(2), entry(3), entry(4, request_id="boom"), entry(5)]
    outcomes = await asyncio.gather(*(store.append(e) for e in batch), return_exceptions=True)

    assert all(isinstance(o, AuditUnavailable) for o in outcomes), outcomes
    assert [r.seq for r in await store.query()] == [2, 1]
    assert (await store.verify()).records == 2
    record = await store.append(entry(6))  # the writer goes on
    assert (record.seq, record.prev_hash) == (3, (await store.query(limit=2))[1].hash)
    assert (await store.verify()).ok


async def test_a_cancelled_append_does_not_disturb_the_others(store):
    waiting = [asyncio.ensure_future(store.append(entry(n))) for n in range(20)]
    waiting[5].cancel()
    done = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(done[5], asyncio.CancelledError)
    assert len({r.seq for r in done if isinstance(r, AuditRecord)}) == 19
    report = await store.verify()
    assert report.ok and report.records == 19


async def test_a_writer_blocked_past_its_timeout_fails_closed_and_recovers(audit_url):
    """Another writer holds the head lock: the batch times out, nothing is stored."""
    from gateway.audit.engine import audit_engine, write_connection

    async with AuditStore(audit_url, timeout_seconds=0.5) as audit:
        await audit.migrate()
        await audit.append(entry(0))
        holder = audit_engine(audit_url, timeout_seconds=5)
        try:
            async with holder.connect() as conn:
                await write_connection(conn)
                async with conn.begin():
                    await conn.execute(sa.select(schema.head).with_for_update())
                    with pytest.raises(AuditUnavailable):
                        await audit.append(entry(1))
        finally:
            await holder.dispose()
        assert (await audit.append(entry(2))).seq == 2
        assert [r.entry.request_id for r in await audit.query()] == ["req-2", "req-0"]
        assert (await audit.verify()).ok


APPENDER = r"""
import asyncio, sys
from datetime import UTC, datetime
from gateway.audit import AuditEntry, AuditStore

async def main(url, name, count):
    store = AuditStore(url, max_batch=16)
    try:
        await store.query(limit=1)  # connected: ready to go
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await asyncio.gather(*(store.append(AuditEntry(
            kind="release", request_id=f"{name}-{i}", recorded_at=datetime.now(UTC),
            client_id=name, organization=None, purpose="credit_approval",
            legal_basis=("statutory_duty",), subjects=(f"{name}-subject-{i % 7}",),
            released=("Entity.name",), masked=(), denied=(), withheld=0, sources=("market",),
            outcome="ok", latency_ms=1.5)) for i in range(count)))
    finally:
        await store.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_two_processes_appending_at_once_keep_one_chain(store, audit_url):
    names = ["gw-a", "gw-b"]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", APPENDER, audit_url, name, "200", cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for name in names
    ]
    try:
        async with asyncio.timeout(60):
            for process in processes:
                assert await process.stdout.readline() == b"ready\n"
            for process in processes:  # both start appending at once
                process.stdin.write(b"go\n")
                await process.stdin.drain()
            results = await asyncio.gather(*(p.communicate() for p in processes))
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    for process, (_, stderr) in zip(processes, results):
        assert process.returncode == 0, stderr.decode()

    report = await store.verify()
    assert (report.ok, report.records) == (True, 400), report.problem
    stored = await store.query(newest_first=False, limit=1000)
    assert [r.seq for r in stored] == list(range(1, 401))
    assert sorted(r.entry.request_id for r in stored) == sorted(
        f"{name}-{i}" for name in names for i in range(200))
    runs = 1 + sum(a.entry.client_id != b.entry.client_id for a, b in zip(stored, stored[1:]))
    print(f"\n{audit_url.split(':')[0]}: two processes' records interleave in {runs} runs")
    assert len(await store.query(subject="gw-b-subject-3", limit=1000)) == 29


# --- unavailability ----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["postgresql-closed-port", "sqlite-missing-directory"])
async def test_an_unreachable_trail_raises_audit_unavailable(where, tmp_path):
    if where.startswith("postgresql"):
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/audit"
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'audit.db'}"
    async with AuditStore(url, timeout_seconds=5) as audit:
        for attempt in (lambda: audit.append(entry(1)), audit.verify, audit.query, audit.migrate):
            with pytest.raises(AuditUnavailable) as raised:
                await attempt()
            assert "127.0.0.1" not in str(raised.value) and "missing" not in str(raised.value)
    assert not (tmp_path / "missing").exists()
    # aiosqlite stops the worker thread of a failed connect in the background; let it
    # finish while this event loop still runs, or it reports its future's closed loop.
    async with asyncio.timeout(5):
        while any("_connection_worker_thread" in t.name for t in threading.enumerate()):
            await asyncio.sleep(0.01)


async def test_append_to_an_unmigrated_trail_raises_audit_unavailable(tmp_path):
    async with AuditStore(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}") as audit:
        with pytest.raises(AuditUnavailable):
            await audit.append(entry(1))
        await audit.migrate()
        assert (await audit.append(entry(1))).seq == 1


async def test_a_closed_store_refuses_appends(tmp_path):
    audit = AuditStore(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
    await audit.migrate()
    pending = asyncio.ensure_future(audit.append(entry(1)))
    await asyncio.sleep(0)
    await audit.aclose()
    assert (await pending).seq == 1  # queued before the close: committed
    with pytest.raises(AuditUnavailable):
        await audit.append(entry(2))


# --- throughput (measured, not asserted) -------------------------------------------------


async def test_group_commit_throughput_on_sqlite(tmp_path):
    appenders, each = 200, 10
    async with AuditStore(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}") as audit:
        await audit.migrate()

        async def appender(a: int) -> None:
            for i in range(each):
                await audit.append(entry(a * each + i))

        started = time.perf_counter()
        await asyncio.gather(*(appender(a) for a in range(appenders)))
        elapsed = time.perf_counter() - started
        report = await audit.verify()
        assert (report.ok, report.records) == (True, appenders * each)
    print(f"\nSQLite group commit: {appenders * each} appends by {appenders} concurrent "
          f"appenders in {elapsed:.2f} s = {appenders * each / elapsed:.0f} appends/s")
