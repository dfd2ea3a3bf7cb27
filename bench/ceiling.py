"""The true ceiling: the connectors' statements through the driver, JSON by hand.

For ``POST /entity {"uscc": ...}`` it returns exactly the JSON the gateway
returns for ``bench.workload.ONE`` (and ``bench/sqlalchemy_ceiling.py``
does), with as little work as that takes: no GraphQL, token, policy or
audit, no SQLAlchemy and no record objects per request.

- Statements: each record type's statement is its connector's own, taken
  from the connector's batch method at start-up (``_statement``), compiled
  once for the SQLite dialect; its expanding ``IN`` is rendered once per
  number of keys and cached (``_Statement.sql``).
- Rows: the stdlib ``sqlite3`` connection of each source (one, taken from
  the connector's own engine: the same read-only URL and options), used on
  the event loop's thread. A read of the demo's files takes tens of
  microseconds, less than a hand-off to a thread (the peer's better-sqlite3
  reads synchronously on Node's loop too).
- Values: SQLAlchemy's result processors of the statement's columns
  (``Numeric`` on SQLite: the float formatted to the column's scale), then
  the connectors' legacy decoding of the selected fields only, by hand
  (``VALUES``), with the connectors' code tables and parsers.
- Routing as the gateway's: a single record from ``registry.home``, lists
  from the one source serving the type. The largest ``simulated_latency_ms``
  is awaited once per request (the gateway's sources overlap).

Only SQL sources on SQLite files are read this way; anything else (a
partner, a server database) stops start-up. ``BENCH_CONFIG`` names the
gateway configuration to read (unless the settings are given).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.sqlalchemy_ceiling import CALL
from bench.workload import FIELDS, camel
from connectors import RECORD_TYPES, court, credit_office, environment, market, tax
from connectors.base import Connector
from connectors.hrss import yuan
from connectors.legacy import compact_date, compact_month
from connectors.sql import SqlConnector
from gateway.settings import Settings, load_settings
from gateway.sources import SourceRegistry

Row = dict[str, Any]
DIALECT = sqlite.dialect()
EXPANDING = "__[POSTCOMPILE_keys]"  # where SQLAlchemy renders ``KEYS``' placeholders


def _day(column: str) -> Callable[[Row], str | None]:
    def value(row: Row) -> str | None:
        day = compact_date(row[column])
        return None if day is None else day.isoformat()
    return value


def _code(table: dict[str, Any], column: str) -> Callable[[Row], str]:
    return lambda row: table[row[column]].name


def _decimal(column: str) -> Callable[[Row], str | None]:
    return lambda row: None if row[column] is None else str(Decimal(row[column]))


def _column(column: str) -> Callable[[Row], Any]:
    return lambda row: row[column]


#: Record type -> record attribute -> its JSON value from a row: what each
#: connector's batch method computes for the attributes ``bench.workload``
#: selects (enums by name, dates ISO, decimals as text).
VALUES: dict[str, dict[str, Callable[[Row], Any]]] = {
    "registration": {
        "name": _column("qymc"), "legal_representative": _column("fddbr"),
        "entity_type": lambda row: market.ENTITY_TYPES[row["qylx"]],
        "status": _code(market.STATUS, "djzt"), "registered_capital": _decimal("zczb"),
        "established_on": _day("clrq")},
    "abnormal_operations": {"reason": _code(market.ABNORMAL_REASONS, "lryy"),
                            "listed_on": _day("lrrq"), "removed_on": _day("ycrq")},
    "serious_violations": {"basis": _column("lrsy"), "listed_on": _day("lrrq")},
    "licences": {"decision_number": _column("xkwsh"),
                 "category": _code(credit_office.LICENCE_CATEGORIES, "xklb"),
                 "licence_name": _column("xkzsmc"), "valid_to": _day("yxqzhi")},
    "penalties": {"decision_number": _column("cfjdsh"),
                  "severity": _code(credit_office.SEVERITIES, "yzcd"),
                  "decided_on": _day("cfjdrq"), "publicity_ends_on": _day("gsjzq")},
    "tax_ratings": {"year": lambda row: int(row["PJND"]), "grade": _code(tax.GRADES, "XYJB")},
    "tax_arrears": {"tax_type": _column("SZ"), "amount": lambda row: str(Decimal(row["QSJE"]))},
    "dishonest_debtors": {"case_code": _column("ah"),
                          "performance": _code(court.PERFORMANCE, "lxqk")},
    "social_insurance": {"period": lambda row: compact_month(row["jfny"]),
                         "insured_headcount": lambda row: int(row["cbrs"]),
                         "arrears": lambda row: str(yuan(row["qjje"]))},
    "environmental_ratings": {"year": lambda row: int(row["pjnd"]),
                              "grade": _code(environment.GRADES, "pjdj")},
    "environmental_penalties": {"decision_number": _column("cfwh"), "fine": _decimal("fkje")},
    "credit_lists": {"kind": _code(credit_office.LIST_KINDS, "mdlx"),
                     "list_name": _column("mdmc")},
    "commitments": {"kind": _column("cnlx"),
                    "fulfilment": _code(credit_office.FULFILMENT, "lxzt")},
    "repairs": {"record_reference": _column("xfdxbh"),
                "status": _code(credit_office.REPAIR_STATUS, "xfzt")},
}


class _Captured(Exception):
    pass


async def _statement(connector: Connector, record_type: str) -> sa.Select:
    """The statement ``connector``'s batch method for ``record_type`` runs:
    its ``fetch`` is replaced, for this one call, by one that stops the
    method with the statement it was given."""
    async def fetch(statement: sa.Select, keys: Sequence[Any] | None = None) -> None:
        raise _Captured(statement)

    connector.fetch = fetch  # type: ignore[method-assign]
    try:
        await connector.load(record_type, ["0"], CALL)
    except _Captured as captured:
        return captured.args[0]
    finally:
        del connector.fetch
    raise TypeError(f"{type(connector).__name__} read {record_type} without a statement")


class _Statement:
    """One record type's statement at one source, compiled for SQLite, and
    its rows for a batch of keys as dicts (column key -> processed value)."""

    def __init__(self, statement: sa.Select, connection: Any) -> None:
        where = statement.whereclause
        if not isinstance(where, sa.BinaryExpression) or not isinstance(where.left, sa.Column):
            raise TypeError(f"not a statement by keys: {statement}")
        self.key = where.left.key
        compiled = statement.compile(dialect=DIALECT)
        self.text, self.order = compiled.string, compiled.positiontup
        self.params = compiled.params
        self.names = [column.key for column in statement.selected_columns]
        self.processors = [
            (column.key, processor) for column in statement.selected_columns
            if (processor := column.type.dialect_impl(DIALECT).result_processor(DIALECT, None))]
        self.connection = connection
        self._sql: dict[int, str] = {}

    def sql(self, n: int) -> str:
        """The statement's text for ``n`` keys, rendered once per ``n``."""
        text = self._sql.get(n)
        if text is None:
            text = self._sql[n] = self.text.replace(EXPANDING, ", ".join("?" * n))
        return text

    def rows(self, keys: Sequence[str]) -> list[Row]:
        parameters = []
        for name in self.order:
            parameters += keys if name == "keys" else [self.params[name]]
        names, processors = self.names, self.processors
        rows = []
        for values in self.connection.execute(self.sql(len(keys)), parameters):
            row = dict(zip(names, values))
            for name, processor in processors:
                row[name] = processor(row[name])
            rows.append(row)
        return rows


