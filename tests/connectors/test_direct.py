"""Batch statements through the driver itself (``connectors.direct``) give
the rows SQLAlchemy's execution gives: the same columns, values, Python types
and order, for every SQL connector's batch statements over its demo data, on
SQLite, PostgreSQL and MariaDB; and the same statement counts."""

from __future__ import annotations

import importlib
from datetime import date

import pytest
import sqlalchemy as sa

from connectors import CONNECTORS
from connectors.sql import KEYS, SqlConnector
from demo.population import build_population
from tests.connectors.legacy_db import connector_over

pytestmark = pytest.mark.anyio

POPULATION = build_population(size=120, persons=20, today=date(2026, 11, 28))
SQL_KINDS = sorted(kind for kind, cls in CONNECTORS.items() if issubclass(cls, SqlConnector))


def batch_statements(module) -> dict[str, sa.Select]:
    """The module's statements built once with ``KEYS``."""
    return {name: value for name, value in vars(module).items()
            if isinstance(value, sa.Select) and any(
                b is KEYS or b.key == KEYS.key
                for b in sa.sql.visitors.iterate(value) if isinstance(b, sa.BindParameter))}


def shape(rows) -> list[tuple]:
    """Rows as comparable data: each value with its exact type."""
    return [tuple((type(v).__name__, v) for v in row) for row in rows]


@pytest.mark.parametrize("kind", SQL_KINDS)
async def test_direct_rows_are_sqlalchemys_rows(database_url, kind):
    cls = CONNECTORS[kind]
    module = importlib.import_module(cls.__module__)
    demo = importlib.import_module(f"demo.{cls.__module__.rsplit('.', 1)[1]}")
    connector = await connector_over(cls, database_url, module.metadata,
                                     dict(demo.rows(POPULATION)))
    if database_url.startswith("sqlite"):  # a SQLite file as served: pysqlite on threads
        await connector.aclose()
        connector = cls(connector.settings)
    keys = ([e.uscc for e in POPULATION.enterprises] + [p.id_number for p in POPULATION.persons]
            + ["91441300000000000X"])  # and one key nobody has
    statements = batch_statements(module)
    assert statements, f"no batch statement found in {module.__name__}"
    try:
        assert connector.direct
        assert (connector._threads is not None) == database_url.startswith("sqlite")
        compared = 0
        for name, statement in statements.items():
            for batch in (keys, keys[:1], keys[5:6], keys[:37], keys):  # key counts rendered again
                connector.direct = True
                direct = await connector.fetch(statement, batch)
                connector.direct = False
                ordinary = await connector.fetch(statement, batch)
                assert shape(direct) == shape(ordinary), (name, len(batch))
                assert [r._fields for r in direct[:1]] == [tuple(r._fields) for r in ordinary[:1]]
                compared += len(direct)
        assert compared > 0  # the demo data gives these statements rows to compare
        assert connector.statements_sent == 10 * len(statements)
    finally:
        await connector.aclose()


async def test_constant_parameters_are_laid_out_with_the_keys(database_url):
    """A batch statement with parameters of its own beside the keys (a
    literal, a LIMIT) binds each where it belongs, on every engine."""
    from connectors.tax import TaxConnector, metadata, ratings

    usccs = [e.uscc for e in POPULATION.enterprises[:3]]
    connector = await connector_over(TaxConnector, database_url, metadata, {ratings: [
        {"NSRSBH": uscc, "PJND": year, "XYJB": grade, "PF": score, "FBRQ": f"{year + 1}-04-20"}
        for uscc in usccs for year, grade, score in ((2024, "B", 75.5), (2025, "A", 95))]})
    statement = (sa.select(ratings.c.NSRSBH, ratings.c.PJND, ratings.c.PF)
                 .where(ratings.c.XYJB == "A", ratings.c.NSRSBH.in_(KEYS),
                        ratings.c.PJND > sa.bindparam("after", 2000))
                 .order_by(ratings.c.NSRSBH).limit(2))
    try:
        rows = await connector.fetch(statement, usccs)
        connector.direct = False
        assert shape(rows) == shape(await connector.fetch(statement, usccs))
    finally:
        await connector.aclose()
    assert [(r.NSRSBH, r.PJND) for r in rows] == [(u, 2025) for u in sorted(usccs)[:2]]
    assert [str(r.PF) for r in rows] == ["95.00", "95.00"]
