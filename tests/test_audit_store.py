"""The audit store: an append-only, hash-chained trail on SQLite and PostgreSQL.

PostgreSQL tests run in a database of their own (one of the test run's,
``<run>_audit_<random>``), created for this module and dropped after it;
without a server they are skipped, except under CI (``CI`` set), where that
is a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.audit.merkle import leaf_hash, verify_inclusion
from gateway.audit import (
    GENESIS,
    AuditRecord,
    AuditStore,
    AuditUnavailable,
    record_hash,
)
from gateway.audit import schema
from tests.audit_support import (  # noqa: F401 (fixtures)
    ROOT, T0, USCC_A, USCC_B, PERSON, entry, _execute, pg_database, audit_url, store, closed_port,
)

pytestmark = pytest.mark.anyio

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

    report = await store.verify()  # the chain, and the Merkle tree rebuilt from the records
    assert (report.ok, report.records, report.tree_size) == (True, 400, 400), report.problem
    head = await store.tree_head()
    assert (head.size, head.root) == (400, report.root)
    stored = await store.query(newest_first=False, limit=1000)
    proofs = await store.record_proofs(stored, 400)  # one tree: every record's proof verifies
    assert len(proofs) == 400 and all(
        verify_inclusion(p.index, 400, leaf_hash(p.leaf), p.hashes, head.root)
        for p in proofs.values())
    assert [r.seq for r in stored] == list(range(1, 401))
    assert sorted(r.entry.request_id for r in stored) == sorted(
        f"{name}-{i}" for name in names for i in range(200))
    runs = 1 + sum(a.entry.client_id != b.entry.client_id for a, b in zip(stored, stored[1:]))
    print(f"\n{audit_url.split(':')[0]}: two processes' records interleave in {runs} runs")
    assert len(await store.query(subject="gw-b-subject-3", limit=1000)) == 29


# --- unavailability ----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["postgresql-closed-port", "sqlite-missing-directory"])
async def test_an_unreachable_trail_raises_audit_unavailable(where, tmp_path, closed_port):
    if where.startswith("postgresql"):
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/audit"
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


# --- readiness and a SQLite trail's file -------------------------------------------------


async def test_check_passes_when_the_trail_accepts_appends(store):
    await store.check()
    assert (await store.append(entry(0))).seq == 1
    await store.check(timeout_seconds=1)
    assert (await store.verify()).records == 1  # the check wrote nothing


async def test_check_fails_for_an_unreachable_server():
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        async with AuditStore(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/audit",
                              timeout_seconds=5) as audit:
            with pytest.raises(AuditUnavailable) as raised:
                await audit.check(timeout_seconds=2)
    assert "127.0.0.1" not in str(raised.value)


async def test_check_fails_while_another_process_holds_the_trails_write_lock(tmp_path):
    path = tmp_path / "audit.db"
    async with AuditStore(f"sqlite+aiosqlite:///{path}") as audit:
        await audit.migrate()
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            started = time.monotonic()
            with pytest.raises(AuditUnavailable):
                await audit.check(timeout_seconds=0.3)
            assert time.monotonic() - started < 4  # its own bound, not the store's 10 s
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        await audit.check(timeout_seconds=2)


async def test_only_migrate_creates_a_sqlite_trail(tmp_path):
    """Reads, appends and checks of a missing trail fail without creating its file."""
    path = tmp_path / "audit.db"
    async with AuditStore(f"sqlite+aiosqlite:///{path}") as audit:
        for attempt in (lambda: audit.append(entry(0)), audit.verify, audit.query, audit.check):
            with pytest.raises(AuditUnavailable):
                await attempt()
        assert not path.exists()
        await audit.migrate()
        await audit.check()
        assert (await audit.append(entry(0))).seq == 1


async def test_check_fails_for_a_trail_never_migrated(tmp_path):
    path = tmp_path / "audit.db"
    sqlite3.connect(path).close()
    async with AuditStore(f"sqlite+aiosqlite:///{path}") as audit:
        with pytest.raises(AuditUnavailable):
            await audit.check()


@pytest.mark.parametrize("how", ["file removed", "directory removed", "file replaced"])
async def test_a_trail_file_removed_or_replaced_while_open_refuses_every_append(tmp_path, how):
    """SQLite goes on "committing" into a file deleted or renamed over while it
    is open, where nobody will read the records: the store refuses instead, for
    good (until the process restarts), reads included."""
    folder = tmp_path / "trail"
    folder.mkdir()
    path = folder / "audit.db"
    async with AuditStore(f"sqlite+aiosqlite:///{path}") as audit:
        await audit.migrate()
        assert (await audit.append(entry(0))).seq == 1
        await audit.query()  # a read connection is open too
        if how == "file removed":
            path.unlink()
        elif how == "directory removed":
            shutil.rmtree(folder)
        else:
            async with AuditStore(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}") as other:
                await other.migrate()
            os.replace(tmp_path / "other.db", path)
        for n in range(1, 11):
            with pytest.raises(AuditUnavailable, match="removed|replaced"):
                await audit.append(entry(n))
        for attempt in (audit.verify, audit.query, audit.check, audit.migrate):
            with pytest.raises(AuditUnavailable):
                await attempt()
    if how != "file replaced":
        assert not path.exists()  # never created again
