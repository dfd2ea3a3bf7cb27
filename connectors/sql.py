"""Base for connectors over a departmental SQL database (SQLAlchemy Core)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

from connectors import direct
from connectors.base import Connector, log
from connectors.sqlite_file import OpenedFile, discard_when_changed
from core.errors import SourceTimeout, SourceUnavailable
from core.config import SourceSettings
from core.threads import WorkerThreads

#: A batch's keys in a statement built once (``column.in_(KEYS)``), bound by
#: ``fetch``: building and cache-keying a statement per call cost several
#: times its execution (measured 170 µs against 30 µs on SQLite).
KEYS = sa.bindparam("keys", expanding=True)

#: How long a read of a SQLite source waits for another process's write lock
#: (SQLite's busy timeout; a ``?timeout=`` in the source's URL overrides it)
#: before it fails as ``SourceUnavailable``: a department's writer holds it for
#: milliseconds, a stuck one for ever, and a request should not wait out its
#: whole timeout (5 s by default, then ``SourceTimeout``) to learn that.
SQLITE_BUSY_TIMEOUT_SECONDS = 0.2

#: A SQLite batch statement runs on the event loop itself, on a connection of
#: its own that never waits for a lock (a locked database sends the batch to
#: the threads, which wait ``SQLITE_BUSY_TIMEOUT_SECONDS``), its rows read this
#: many at a time with the loop let run between them (about 1.5 ms of rows),
#: with no timer: only those pauses can be interrupted, so the source's timeout
#: is checked there.
#: A one-key statement takes about 15 µs of SQLite, its hand-off to a thread
#: and back about 130 µs of CPU (wake-ups, the GIL); a big batch on a thread
#: hands the GIL over at every row (pysqlite releases it per step), so six
#: sources read at once on their threads took 56 ms for 500 entities against
#: 39 ms one after another on the loop (``bench/results/statement-cost-*.md``,
#: ``bench/results/read-path-*.md``). What it costs: a page read from a cold
#: disk cache is read with the loop waiting.
SQLITE_INLINE_CHUNK_ROWS = 1000

#: How often the event loop's connection checks that the source's path still
#: names the file it opened (``connectors.sqlite_file``): a file replaced or
#: removed is read again from its path within this many seconds.
SQLITE_FILE_CHECK_SECONDS = 1.0


def read_only_sqlite_url(url: sa.URL) -> sa.URL:
    """``url`` (a file SQLite URL, any driver) as the sync pysqlite URL of a
    read-only connection that never creates the file: SQLite URI mode,
    ``file:<path>?mode=ro``. A missing file then fails to open ("unable to
    open database file") instead of becoming an empty database at the
    department's path. An in-memory URL is returned as it is (sync driver)."""
    url = url.set(drivername="sqlite")
    database = url.database or ""
    if database in ("", ":memory:"):
        return url
    if url.query.get("uri", "").lower() in ("true", "1", "yes", "on"):
        # Already a SQLite URI ("file:..."): force read-only unless it is in memory.
        if url.query.get("mode") == "memory":
            return url
        return url.update_query_dict({"mode": "ro"})
    # The path percent-encoded: "?", "#" and "%" are URI syntax, not file name.
    path = quote(os.path.abspath(database), safe="/")
    return url.set(database=f"file:{path}").update_query_dict({"mode": "ro", "uri": "true"})


def by_keys(table: sa.Table, key: sa.Column, *order_by: Any) -> sa.Select:
    """Every column of ``table`` for the rows whose ``key`` is one of the batch's keys."""
    return sa.select(table).where(key.in_(KEYS)).order_by(*order_by)


class SqlConnector(Connector):
    """A connector reading one database through SQLAlchemy.

    Subclasses build portable Core statements once (no dialect-specific SQL:
    the same code runs on SQLite, PostgreSQL and MariaDB), the batch's keys
    as ``KEYS``, and run them with ``fetch``, which applies the source's
    timeout and converts every driver failure into a ``SourceError``;
    ``grouped`` and ``single`` map the rows.

    A batch statement (one with ``KEYS``) runs through the driver itself
    (``connectors.direct``): rendered once per number of keys for the
    engine's dialect, executed on a raw connection from the engine's pool,
    its rows named tuples with SQLAlchemy's column keys and the column
    types' result processors applied (the same values SQLAlchemy's rows
    hold). Other statements (name searches, ``check``), and every statement
    where the driver has no runner there (``direct`` false), take
    SQLAlchemy's ordinary execution. ``statements_sent`` counts the
    statements sent either way.

    Server databases are read through an async engine (asyncpg, aiomysql).
    A SQLite file is read through a sync engine: batch statements on the
    event loop itself, never waiting for a lock (``SQLITE_INLINE_CHUNK_ROWS``;
    ``inline`` false sends them to the threads too), other statements and
    batches that met a lock on the connector's own threads
    (``WorkerThreads``), one hand-off per statement (aiosqlite takes several).

    A SQLite file is opened read-only and never created
    (``read_only_sqlite_url``): a missing file is a ``SourceUnavailable`` at
    call time, as is a database locked by another process for longer than
    ``SQLITE_BUSY_TIMEOUT_SECONDS``. A file replaced (a new one renamed over
    it) or removed while the gateway runs is noticed
    (``connectors.sqlite_file``): the pool's connections at their checkout,
    the event loop's within ``SQLITE_FILE_CHECK_SECONDS``; the source then
    reads what its path names now, or is unavailable.

    ``check`` reads one row of each of ``check_tables``: by default every
    table of the ``metadata`` (a ``sa.MetaData``) of the module defining the
    connector class, where each connector declares the tables it reads.
    """

    #: The tables ``check`` reads; empty: those of the module's ``metadata``.
    check_tables: ClassVar[tuple[sa.Table, ...]] = ()

    def __init__(self, settings: SourceSettings, engine: AsyncEngine | None = None) -> None:
        super().__init__(settings)
        # A fixed pool: overflow connections would be opened and discarded per
        # burst; waiting for one is bounded by the source's timeout.
        pool = {"pool_size": settings.pool_size, "max_overflow": 0,
                "pool_timeout": settings.timeout_seconds}
        url = sa.engine.make_url(settings.url)
        self.engine: AsyncEngine | None = engine
        self._sync_engine: sa.Engine | None = None
        self._threads: WorkerThreads | None = None
        self._inline: sqlite3.Connection | None = None  # the event loop's own, off the pool
        self._inline_file: OpenedFile | None = None  # the file it opened
        self._inline_checked = 0.0  # when (time.monotonic) that file was last checked
        if engine is None and url.get_backend_name() == "sqlite":
            # "database is locked" after the busy timeout is a DBAPIError: SourceUnavailable.
            busy = {} if "timeout" in url.query else {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
            self._sync_engine = sa.create_engine(
                read_only_sqlite_url(url), connect_args={"check_same_thread": False, **busy},
                **pool)
            discard_when_changed(self._sync_engine)
            self._threads = WorkerThreads(settings.pool_size, f"source-{settings.id}")
        elif engine is None:
            self.engine = create_async_engine(url, **pool)
        self._latency = settings.simulated_latency_ms / 1000
        self._check = _check_statement(self.check_tables or _module_tables(type(self)))
        self.statements_sent = 0
        self._dialect = (self._sync_engine or self.engine.sync_engine).dialect
        #: Whether batch statements run through the driver itself (see the class docstring).
        self.direct = self._dialect.driver in direct.RUNNERS and self._dialect.positional
        #: Whether a SQLite source's batch statements run on the event loop (above).
        self.inline = self._threads is not None
        self._errors = (sa_exc.DBAPIError, sa_exc.InterfaceError, OSError,
                        *direct.driver_errors(self._dialect.driver))
        # id(statement) -> (statement, compiled, columns); (id(statement), n) -> rendered
        self._compiled: dict[int, tuple[sa.Select, sa.Compiled, Any]] = {}
        self._rendered: dict[tuple[int, int], direct.Rendered] = {}

    @property
    def sqlite_engine(self) -> sa.Engine | None:
        """The sync engine of a SQLite source (its read-only URL), ``None`` for a
        server database: for tools reading the same file the same way (the
        bench's true ceiling)."""
        return self._sync_engine

    def _render(self, statement: sa.Select, n: int) -> direct.Rendered:
        rendered = self._rendered.get((id(statement), n))
        if rendered is None:
            known = self._compiled.get(id(statement))
            if known is None:
                compiled = statement.compile(dialect=self._dialect)
                rendered = direct.Rendered.of(statement, self._dialect, n, compiled=compiled)
                self._compiled[id(statement)] = (statement, compiled, rendered.columns)
            else:
                _, compiled, columns = known
                rendered = direct.Rendered.of(statement, self._dialect, n, columns, compiled)
            self._rendered[id(statement), n] = rendered
        return rendered

    def _run(self, statement: sa.Executable, parameters: dict[str, Any] | None) -> Sequence[Any]:
        with self._sync_engine.connect() as conn:
            return conn.execute(statement, parameters).all()

    def _run_direct(self, statement: sa.Select, keys: Sequence[Any]) -> list[Any]:
        """A batch statement on a raw pysqlite connection (on a worker thread)."""
        rendered = self._render(statement, len(keys))
        fairy = self._sync_engine.raw_connection()
        try:
            rows, description = direct.run_pysqlite(
                fairy.driver_connection, rendered, rendered.parameters(keys))
        except BaseException:
            fairy.invalidate()
            raise
        finally:
            fairy.close()
        return rendered.rows(rows, description)

    async def _run_inline(self, statement: sa.Select, keys: Sequence[Any],
                          deadline: float) -> list[Any] | None:
        """A SQLite batch on the event loop's own connection, its rows read
        ``SQLITE_INLINE_CHUNK_ROWS`` at a time with the loop let run between
        (``TimeoutError`` there once the loop's clock passed ``deadline``);
        ``None`` when the database is locked (the caller hands the batch to
        the threads). A statement that fails closes the connection (the next
        one opens another)."""
        rendered = self._render(statement, len(keys))
        connection = self._inline
        if connection is not None and self._inline_file is not None:
            now = time.monotonic()
            if now >= self._inline_checked + SQLITE_FILE_CHECK_SECONDS:
                self._inline_checked = now
                if self._inline_file.changed():
                    log.warning("source %s: its file was replaced or removed; opening it again",
                                self.id)
                    self._close_inline(connection)
                    connection = None
        if connection is None:
            fairy = self._sync_engine.raw_connection()
            connection = fairy.driver_connection
            fairy.detach()  # the loop's own, closed by ``_close_inline``: never handed to a thread
            connection.execute("PRAGMA busy_timeout = 0")
            self._inline = connection
            self._inline_file = OpenedFile.of(connection)
            self._inline_checked = time.monotonic()
        try:
            cursor = connection.execute(rendered.sql, rendered.parameters(keys))
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:
                return None
            self._close_inline(connection)
            raise
        except BaseException:
            self._close_inline(connection)
            raise
        try:
            raw = cursor.fetchmany(SQLITE_INLINE_CHUNK_ROWS)
            rows = rendered.rows(raw, cursor.description)
            while len(raw) == SQLITE_INLINE_CHUNK_ROWS:
                await asyncio.sleep(0)  # other requests run between the chunks
                if asyncio.get_running_loop().time() >= deadline:
                    raise TimeoutError
                raw = cursor.fetchmany(SQLITE_INLINE_CHUNK_ROWS)
                rows += rendered.rows(raw, cursor.description)
        except (asyncio.CancelledError, TimeoutError):  # the request ended, or the source's
            cursor.close()                              # time did: the connection is fine
            raise
        except BaseException:
            self._close_inline(connection)  # its cursors with it
            raise
        cursor.close()
        return rows

    def _close_inline(self, connection: sqlite3.Connection | None = None) -> None:
        """Close the loop's connection (``connection``, when it still is)."""
        inline = self._inline if connection is None else connection
        if inline is self._inline:
            self._inline = None
        if inline is not None:
            inline.close()

    async def _run_direct_async(self, statement: sa.Select, keys: Sequence[Any]) -> list[Any]:
        """A batch statement on a raw asyncpg or aiomysql connection of the pool.
        A connection whose statement failed or was cancelled is discarded."""
        rendered = self._render(statement, len(keys))
        fairy = await self.engine.raw_connection()
        failed = True
        try:
            rows, description = await direct.RUNNERS[self._dialect.driver](
                fairy.driver_connection, rendered, rendered.parameters(keys))
            failed = False
        finally:
            await greenlet_spawn(_release, fairy, failed)
        return rendered.rows(rows, description)

    async def fetch(self, statement: sa.Executable,
                    keys: Sequence[Any] | None = None) -> Sequence[Any]:
        """Run one statement and return all its rows (attributes named after
        its columns); ``keys`` binds ``KEYS``. A statement with ``keys`` is
        built once (a module constant): it is rendered once per key count and kept."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.timeout_seconds
        try:
            if self._latency:
                async with asyncio.timeout_at(deadline):
                    await asyncio.sleep(self._latency)
            self.statements_sent += 1
            if keys is not None and self.direct and self.inline:
                # No timer: the read awaits only between its chunks, which check the deadline.
                rows = await self._run_inline(statement, keys, deadline)
                if rows is not None:
                    return rows
            async with asyncio.timeout_at(deadline):
                if keys is not None and self.direct:
                    if self._threads is None:
                        return await self._run_direct_async(statement, keys)
                    return await self._threads.run(self._run_direct, statement, keys)
                parameters = None if keys is None else {"keys": list(keys)}
                if self._threads is not None:
                    return await self._threads.run(self._run, statement, parameters)
                async with self.engine.connect() as conn:
                    result = await conn.execute(statement, parameters)
                    return result.all()
        except (TimeoutError, sa_exc.TimeoutError):  # the query's or the pool's
            raise SourceTimeout(
                self.id,
                f"source {self.id} ({self.settings.department}) did not answer "
                f"within {self.settings.timeout_seconds:g} s",
            ) from None
        except self._errors as exc:
            # Log the driver's words (which may name hosts) here, not to the client; not
            # SQLAlchemy's text around them, which repeats the statement's parameters
            # (the keys asked for: resident ID numbers).
            driver = getattr(exc, "orig", None) or exc
            log.warning("source %s failed: %s: %s", self.id, type(driver).__name__,
                        str(driver).split("\n", 1)[0][:300])
            raise SourceUnavailable(
                self.id, f"source {self.id} ({self.settings.department}) is unavailable"
            ) from None

    async def check(self) -> None:
        """A real read of the source's data: one row (at most) of each of its
        tables, in one statement. Fails (``SourceUnavailable``, ``SourceTimeout``)
        for a missing, locked or foreign database or a missing table, where
        ``SELECT 1`` succeeds on any SQLite file, even one it just created."""
        await self.fetch(self._check)

    async def aclose(self) -> None:
        if self._threads is not None:
            self._threads.close()
            self._close_inline()
            self._sync_engine.dispose()
        else:
            await self.engine.dispose()


def _release(fairy: Any, failed: bool) -> None:
    """Hand a raw connection back to its pool (in a greenlet: the reset may
    await the driver), discarded first when its statement failed."""
    if failed:
        fairy.invalidate()
    fairy.close()


def _module_tables(cls: type) -> tuple[sa.Table, ...]:
    """The tables of the ``metadata`` of the module defining ``cls`` (or its bases)."""
    for klass in cls.__mro__:
        metadata = getattr(sys.modules.get(klass.__module__), "metadata", None)
        if isinstance(metadata, sa.MetaData) and metadata.tables:
            return tuple(metadata.sorted_tables)
    return ()


def _check_statement(tables: Sequence[sa.Table]) -> sa.Select:
    """``SELECT (SELECT 1 FROM t1 LIMIT 1) AS t0, ...``: portable (SQLite,
    PostgreSQL, MariaDB), one row whatever the tables hold, each table read
    (an empty table gives ``NULL``)."""
    if not tables:
        return sa.select(sa.literal_column("1"))
    return sa.select(*(
        sa.select(sa.literal_column("1")).select_from(table).limit(1)
        .scalar_subquery().label(f"t{n}")
        for n, table in enumerate(tables)
    ))
