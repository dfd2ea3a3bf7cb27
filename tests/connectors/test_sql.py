"""SQL sources: a SQLite source is opened read-only and never created; a
missing, locked or foreign file fails as SOURCE_UNAVAILABLE, fast; ``check``
reads the source's own tables."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

import connectors.sql
from connectors.tax import TaxConnector, metadata, ratings
from core.errors import SourceTimeout, SourceUnavailable
from core.config import SourceSettings
from tests.connectors.legacy_db import connector_over

pytestmark = pytest.mark.anyio

USCC = "91441300195971850Y"


def tax_source(path: Path, **changes) -> TaxConnector:
    """A tax connector building its own engine over the SQLite file at ``path``."""
    # A URL's path is percent-decoded (``%3F`` is a ``?`` of the file name).
    settings = SourceSettings(id="test-source", connector="tax",
                              url=f"sqlite+aiosqlite:///{quote(str(path))}", department="测试部门",
                              city="惠州", **changes)
    return TaxConnector(settings)


def tax_database(path: Path) -> Path:
    """The tax tables at ``path``, with one rating."""
    engine = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(path))
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            conn.execute(ratings.insert(), [
                {"NSRSBH": USCC, "PJND": 2025, "XYJB": "A", "PF": 95, "FBRQ": "2026-04-20"}])
    finally:
        engine.dispose()
    return path


@pytest.fixture
def locked(tmp_path) -> Iterator[Path]:
    """A tax database another process holds the write lock of (``BEGIN EXCLUSIVE``)."""
    path = tax_database(tmp_path / "tax.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield path
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_a_sqlite_source_is_read(tmp_path):
    connector = tax_source(tax_database(tmp_path / "tax.db"))
    try:
        ((rating,),) = await connector.load_tax_ratings([USCC])
        await connector.check()
    finally:
        await connector.aclose()
    assert rating.year == 2025


async def test_a_missing_sqlite_source_is_unavailable_and_not_created(tmp_path):
    path = tmp_path / "tax.db"
    connector = tax_source(path)
    try:
        with pytest.raises(SourceUnavailable) as loading:
            await connector.load_tax_ratings([USCC])
        with pytest.raises(SourceUnavailable):
            await connector.check()
    finally:
        await connector.aclose()
    assert loading.value.extensions == {"code": "SOURCE_UNAVAILABLE", "source": "test-source"}
    assert list(tmp_path.iterdir()) == []


async def test_a_sqlite_source_is_opened_read_only(tmp_path, caplog):
    connector = tax_source(tax_database(tmp_path / "tax.db"))
    try:
        with pytest.raises(SourceUnavailable):
            await connector.fetch(ratings.delete())
        ((rating,),) = await connector.load_tax_ratings([USCC])
    finally:
        await connector.aclose()
    assert "readonly" in caplog.text  # the driver's words, in the log only
    assert rating.year == 2025


async def test_a_sqlite_source_path_may_hold_uri_characters(tmp_path):
    folder = tmp_path / "税务 #1 ?x=%41&mode=rwc"
    folder.mkdir()
    connector = tax_source(tax_database(folder / "tax.db"))
    try:
        ((rating,),) = await connector.load_tax_ratings([USCC])
    finally:
        await connector.aclose()
    assert rating.grade.name == "A"


async def test_a_locked_sqlite_source_is_unavailable_well_before_its_timeout(locked):
    connector = tax_source(locked, timeout_seconds=5.0)
    try:
        started = time.monotonic()
        with pytest.raises(SourceUnavailable) as loading:
            await connector.load_tax_ratings([USCC])
        elapsed = time.monotonic() - started
        with pytest.raises(SourceUnavailable):
            await connector.check()
    finally:
        await connector.aclose()
    assert loading.value.extensions["code"] == "SOURCE_UNAVAILABLE"
    assert elapsed < 4.0  # the busy timeout (a fraction of a second), not the 5 s timeout


@pytest.mark.parametrize("content", [b"", b"not a database at all" * 100])
async def test_check_fails_for_a_file_that_is_not_the_source(tmp_path, content):
    """``SELECT 1`` succeeds on any file; the check reads the source's tables."""
    path = tmp_path / "tax.db"
    path.write_bytes(content)
    connector = tax_source(path)
    try:
        with pytest.raises(SourceUnavailable):
            await connector.check()
    finally:
        await connector.aclose()
    assert path.read_bytes() == content


async def test_check_reads_every_table_of_the_source(database_url):
    connector = await connector_over(TaxConnector, database_url, metadata, {ratings: []})
    try:
        await connector.check()  # empty tables are fine
        async with connector.engine.begin() as conn:
            await conn.run_sync(lambda sync: metadata.tables["SW_QSGG"].drop(sync))
        with pytest.raises(SourceUnavailable):
            await connector.check()
    finally:
        await connector.aclose()


