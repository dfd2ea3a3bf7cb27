"""What one batch statement costs the gateway's process, through the driver
directly (``SqlConnector.direct``, the default) and through SQLAlchemy's
ordinary execution, on SQLite, PostgreSQL and MariaDB.

``python -m bench.statement_cost [--engines sqlite,postgresql,mariadb]
[--single 2000] [--hundred 200] [--rounds 4] [--size 2000] [--output FILE]``
fills every demo department's legacy tables (``--size`` enterprises, 500
persons) once per engine (a SQLite file, served as in production: pysqlite,
small batches on the event loop, others on the connector's threads; a database of its own on each server, dropped
afterwards), then, per SQL connector, runs ``--single`` batches of one key and
``--hundred`` batches of 100 keys through ``Connector.load``, one after
another, spread over the connector's record types, in ``--rounds`` rounds;
each round runs both executions, in alternating order. It measures the
process's CPU time (``time.process_time``: every thread of this process, the
SQLite threads included; not the database servers' processes) and wall time
per statement, and writes a markdown report to
``bench/results/statement-cost-<UTC date-time>.md`` (and prints it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bench.__main__ import RESULTS
from connectors import CONNECTORS
from connectors.base import SourceCall
from connectors.sql import SQLITE_INLINE_CHUNK_ROWS, SqlConnector
from core.config import SourceSettings
from core.records.base import Key
from demo.department import discover_departments
from demo.generate import fill_database, sqlite_url
from demo.population import build_population

SERVERS = {"postgresql": "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
           "mariadb": "mysql+aiomysql://root@127.0.0.1:3306"}
CALL = SourceCall(request_id="bench", client_id="bench", organization="bench",
                  purpose="SUPERVISION")
MODES = {True: "driver directly", False: "SQLAlchemy execution"}


async def admin(engine_kind: str, statement: str) -> None:
    engine = create_async_engine(SERVERS[engine_kind], isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


def quoted(engine_kind: str, name: str) -> str:
    return f'"{name}"' if engine_kind == "postgresql" else f"`{name}`"


async def database_url(engine_kind: str, name: str, folder: Path) -> str:
    """A new, empty database for one department on ``engine_kind``."""
    if engine_kind == "sqlite":
        return sqlite_url(folder / f"{name}.db")
    extra = "" if engine_kind == "postgresql" else " CHARACTER SET utf8mb4"
    await admin(engine_kind, f"CREATE DATABASE {quoted(engine_kind, name)}{extra}")
    return sa.make_url(SERVERS[engine_kind]).set(database=name).render_as_string(False)


async def measure(connector: SqlConnector, batches: list[tuple[str, list[str]]], direct: bool
                  ) -> tuple[float, float]:
    """CPU and wall seconds for running ``batches`` one after another."""
    connector.direct = direct
    cpu, wall = time.process_time(), time.perf_counter()
    for record_type, keys in batches:
        await connector.load(record_type, keys, CALL)
    return time.process_time() - cpu, time.perf_counter() - wall


def batches_for(connector: SqlConnector, population, count: int, width: int
                ) -> list[tuple[str, list[str]]]:
    """``count`` batches of ``width`` keys, cycling through the record types and the keys."""
    kinds = sorted(connector.record_types.values(), key=lambda rt: rt.name)
    usccs = [e.uscc for e in population.enterprises]
    persons = [p.id_number for p in population.persons]
    out = []
    for n in range(count):
        record_type = kinds[n % len(kinds)]
        keys = usccs if Key.USCC in record_type.keys else persons
        start = (n * width) % (len(keys) - width)
        out.append((record_type.name, keys[start:start + width]))
    return out


async def run_engine(engine_kind: str, population, args, folder: Path) -> list[dict]:
    rows = []
    created = []
    try:
        for department in discover_departments():
            name = f"credit_gw_bench_{os.getpid()}_{department.source}"
            url = await database_url(engine_kind, name, folder)
            if engine_kind != "sqlite":
                created.append(name)
            await fill_database(url, department, population)
            connector = CONNECTORS[department.connector](SourceSettings(
                id=department.source, connector=department.connector, url=url,
                department=department.department, city="惠州"))
            try:
                for width, count in ((1, args.single), (100, args.hundred)):
                    batches = batches_for(connector, population, count, width)
                    per_round = -(-len(batches) // args.rounds)
                    results = {True: [], False: []}
                    await measure(connector, batches[:20], True)  # warm both: render, prepare
                    await measure(connector, batches[:20], False)
                    sent = connector.statements_sent
                    for r in range(args.rounds):
                        chunk = batches[r * per_round:(r + 1) * per_round]
                        for direct in ((True, False) if r % 2 == 0 else (False, True)):
                            cpu, wall = await measure(connector, chunk, direct)
                            results[direct].append((cpu / len(chunk), wall / len(chunk)))
                    assert connector.statements_sent - sent == 2 * len(batches), "one per batch"
                    rows.append({"engine": engine_kind, "connector": department.connector,
                                 "keys": width, "batches": len(batches), "results": results})
                    print(f"{engine_kind:10} {department.connector:14} {width:3} keys: "
                          + "; ".join(f"{MODES[d]} {statistics.median(c for c, _ in v) * 1e6:.0f} µs CPU"
                                      for d, v in results.items()), flush=True)
            finally:
                await connector.aclose()
    finally:
        for name in created:
            await admin(engine_kind, f"DROP DATABASE {quoted(engine_kind, name)}")
    return rows


def report(rows: list[dict], args, command: str, load_before: tuple, load_after: tuple,
           seconds: float) -> str:
    def us(values):
        return statistics.median(values) * 1e6

    lines = [
        f"# Per-statement cost: driver directly vs SQLAlchemy execution ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Command: `{command}` ({seconds:.0f} s). Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs. Load average before / after: "
        f"{' '.join(f'{x:.2f}' for x in load_before)} / {' '.join(f'{x:.2f}' for x in load_after)}. "
        "**The machine was shared** with other workers running test suites: wall times "
        "move with their load; CPU time (`time.process_time`, this process's threads) much less.",
        "",
        "Method: the demo's departmental tables (population of "
        f"{args.size} enterprises, 500 persons), one database per department and engine; "
        "per SQL connector, batches run one after another through `Connector.load` "
        "(statement, row mapping into records, provenance), spread over the connector's "
        f"record types; {args.rounds} rounds, each running both executions on the same "
        "batches in alternating order, after a warm-up of 20 batches each. Figures: the median "
        "over rounds of the mean per batch (one statement per batch, counted). CPU excludes the "
        "database servers' own processes. SQLite: a file read as in production (pysqlite; "
        "batch statements on the event loop when the driver is used directly, their rows "
        f"read {SQLITE_INLINE_CHUNK_ROWS} at a time, on the connector's threads otherwise); PostgreSQL through asyncpg, MariaDB through aiomysql, "
        "both on 127.0.0.1.",
        "",
        "| engine | connector | keys per batch | batches | CPU µs, SQLAlchemy | CPU µs, direct | CPU saved | wall µs, SQLAlchemy | wall µs, direct |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    totals: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        old, new = row["results"][False], row["results"][True]
        old_cpu, new_cpu = us(c for c, _ in old), us(c for c, _ in new)
        totals.setdefault((row["engine"], row["keys"]), []).append((old_cpu, new_cpu))
        lines.append(
            f"| {row['engine']} | {row['connector']} | {row['keys']} | {row['batches']} | "
            f"{old_cpu:.0f} | {new_cpu:.0f} | {1 - new_cpu / old_cpu:.0%} | "
            f"{us(w for _, w in old):.0f} | {us(w for _, w in new):.0f} |")
    lines += ["", "Mean over the connectors (CPU µs per statement):", "",
              "| engine | keys per batch | SQLAlchemy | direct | saved |", "|---|---|---|---|---|"]
    for (engine_kind, width), pairs in totals.items():
        old = statistics.mean(o for o, _ in pairs)
        new = statistics.mean(n for _, n in pairs)
        lines.append(f"| {engine_kind} | {width} | {old:.0f} | {new:.0f} | {1 - new / old:.0%} |")
    return "\n".join(lines) + "\n"


async def main_async(args) -> list[dict]:
    population = build_population(size=args.size, persons=500, today=date(2026, 12, 1))
    rows = []
    with tempfile.TemporaryDirectory(prefix="statement-cost-") as folder:
        for engine_kind in args.engines.split(","):
            rows += await run_engine(engine_kind, population, args, Path(folder))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="sqlite,postgresql,mariadb")
    parser.add_argument("--single", type=int, default=2000, help="batches of one key")
    parser.add_argument("--hundred", type=int, default=200, help="batches of 100 keys")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--size", type=int, default=2000, help="enterprises")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    command = "python -m bench.statement_cost " + " ".join(sys.argv[1:] if argv is None else argv)
    load_before, started = os.getloadavg(), time.perf_counter()
    rows = asyncio.run(main_async(args))
    text = report(rows, args, command.strip(), load_before, os.getloadavg(),
                  time.perf_counter() - started)
    output = args.output or RESULTS / f"statement-cost-{datetime.now(timezone.utc):%Y-%m-%d-%H%M}.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