class _Read:
    """One ``Entity`` field of the workload from one source: JSON per key."""

    def __init__(self, statement: _Statement, record_type: str, names: Sequence[str],
                 connector: Connector) -> None:
        if record_type not in VALUES:
            raise LookupError(f"the true ceiling has no VALUES for {record_type}")
        self.statement = statement
        self.many = RECORD_TYPES[record_type].many
        self.values = [(camel(name), VALUES[record_type][name]) for name in names]
        self.provenance = {"source": connector.id, "city": connector.settings.city}

    def record(self, row: Row) -> dict[str, Any]:
        out = {name: value(row) for name, value in self.values}
        out["provenance"] = self.provenance
        return out

    def load(self, keys: Sequence[str]) -> list[Any]:
        """One value per key, in key order, as the connector's batch method."""
        key = self.statement.key
        if not self.many:
            found = {row[key]: self.record(row) for row in self.statement.rows(keys)}
            return [found.get(k) for k in keys]
        groups: dict[str, list] = {k: [] for k in keys}
        for row in self.statement.rows(keys):
            bucket = groups.get(row[key])
            if bucket is not None:
                bucket.append(self.record(row))
        return [groups[k] for k in keys]


def create_ceiling_app(settings: Settings | None = None) -> Starlette:
    registry = SourceRegistry.from_settings(settings or load_settings(os.environ["BENCH_CONFIG"]))
    reads: dict[tuple[str, str], _Read] = {}  # (field, source id) -> its read
    delay = 0.0  # the largest simulated latency of the sources read, in seconds

    def source_of(record_type: str, uscc: str) -> Connector:
        if not RECORD_TYPES[record_type].many:
            return registry.home(record_type, uscc)
        (source,) = registry.serving(record_type)
        return source

    async def entity(request: Request) -> Response:
        uscc = orjson.loads(await request.body())["uscc"]
        if delay:
            await asyncio.sleep(delay)
        body: dict[str, Any] = {"uscc": uscc}
        for field, (record_type, _) in FIELDS.items():
            body[field] = reads[field, source_of(record_type, uscc).id].load([uscc])[0]
        return Response(orjson.dumps({"data": {"entity": body}}), media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        nonlocal delay
        held = {}  # source id -> the pooled connection it reads through
        try:
            for field, (record_type, names) in FIELDS.items():
                for connector in registry.by_record_type[record_type]:
                    if not isinstance(connector, SqlConnector) or connector.sqlite_engine is None:
                        raise TypeError(f"the true ceiling reads SQLite sources only: {connector.id}")
                    if connector.id not in held:
                        held[connector.id] = connector.sqlite_engine.raw_connection()
                    statement = _Statement(await _statement(connector, record_type),
                                           held[connector.id].driver_connection)
                    reads[field, connector.id] = _Read(statement, record_type, names, connector)
                    delay = max(delay, connector.settings.simulated_latency_ms / 1000)
            yield
        finally:
            for connection in held.values():
                connection.close()
            await registry.aclose()

    return Starlette(routes=[Route("/entity", entity, methods=["POST"])], lifespan=lifespan)
