"""The audit database engine, with SQLite made to lock before it reads.

On SQLite, SELECT ... FOR UPDATE does not exist: a writer must take the
database's write lock when its transaction begins, or two writers (two
processes) could both read the same chain head. SQLAlchemy's documented
recipe for sqlite3/aiosqlite is applied: the driver's own transaction control
is disabled on connect and the ``begin`` event emits BEGIN itself, here
``BEGIN IMMEDIATE`` on connections marked ``write_connection`` and a plain
(deferred) BEGIN elsewhere. Connections switch the file to WAL journaling
(readers do not block the writer) and use ``synchronous=FULL`` (a commit is
on disk) and a busy timeout (a writer waits for another process's lock
instead of failing).

A SQLite trail is opened in URI mode ``mode=rw``: only ``AuditStore.migrate``
creates its file (``TrailFile.create``), no read or append ever does. And
since SQLite keeps writing through an open descriptor into a file that was
deleted or renamed over, "committing" into an inode nobody else will read,
the store watches its file: ``TrailFile``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gateway.audit.errors import AuditUnavailable

log = logging.getLogger("gateway.audit")

WRITE_OPTION = "audit_write"


class TrailFileChanged(AuditUnavailable):
    """The SQLite trail's file was removed or replaced while the store had it open."""


class TrailFile:
    """The file of a SQLite trail, as this store opened it.

    Each connection of the store notes the file's identity (``st_dev``,
    ``st_ino`` of the path) when it opens; the first one fixes the trail's
    file. ``check`` (one ``os.stat``) compares the path's identity now with
    it: each append batch runs it just before its COMMIT, each read as it
    takes a connection. Once the path is gone or names another file, the
    store refuses everything for good (``TrailFileChanged``): the records it
    committed since it opened the file are in an unlinked inode (or a file
    renamed away), and SQLite, reopening the path in this process while the
    old connections' ``-wal``/``-shm`` are still shared, would mix both
    databases. A restart, once the trail is restored, opens what is then at
    the path. (The identity is taken just after SQLite opened the file: a
    replacement within those microseconds goes unnoticed.)
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._identity: tuple[int, int] | None = None
        self._changed: str | None = None

    def create(self) -> None:
        """Create the file (empty, which SQLite reads as an empty database)
        unless it exists; never its directory."""
        self.refuse_if_changed()
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            pass

    def opened(self) -> None:
        """A connection just opened the path: note (or compare) its identity."""
        self.refuse_if_changed()
        identity = self._stat()
        if self._identity is None and identity is not None:
            self._identity = identity
        elif identity != self._identity:
            self._refuse(identity)

    def refuse_if_changed(self) -> None:
        """``TrailFileChanged`` once a change was seen (no system call)."""
        if self._changed is not None:
            raise TrailFileChanged(self._changed)

    def check(self) -> None:
        """``TrailFileChanged`` unless the path still names the file opened."""
        self.refuse_if_changed()
        if self._identity is not None:
            identity = self._stat()
            if identity != self._identity:
                self._refuse(identity)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:  # gone, or a directory above it gone or replaced
            return None
        return st.st_dev, st.st_ino

    def _refuse(self, identity: tuple[int, int] | None) -> None:
        how = "removed" if identity is None else "replaced"
        self._changed = (f"the audit trail's file was {how} while the gateway had it open; "
                         "restart the gateway once the trail is restored")
        log.critical("audit trail file %s was %s while open: records committed to it since "
                     "it was opened are no longer at that path; refusing every append until "
                     "restarted", self.path, how)
        raise TrailFileChanged(self._changed)


def sqlite_trail_file(url: str) -> TrailFile | None:
    """The ``TrailFile`` of a SQLite trail's URL; ``None`` for servers and memory."""
    path = _sqlite_path(sa.make_url(url))
    return None if path is None else TrailFile(path)


