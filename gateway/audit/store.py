"""``AuditStore``: the append-only, hash-chained audit trail of credit-data releases,
and the Merkle tree over it (``append.py`` grows both; ``proofs.py`` reads the tree).

PIPL requires a record of every release, kept at least 3 years. The gateway
appends one entry per request before its response leaves and fails closed:
``append`` returns only once the entry is committed and raises
``AuditUnavailable`` otherwise. There is deliberately no update or delete of
chosen records: ``prune`` only removes the oldest records past retention, as a
prefix of the chain recorded in the chain itself (``prune.py``).

Appends of one process go through one group-commit writer (``writer.py``);
each batch is one transaction that locks the chain head (``append.py``), so
several processes sharing the database keep one chain (a SQLite trail's
batches run on a thread of their own: ``engine.sqlite_writer_engine``). ``verify`` walks the
chain (``verify.py``); ``query`` reads it with filters (``query.py``); ``check``
tells whether it accepts appends now (readiness).

A SQLite trail's file is created by ``migrate`` only, and watched
(``engine.TrailFile``): once it is removed or replaced while the store has it
open, every append (and read) fails with ``AuditUnavailable`` until the
process restarts, so nothing is released on the strength of a record
committed into an unlinked file.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from gateway.audit.append import extend_chain, lock_head
from gateway.audit.engine import (
    WRITE_OPTION,
    TrailFileChanged,
    audit_engine,
    sqlite_trail_file,
    sqlite_writer_engine,
    write_connection,
)
from gateway.audit.checkpoint import Checkpoint
from gateway.audit.entry import AuditEntry, AuditRecord
from gateway.audit.errors import AuditUnavailable
from gateway.audit.migrate import upgrade_to_head
from gateway.audit.proofs import (
    RecordProof, TreeHead, consistency_proof, latest_checkpoint, record_proofs,
    save_checkpoint, tree_head,
)
from gateway.audit.prune import PruneReport, prune_chain
from gateway.audit.query import records_query
from gateway.audit.rows import row_record
from gateway.audit.verify import VerifyReport, verify_trail
from gateway.audit.writer import GroupCommitWriter
from core.threads import WorkerThreads

log = logging.getLogger("gateway.audit")
T = TypeVar("T")
LOCK_RETRY_SECONDS = 0.0005
_MIGRATION_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _migration_lock() -> asyncio.Lock:
    """One lock per event loop serializing the migrations this process runs."""
    loop = asyncio.get_running_loop()
    lock = _MIGRATION_LOCKS.get(loop)
    if lock is None:
        lock = _MIGRATION_LOCKS[loop] = asyncio.Lock()
    return lock


class AuditStore:
    """The audit trail in the database at ``url`` (an async SQLAlchemy URL).

    ``max_batch`` bounds the entries one transaction carries;
    ``timeout_seconds`` bounds one batch's transaction, one query and a
    connection attempt (and is SQLite's busy timeout).
    """

    def __init__(self, url: str, *, max_batch: int = 256, timeout_seconds: float = 10.0) -> None:
        self._trail_file = sqlite_trail_file(url)
        self._engine = audit_engine(url, timeout_seconds=timeout_seconds,
                                    trail_file=self._trail_file)
        self._sqlite_writer = sqlite_writer_engine(url, self._trail_file)
        self._writer_thread = (WorkerThreads(1, "audit-writer")
                               if self._sqlite_writer is not None else None)
        self._timeout = timeout_seconds
        self._writer = GroupCommitWriter(self._commit, max_batch=max_batch)

    async def migrate(self) -> None:
        """Create or upgrade the schema (``alembic upgrade head``); safe to run
        from several processes at once. The only operation that creates a
        SQLite trail's file (not its directory)."""
        try:
            if self._trail_file is not None:
                await self._writer_thread.run(self._trail_file.create)
            # alembic keeps its migration context in module globals: two
            # migrations interleaved on one event loop would share it.
            async with _migration_lock(), self._engine.connect() as conn:
                await write_connection(conn)
                async with conn.begin():
                    await conn.run_sync(upgrade_to_head)
        except Exception as exc:
            raise _unavailable("migrated", exc) from exc

    async def append(self, entry: AuditEntry) -> AuditRecord:
        """Append ``entry``; returns its record once committed. ``AuditUnavailable``
        when it could not be (nothing of it is then in the trail, save for a
        commit whose outcome the database never confirmed: a timeout or a
        connection lost during COMMIT may leave a record of a refused request,
        never the reverse)."""
        if not isinstance(entry, AuditEntry):
            raise TypeError("append() takes an AuditEntry")
        if entry.kind == "maintenance":
            raise ValueError("maintenance records are written by prune() only")
        return await self._writer.submit(entry)

    async def check(self, timeout_seconds: float | None = None) -> None:
        """Raise ``AuditUnavailable`` unless the trail accepts appends now
        (readiness): an append's transaction up to its inserts, rolled back.
        SQLite: the writer's connection (which never creates the file) takes
        the write lock (``BEGIN IMMEDIATE``), locks the chain head and checks
        that the path still names the file opened. Servers: a write
        transaction locks the chain head row (``SELECT ... FOR UPDATE``, which
        a read-only server or transaction refuses), for one round trip.
        Bounded by ``timeout_seconds`` (at most the store's own timeout)."""
        timeout = self._timeout if timeout_seconds is None else min(timeout_seconds,
                                                                    self._timeout)
        try:
            async with asyncio.timeout(timeout):
                if self._writer_thread is not None:
                    deadline = time.monotonic() + timeout
                    await self._writer_thread.run(self._sqlite_write, lock_head, deadline, False)
                    return
                async with self._engine.connect() as conn:
                    await write_connection(conn)
                    transaction = await conn.begin()
                    try:
                        await conn.run_sync(lock_head)
                    finally:
                        await transaction.rollback()
        except Exception as exc:
            if isinstance(exc, AuditUnavailable):
                raise
            # Health probes repeat: a warning each, the driver's words in the log only.
            log.warning("audit trail check failed: %s", _driver_error(exc))
            raise AuditUnavailable(
                f"the audit trail does not accept writes: {exc.__class__.__name__}") from exc

    async def verify(self, checkpoint: Checkpoint | None = None) -> VerifyReport:
        """Check the whole chain and its tree, and against ``checkpoint`` (a
        signed checkpoint already opened with the log's key) if given; the
        report names the first problem and its record (``verify.py``)."""
        try:
            async with self._engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    await conn.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    return await verify_trail(conn, checkpoint=checkpoint)
        except Exception as exc:
            raise _unavailable("read", exc) from exc

    async def prune(self, before: datetime, *, dry_run: bool = False) -> PruneReport:
        """Remove the records recorded before ``before`` (timezone-aware) that
        open the chain, up to the first newer one; move the anchor to the last
        removed and append a "maintenance" record naming it, all in one
        transaction serialized with appends. Nothing old enough: nothing
        changes (``removed`` 0). ``dry_run`` reports what would be removed and
        changes nothing. Run ``verify`` first: the removed records are not
        re-checked (only that none of them is missing)."""
        if not isinstance(before, datetime) or before.utcoffset() is None:
            raise ValueError("before must be a timezone-aware datetime")
        try:
            async with asyncio.timeout(self._timeout), self._engine.connect() as conn:
                if not dry_run:
                    await write_connection(conn)
                async with conn.begin():
                    return await prune_chain(conn, before, dry_run=dry_run)
        except Exception as exc:
            raise _unavailable("pruned", exc) from exc

    async def query(
        self,
        *,
        client_id: str | None = None,
        purpose: str | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        limit: int = 50,
        newest_first: bool = True,
    ) -> list[AuditRecord]:
        """Records matching every filter given, at most ``limit``, newest first
        (or oldest first). ``since`` is inclusive, ``until`` exclusive (both
        timezone-aware, on ``recorded_at``); ``subject`` matches a record naming
        it among its subjects. ``after_seq`` is a paging cursor: the records that
        come after record ``after_seq`` in the chosen order (``seq < after_seq``
        newest first, ``seq > after_seq`` oldest first); pass the last ``seq``
        of a page to get the next."""
        statement = records_query(
            client_id=client_id, purpose=purpose, subject=subject, since=since, until=until,
            after_seq=after_seq, limit=limit, newest_first=newest_first,
        )
        try:
            async with asyncio.timeout(self._timeout), self._engine.connect() as conn:
                rows = (await conn.execute(statement)).mappings().all()
                return [row_record(row) for row in rows]
        except Exception as exc:
            raise _unavailable("read", exc) from exc

    async def tree_head(self) -> TreeHead:
        """The Merkle tree's size and root now (``proofs.TreeHead``)."""
        return await self._read(tree_head)

    async def record_proofs(self, records: Sequence[AuditRecord], size: int
                            ) -> dict[int, RecordProof]:
        """Inclusion proofs of ``records`` in the tree of ``size`` leaves, by
        ``seq`` (a record the tree of that size does not cover has none)."""
        return await self._read(record_proofs, records, size)

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 9162 consistency proof from the tree of ``first`` leaves to ``second``."""
        return await self._read(consistency_proof, first, second)

    async def latest_checkpoint(self) -> tuple[int, str] | None:
        """The newest signed checkpoint kept: ``(tree size, note)``, or ``None``."""
        return await self._read(latest_checkpoint)

    async def save_checkpoint(self, size: int, note: str) -> None:
        """Keep a signed checkpoint note (the first of a size, or one with more
        signatures than the one kept); another process saving the same size
        at the same moment is not an error."""
        try:
            async with asyncio.timeout(self._timeout), self._engine.connect() as conn:
                await write_connection(conn)
                async with conn.begin():
                    await conn.run_sync(save_checkpoint, size, note)
        except sa_exc.IntegrityError:
            return
        except Exception as exc:
            raise _unavailable("written", exc) from exc

    async def _read(self, work: Callable[..., T], *args: object) -> T:
        try:
            async with asyncio.timeout(self._timeout), self._engine.connect() as conn:
                async with conn.begin():
                    return await conn.run_sync(work, *args)
        except AuditUnavailable:
            raise
        except Exception as exc:
            raise _unavailable("read", exc) from exc

    async def aclose(self) -> None:
        """Commit the appends still queued, then release the database."""
        try:
            await self._writer.aclose()
        finally:
            if self._writer_thread is not None:
                # Behind any append still on the thread (bounded by the busy timeout).
                await self._writer_thread.run(self._sqlite_writer.dispose)
                self._writer_thread.close()
            await self._engine.dispose()

    async def __aenter__(self) -> AuditStore:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def _commit(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        deadline = time.monotonic() + self._timeout
        async with asyncio.timeout(self._timeout):
            if self._writer_thread is not None:
                return await self._writer_thread.run(self._commit_sqlite, entries, deadline)
            async with self._engine.connect() as conn:
                await write_connection(conn)
                async with conn.begin():
                    return await conn.run_sync(extend_chain, entries)

    def _commit_sqlite(self, entries: Sequence[AuditEntry], deadline: float) -> list[AuditRecord]:
        """On the writer thread: ``entries`` appended in one transaction."""
        return self._sqlite_write(lambda conn: extend_chain(conn, entries), deadline, True)

    def _sqlite_write(self, work: Callable[[sa.Connection], T], deadline: float,
                      commit: bool) -> T:
        """On the writer thread, ``work`` in a write transaction (``BEGIN
        IMMEDIATE``), committed or rolled back. While another process holds
        the trail's write lock it retries every ``LOCK_RETRY_SECONDS``
        (SQLite's own busy handler sleeps 1, 2, 5, 10 ms... between tries, a
        commit holds the lock well under 1 ms); work its callers stopped
        waiting for (the deadline passed) rolls back. Just before COMMIT the
        trail's file is checked (one ``os.stat``): removed or replaced, the
        transaction rolls back and the store refuses from then on."""
        while True:
            try:
                with self._sqlite_writer.connect() as conn:
                    conn.execution_options(**{WRITE_OPTION: True})
                    try:
                        with conn.begin() as transaction:
                            result = work(conn)
                            if time.monotonic() >= deadline:
                                raise AuditUnavailable("the audit batch passed its deadline")
                            if self._trail_file is not None:
                                self._trail_file.check()
                            if not commit:
                                transaction.rollback()
                            return result
                    except TrailFileChanged:
                        conn.invalidate()  # closed: no lock left on the path's -wal/-shm
                        raise
            except sa_exc.OperationalError as exc:
                if "locked" not in str(exc.orig) or time.monotonic() >= deadline:
                    raise
            time.sleep(LOCK_RETRY_SECONDS)


def _unavailable(action: str, exc: Exception) -> AuditUnavailable:
    if isinstance(exc, AuditUnavailable):
        return exc
    # The driver's words may name hosts or SQL: the log gets them, the message does not.
    log.error("audit trail could not be %s: %s", action, _driver_error(exc))
    return AuditUnavailable(f"the audit trail could not be {action}: {exc.__class__.__name__}")


def _driver_error(exc: BaseException) -> str:
    """The driver's own error, without SQLAlchemy's statement and parameters
    (they would put what was recorded, hashed subjects included, in the log)."""
    original = getattr(exc, "orig", None) or exc
    return f"{type(original).__name__}: {original}"