async def test_a_batch_waits_for_a_brief_lock_on_the_threads(tmp_path):
    """A batch runs on the event loop's own connection, which never
    waits for a lock: while another process holds it briefly, the batch goes
    to the threads, which wait (the busy timeout) and read it once released."""
    path = tax_database(tmp_path / "tax.db")
    connector = tax_source(path, timeout_seconds=5.0)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        ((before,),) = await connector.load_tax_ratings([USCC])  # the loop's connection opened
        holder.execute("BEGIN EXCLUSIVE")
        threading.Timer(0.05, holder.execute, ("ROLLBACK",)).start()
        ((during,),) = await connector.load_tax_ratings([USCC])
    finally:
        await connector.aclose()
        holder.close()
    assert before.year == during.year == 2025


def tax_database_of(path: Path, years: range) -> Path:
    """The tax tables at ``path``, with one rating of ``USCC`` per year of ``years``."""
    tax_database(path)
    engine = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(path))
    try:
        with engine.begin() as conn:
            conn.execute(ratings.insert(), [
                {"NSRSBH": USCC, "PJND": year, "XYJB": "B", "PF": 80, "FBRQ": "2026-04-20"}
                for year in years if year != 2025])
    finally:
        engine.dispose()
    return path


async def test_a_big_batch_is_read_in_chunks_with_the_loop_running_between(tmp_path,
                                                                           monkeypatch):
    """Rows beyond ``SQLITE_INLINE_CHUNK_ROWS`` are read after the loop ran
    other work, and every row is in the answer, in the statement's order."""
    monkeypatch.setattr(connectors.sql, "SQLITE_INLINE_CHUNK_ROWS", 2)
    connector = tax_source(tax_database_of(tmp_path / "tax.db", range(2019, 2026)))
    ran_between: list[bool] = []
    reading = True

    async def other_request() -> None:
        ran_between.append(reading)

    try:
        other = asyncio.ensure_future(other_request())
        (ratings_read,) = await connector.load_tax_ratings([USCC])
        reading = False
        await other
    finally:
        await connector.aclose()
    assert [r.year for r in ratings_read] == list(range(2025, 2018, -1))  # newest first
    assert ran_between == [True]  # the other task ran while the batch was being read


async def test_a_cancelled_chunked_read_leaves_the_source_readable(tmp_path, monkeypatch):
    monkeypatch.setattr(connectors.sql, "SQLITE_INLINE_CHUNK_ROWS", 1)
    connector = tax_source(tax_database_of(tmp_path / "tax.db", range(2023, 2026)))
    try:
        reading = asyncio.ensure_future(connector.load_tax_ratings([USCC]))
        await asyncio.sleep(0)  # the read started and waits between its first chunks
        assert not reading.done()
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        (again,) = await connector.load_tax_ratings([USCC])
    finally:
        await connector.aclose()
    assert [r.year for r in again] == [2025, 2024, 2023]


async def test_a_chunked_read_past_the_source_timeout_times_out_and_leaves_it_readable(
        tmp_path, monkeypatch):
    """The read checks the source's timeout between its chunks (it has no
    timer): a loop held up past it makes the batch a SOURCE_TIMEOUT."""
    monkeypatch.setattr(connectors.sql, "SQLITE_INLINE_CHUNK_ROWS", 1)
    connector = tax_source(tax_database_of(tmp_path / "tax.db", range(2023, 2026)),
                           timeout_seconds=0.01)

    async def hold_up_the_loop() -> None:
        time.sleep(0.05)  # a blocking call elsewhere: runs while the read waits between chunks

    try:
        holder = asyncio.ensure_future(hold_up_the_loop())
        with pytest.raises(SourceTimeout) as timing_out:
            await connector.load_tax_ratings([USCC])
        await holder
        monkeypatch.setattr(connectors.sql, "SQLITE_INLINE_CHUNK_ROWS", 1000)  # one chunk
        (again,) = await connector.load_tax_ratings([USCC])
    finally:
        await connector.aclose()
    assert timing_out.value.extensions["code"] == "SOURCE_TIMEOUT"
    assert [r.year for r in again] == [2025, 2024, 2023]


def tax_database_rated(path: Path, grade: str) -> Path:
    """A tax database at ``path`` whose one rating of ``USCC`` has ``grade``."""
    tax_database(path)
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE {ratings.name} SET XYJB = ?", (grade,))
    return path


async def test_a_sqlite_file_replaced_or_removed_is_read_again_from_its_path(
        tmp_path, monkeypatch):
    """A department publishing a new file by renaming it over the old one is
    read from the new file; one taking its file away makes the source
    unavailable, on the event loop's connection and on the pool's alike."""
    monkeypatch.setattr(connectors.sql, "SQLITE_FILE_CHECK_SECONDS", 0.0)
    path = tax_database_rated(tmp_path / "tax.db", "A")
    connector = tax_source(path)
    try:
        ((before,),) = await connector.load_tax_ratings([USCC])  # the loop's connection
        await connector.check()  # a pool connection, on the threads
        tax_database_rated(tmp_path / "new.db", "B").replace(path)
        ((after,),) = await connector.load_tax_ratings([USCC])
        await connector.check()
        path.unlink()
        with pytest.raises(SourceUnavailable):
            await connector.load_tax_ratings([USCC])
        with pytest.raises(SourceUnavailable):
            await connector.check()
    finally:
        await connector.aclose()
    assert (before.grade.name, after.grade.name) == ("A", "B")
