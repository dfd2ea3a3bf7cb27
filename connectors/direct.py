"""A batch statement run through the database driver itself, without
SQLAlchemy's per-execution machinery (execution context, statement-cache
lookup, re-rendering the expanding ``IN``, result objects).

``Rendered.of(statement, dialect, n)`` renders a Core statement once for a
dialect and a number of keys bound to its expanding ``keys`` parameter
(``connectors.sql.KEYS``): the SQL text in the driver's own paramstyle and
how to lay the keys and the statement's other (constant) parameters out as
the driver's positional parameters, bind processors applied. ``rows`` turns
the driver's plain rows into named tuples with the statement's column keys
(``row.column`` as with SQLAlchemy's rows) after the column types' result
processors for the dialect (``Numeric`` from a SQLite float to ``Decimal``,
for instance), which are learned from the first execution's cursor
description, as SQLAlchemy learns them, and shared by every key count.

``RUNNERS`` holds one coroutine or function per supported driver (pysqlite,
called on the event loop or the connector's threads; aiosqlite, asyncpg, aiomysql) that executes a rendered statement on a raw driver
connection and returns its rows and description; ``DRIVER_ERRORS`` the
driver's own exception classes, which the caller converts at its boundary.
A driver without a runner here, or with a named paramstyle, is left to
SQLAlchemy's ordinary execution (``SqlConnector.direct``).
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa


class _Columns:
    """What the rows of one statement look like on one dialect: their named
    tuple class and, once a description was seen, the columns' result processors."""

    __slots__ = ("row", "types", "processors")

    def __init__(self, statement: sa.Select) -> None:
        columns = list(statement.selected_columns)
        self.row = namedtuple("Row", [c.key for c in columns])
        self.types = [c.type for c in columns]
        self.processors: list[tuple[int, Callable[[Any], Any]]] | None = None

    def learn(self, dialect: sa.Dialect, description: Sequence[Sequence[Any]] | None) -> None:
        coltypes = [d[1] for d in description] if description else [None] * len(self.types)
        found = []
        for index, (type_, coltype) in enumerate(zip(self.types, coltypes)):
            processor = type_.dialect_impl(dialect).result_processor(dialect, coltype)
            if processor is not None:
                found.append((index, processor))
        self.processors = found


class Rendered:
    """One statement rendered for one dialect and one number of keys."""

    __slots__ = ("sql", "slots", "columns", "dialect")

    def __init__(self, sql: str, slots: tuple | None, columns: _Columns, dialect: sa.Dialect):
        self.sql = sql
        #: ``None``: the positional parameters are the keys, in order. Otherwise one
        #: ``(key index or None, constant, bind processor or None)`` per parameter.
        self.slots = slots
        self.columns = columns
        self.dialect = dialect

    @classmethod
    def of(cls, statement: sa.Select, dialect: sa.Dialect, n: int,
           columns: _Columns | None = None, compiled: sa.Compiled | None = None) -> Rendered:
        """Render ``statement`` for ``n`` keys; ``columns`` and ``compiled``
        from another key count of the same statement are reused when given."""
        compiled = compiled or statement.compile(dialect=dialect)
        markers = [_Key(i) for i in range(n)]
        state = compiled.construct_expanded_state({"keys": markers})
        slots = []
        for name in state.positiontup:
            value = state.parameters[name]
            processor = state.processors.get(name)
            if isinstance(value, _Key):
                slots.append((value.index, None, processor))
            else:  # a constant of the statement (a LIMIT, a literal), processed once
                slots.append((None, value if processor is None else processor(value), None))
        keys_only = [s[0] for s in slots] == list(range(n)) and not any(s[2] for s in slots)
        return cls(state.statement, None if keys_only else tuple(slots),
                   columns or _Columns(statement), dialect)

    def parameters(self, keys: Sequence[Any]) -> tuple[Any, ...]:
        """The driver's positional parameters for ``keys`` (``len(keys)`` == n)."""
        if self.slots is None:
            return tuple(keys)
        return tuple(
            constant if index is None else (keys[index] if processor is None
                                            else processor(keys[index]))
            for index, constant, processor in self.slots)

    def rows(self, raw: Sequence[Sequence[Any]],
             description: Sequence[Sequence[Any]] | None) -> list[Any]:
        """The driver's rows as named tuples, the column types' result processors applied."""
        columns = self.columns
        if columns.processors is None:
            columns.learn(self.dialect, description)
        make = columns.row._make
        processors = columns.processors
        if not processors:
            return [make(row) for row in raw]
        out = []
        for row in raw:
            values = list(row)
            for index, processor in processors:
                values[index] = processor(values[index])
            out.append(make(values))
        return out


class _Key:
    """Stands for the batch's ``index``-th key while a statement is rendered."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def run_pysqlite(connection: sqlite3.Connection, rendered: Rendered,
                 parameters: tuple) -> tuple[list, Any]:
    cursor = connection.execute(rendered.sql, parameters)
    try:
        return cursor.fetchall(), cursor.description
    finally:
        cursor.close()


async def run_asyncpg(connection: Any, rendered: Rendered, parameters: tuple) -> tuple[list, Any]:
    """asyncpg's own statement cache prepares the text once per connection;
    the first execution of a statement prepares it explicitly for the column
    types (asyncpg's records carry none)."""
    if rendered.columns.processors is None:
        prepared = await connection.prepare(rendered.sql)
        rows = await prepared.fetch(*parameters)
        return rows, [(a.name, a.type.oid) for a in prepared.get_attributes()]
    return await connection.fetch(rendered.sql, *parameters), None


async def run_aiomysql(connection: Any, rendered: Rendered, parameters: tuple) -> tuple[list, Any]:
    async with connection.cursor() as cursor:
        await cursor.execute(rendered.sql, parameters)
        return await cursor.fetchall(), cursor.description


async def run_aiosqlite(connection: Any, rendered: Rendered,
                        parameters: tuple) -> tuple[list, Any]:
    """A SQLite source given an aiosqlite engine (the tests' engines)."""
    async with connection.execute(rendered.sql, parameters) as cursor:
        return await cursor.fetchall(), cursor.description


RUNNERS: dict[str, Callable[..., Any]] = {
    "pysqlite": run_pysqlite, "aiosqlite": run_aiosqlite,
    "asyncpg": run_asyncpg, "aiomysql": run_aiomysql,
}


def driver_errors(driver: str) -> tuple[type[BaseException], ...]:
    """The exception classes of ``driver`` itself (not SQLAlchemy's wrappers)."""
    if driver == "asyncpg":
        import asyncpg
        from asyncpg.exceptions import InternalClientError
        return (asyncpg.PostgresError, asyncpg.InterfaceError, InternalClientError)
    if driver == "aiomysql":
        import pymysql
        return (pymysql.err.MySQLError,)
    if driver in ("pysqlite", "aiosqlite"):
        return (sqlite3.Error,)
    return ()
