"""Telling when a SQLite connection's path no longer names the file it opened.

A department may publish a new SQLite file by renaming it over the old one,
or take its file away; a connection opened before keeps reading the old file
(its inode) for as long as it stays open, so a source kept answering from a
file that is no longer there. ``OpenedFile.of(connection)`` remembers the
file a connection opened (SQLite's own path for it, ``PRAGMA
database_list``, and that file's device and inode); ``changed()`` tells
whether the path now names another file or none (one ``os.stat``).
``discard_when_changed(engine)`` makes an engine's pool drop such a
connection when it is checked out, so the next one opens what the path
names now (or fails: a missing file is ``SourceUnavailable``).
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

_INFO_KEY = "sqlite_file"


def _identity(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


class OpenedFile:
    """The file a SQLite connection opened."""

    __slots__ = ("path", "identity")

    def __init__(self, path: str, identity: tuple[int, int] | None) -> None:
        self.path = path
        self.identity = identity

    @classmethod
    def of(cls, connection: sqlite3.Connection) -> OpenedFile | None:
        """The main database file of ``connection``; ``None`` in memory."""
        path = next((row[2] for row in connection.execute("PRAGMA database_list")
                     if row[1] == "main"), "")
        return cls(path, _identity(path)) if path else None

    def changed(self) -> bool:
        """Whether the path names another file than the one opened, or none."""
        return _identity(self.path) != self.identity


def discard_when_changed(engine: sa.Engine) -> None:
    """Make ``engine``'s pool discard, at checkout, a connection whose file was
    replaced or removed since it was opened."""

    @sa.event.listens_for(engine, "connect")
    def remember(dbapi_connection: Any, record: Any) -> None:
        record.info[_INFO_KEY] = OpenedFile.of(dbapi_connection)

    @sa.event.listens_for(engine, "checkout")
    def still_the_same(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        opened = record.info.get(_INFO_KEY)
        if opened is not None and opened.changed():
            # The pool closes this connection and checks out a new one.
            raise sa_exc.DisconnectionError("the SQLite file was replaced or removed")
