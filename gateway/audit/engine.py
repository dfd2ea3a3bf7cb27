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
"""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

WRITE_OPTION = "audit_write"


def audit_engine(url: str, *, timeout_seconds: float) -> AsyncEngine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        connect_args = {"timeout": timeout_seconds} if parsed.get_driver_name() == "asyncpg" else {}
        return create_async_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    engine = create_async_engine(parsed, connect_args={"timeout": timeout_seconds})
    _lock_before_reading(engine.sync_engine)
    return engine


def sqlite_writer_engine(url: str) -> sa.Engine | None:
    """For a SQLite trail, a synchronous engine of one connection for the
    appends, run on one thread of their own: a batch's transaction is then one
    hand-off from the event loop, not one per statement (aiosqlite's), which
    took an append from about 2 ms to a few hundred µs. ``None`` for servers."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    # No busy timeout: the writer retries a locked trail itself, more often.
    engine = sa.create_engine(
        parsed.set(drivername="sqlite"), pool_size=1, max_overflow=0,
        connect_args={"timeout": 0, "check_same_thread": False})
    _lock_before_reading(engine)
    return engine


def _lock_before_reading(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
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
