"""``OpenedFile``: the file a SQLite connection opened, and whether its path
still names it (the connector's behaviour: ``test_sql.py``)."""

from __future__ import annotations

import sqlite3

from connectors.sqlite_file import OpenedFile


def test_a_file_is_the_same_until_replaced_or_removed(tmp_path):
    path = tmp_path / "source.db"
    connection = sqlite3.connect(path)
    try:
        opened = OpenedFile.of(connection)
        assert opened is not None and opened.path == str(path)
        assert not opened.changed()
        path.touch()  # written to, the same file
        assert not opened.changed()
        (tmp_path / "other.db").write_bytes(path.read_bytes())
        (tmp_path / "other.db").replace(path)
        assert opened.changed()
        path.unlink()
        assert opened.changed()
    finally:
        connection.close()


def test_an_in_memory_database_has_no_file():
    connection = sqlite3.connect(":memory:")
    try:
        assert OpenedFile.of(connection) is None
    finally:
        connection.close()