def _sqlite_path(parsed: sa.URL) -> str | None:
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if _is_uri(parsed):
        split = urlsplit(database)
        in_memory = "memory" in (_uri_mode(split.query), parsed.query.get("mode"))
        if split.scheme != "file" or in_memory or not split.path:
            return None
        return os.path.abspath(unquote(split.path))
    if database in ("", ":memory:"):
        return None
    return os.path.abspath(database)


def _uri_mode(query: str) -> str | None:
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "mode":
            return value
    return None


def _is_uri(parsed: sa.URL) -> bool:
    return str(parsed.query.get("uri", "")).lower() in ("true", "1", "yes", "on")


def _no_create(parsed: sa.URL) -> sa.URL:
    """A file SQLite URL in URI mode ``mode=rw``: opened read-write, never created."""
    path = _sqlite_path(parsed)
    if path is None:
        return parsed
    if _is_uri(parsed):
        return parsed.update_query_dict({"mode": "rw"})
    # The path percent-encoded: "?", "#" and "%" are URI syntax, not file name.
    return parsed.set(database=f"file:{quote(path, safe='/')}").update_query_dict(
        {"mode": "rw", "uri": "true"})


def audit_engine(url: str, *, timeout_seconds: float,
                 trail_file: TrailFile | None = None) -> AsyncEngine:
    """The engine of migrations, reads and prunes; on SQLite, connections are
    checked against ``trail_file`` (when given) as they are taken."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        connect_args = {"timeout": timeout_seconds} if parsed.get_driver_name() == "asyncpg" else {}
        return create_async_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    engine = create_async_engine(_no_create(parsed), connect_args={"timeout": timeout_seconds})
    _lock_before_reading(engine.sync_engine, trail_file, check_on_checkout=True)
    return engine


def sqlite_writer_engine(url: str, trail_file: TrailFile | None = None) -> sa.Engine | None:
    """For a SQLite trail, a synchronous engine of one connection for the
    appends, run on one thread of their own: a batch's transaction is then one
    hand-off from the event loop, not one per statement (aiosqlite's), which
    took an append from about 2 ms to a few hundred µs. ``None`` for servers.
    The batches check ``trail_file`` themselves, just before they commit."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    # No busy timeout: the writer retries a locked trail itself, more often.
    engine = sa.create_engine(
        _no_create(parsed.set(drivername="sqlite")), pool_size=1, max_overflow=0,
        connect_args={"timeout": 0, "check_same_thread": False})
    _lock_before_reading(engine, trail_file, check_on_checkout=False)
    return engine


def _lock_before_reading(engine: sa.Engine, trail_file: TrailFile | None, *,
                         check_on_checkout: bool) -> None:
    if trail_file is not None:
        @sa.event.listens_for(engine, "do_connect")
        def before_connecting(dialect: Any, record: Any, cargs: Any, cparams: Any) -> None:
            trail_file.refuse_if_changed()  # no new connection to whatever is there now

        @sa.event.listens_for(engine, "checkout")
        def on_checkout(dbapi_connection: Any, connection_record: Any, proxy: Any) -> None:
            # Raising here closes the connection (SQLite does not checkpoint
            # into a moved file on close) and fails the caller.
            if check_on_checkout:
                trail_file.check()
            else:
                trail_file.refuse_if_changed()

    @sa.event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        if trail_file is not None:
            try:
                trail_file.opened()
            except TrailFileChanged:
                dbapi_connection.close()  # the pool drops it without closing it
                raise
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN, below
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode")
            if cursor.fetchone()[0].lower() != "wal":
                try:
                    cursor.execute("PRAGMA journal_mode=WAL")
                except sqlite3.OperationalError:
                    # Another connection holds a lock (SQLite does not wait here); the
                    # rollback journal is as safe, only less concurrent; a later
                    # connection switches the file to WAL for good.
                    pass
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def on_begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


async def write_connection(conn: AsyncConnection) -> AsyncConnection:
    """Mark ``conn`` (before it begins) as a writer: on SQLite it begins IMMEDIATE."""
    return await conn.execution_options(**{WRITE_OPTION: True})
