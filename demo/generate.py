"""Create the demo departmental databases and the gateway configuration for them.

One database and one configured source per demo department: every module of
``demo`` that declares a ``DEPARTMENT`` (``demo.department``), in the order
of ``discover_departments`` (by module name: court, credit_office,
environment, hrss, market, tax), which is the order of the sources in the
generated ``gateway.toml`` and the manifest. The client registry holds the
clients the departments declare (the banks the credit office's
authorizations name). The banks are persisted-only clients: Huizhou's
operations file (``operations.toml``) holds the bank portal's operations,
the ``.graphql`` files of ``demo/operations/``, for them.

Huizhou's by default; ``city="shenzhen"`` (or ``"dongguan"``) builds a partner
city's instance of this gateway instead: its own population, source ids
prefixed by the city (``sz-market``), its departments, token issuer and
audience, and a client registry in which the Huizhou gateway is a partner.
Shenzhen's data also holds penalties and dishonest-debtor records about some
Huizhou firms (``demo.population.with_visitors``), imposed by its own organs
and courts, so that Huizhou's gateway merges Shenzhen's records into their
lists.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from gateway.audit.checkpoint import Signer
from demo.department import DemoClient, DemoDepartment, discover_departments
from demo.issuer import DEMO_AUDIENCE, DEMO_ISSUER, ensure_signing_key
from demo.population import CITIES, Population, build_population, with_visitors
from gateway.operations import Operation, operation_of, write_operations

INSERT_CHUNK = 5000
DEMO_FORMAT = 11  # bump when the demo's tables, data or configuration change
# Partner city -> the city whose firms its data holds records about.
VISITED_FROM = {"shenzhen": "huizhou"}
# Source-id prefixes of the cities the demo can build.
CITY_PREFIXES = {"huizhou": "hz", "shenzhen": "sz", "dongguan": "dg"}
# A partner city's registry grants the Huizhou gateway these purposes.
PARTNER_CLIENT_PURPOSES = (
    "LICENSING_REVIEW", "JOINT_PUNISHMENT", "PROCUREMENT_REVIEW", "PUBLIC_DISCLOSURE", "SUPERVISION",
)


@dataclass(frozen=True)
class DemoSource:
    """A demo department as one city's source: its id and the department's
    name in that city (``sz-market``, 深圳市市场监督管理局)."""

    source_id: str
    department_name: str
    department: DemoDepartment


def demo_sources(city: str = "huizhou") -> tuple[DemoSource, ...]:
    """``city``'s sources, one per demo department, in discovery order."""
    prefix, name = CITY_PREFIXES[city], CITIES[city].name
    return tuple(DemoSource(d.source_id(prefix), d.department_in(name), d)
                 for d in discover_departments())


def demo_issuer(city: str = "huizhou") -> str:
    """The ``iss`` of the demo tokens ``city``'s gateway accepts."""
    return DEMO_ISSUER if city == "huizhou" else f"urn:{city}:credit:demo-issuer"


def demo_audience(city: str = "huizhou") -> str:
    """The ``aud`` ``city``'s gateway requires."""
    return DEMO_AUDIENCE if city == "huizhou" else f"urn:{city}:credit-gateway"


async def fill_database(url: str, department: DemoDepartment, population: Population) -> None:
    """Create the department's legacy tables at ``url`` (dropping old ones) and insert its rows."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(department.metadata.drop_all)
            await conn.run_sync(department.metadata.create_all)
            for table, table_rows in department.rows(population):
                for start in range(0, len(table_rows), INSERT_CHUNK):
                    await conn.execute(table.insert(), table_rows[start:start + INSERT_CHUNK])
    finally:
        await engine.dispose()


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path.resolve()}"


CLIENTS_FILE = Path(__file__).with_name("clients.toml")
# Showcase enterprises registered as clients of their own record.
ENTERPRISE_CLIENTS = {
    "enterprise-clean": "clean",
    "enterprise-penalized": "penalty_general_in_window",
    "enterprise-financed": "financing_authorized",
}


def partner_clients_text(city: str) -> str:
    """A partner city's client registry header: the Huizhou gateway as its partner."""
    return "\n".join([
        f"# The {city.title()} demo gateway's client registry (format: gateway/clients.py),",
        "# written by demo.generate: the Huizhou gateway calls it as a partner city.",
        "",
        "[clients.huizhou-gateway]",
        'organization = "惠州市公共信用信息中心"',
        'city = "惠州"',
        'kind = "partner_city"',
        f"purposes = {json.dumps(list(PARTNER_CLIENT_PURPOSES))}",
        "",
    ])


def client_lines(client: DemoClient) -> list[str]:
    """``client``'s table of the client registry, a blank line after it."""
    return [
        f"[clients.{client.client_id}]",
        f'organization = "{client.organization}"',
        f'organization_code = "{client.organization_code}"',
        f'city = "{client.city}"',
        f'kind = "{client.kind}"',
        f"purposes = {json.dumps(list(client.purposes))}",
        *(["persisted_only = true"] if client.persisted_only else []),
        "",
    ]


OPERATIONS_DIR = Path(__file__).with_name("operations")
OPERATIONS_FILE = "operations.toml"  # in the data directory, beside gateway.toml


def demo_clients(city: str = "huizhou") -> tuple[DemoClient, ...]:
    """The clients ``city``'s departments declare (Huizhou's only: the banks)."""
    if city != "huizhou":
        return ()
    return tuple(client for department in discover_departments() for client in department.clients)


def demo_operations(city: str = "huizhou") -> tuple[Operation, ...]:
    """The persisted operations of ``city``'s demo: the bank portal's
    documents (``demo/operations/*.graphql``, by file name), for the demo's
    persisted-only banks; none where there are no such banks."""
    banks = [c.client_id for c in demo_clients(city) if c.kind == "bank" and c.persisted_only]
    if not banks:
        return ()
    return tuple(operation_of(path.read_text(encoding="utf-8"), clients=banks, where=str(path))
                 for path in sorted(OPERATIONS_DIR.glob("*.graphql")))


def clients_text(population: Population, city: str = "huizhou") -> str:
    """The demo's client registry: the static clients (a partner city: the
    Huizhou gateway), the departments' clients (Huizhou only: the banks the
    demo authorizations name) and the enterprise clients."""
    static = CLIENTS_FILE.read_text(encoding="utf-8") if city == "huizhou" else partner_clients_text(city)
    lines = [static]
    for client in demo_clients(city):
        lines += client_lines(client)
    for client_id, case in ENTERPRISE_CLIENTS.items():
        enterprise = population.showcase[case]
        lines += client_lines(DemoClient(client_id, enterprise.name, enterprise.uscc,
                                         "enterprise", ("SELF_INQUIRY",), population.city.name))
    return "\n".join(lines)


def config_text(urls: dict[str, str], jwks_file: Path, audit_url: str, subject_key: str,
                graphiql: bool = True, city: str = "huizhou",
                operations_file: str = "", log_key_file: str = "") -> str:
    """The TOML configuration that serves ``city``'s demo databases at ``urls``
    (with the persisted operations of ``operations_file``, if given, and
    signed checkpoints of its audit log with the key in ``log_key_file``)."""
    lines = [
        f"# Generated by `credit-gateway demo`: the {city.title()} demo departments.",
        "[gateway]",
        f"graphiql = {'true' if graphiql else 'false'}",
        f"introspection = {'true' if graphiql else 'false'}  # the demo is for exploring",
        *([f'operations_file = "{operations_file}"  # the bank portal\'s (persisted-only banks)']
          if operations_file else []),
        "",
        "[auth]",
        f'issuer = "{demo_issuer(city)}"',
        f'audience = "{demo_audience(city)}"',
        f'jwks_file = "{jwks_file.name}"',
        'clients_file = "clients.toml"',
        "",
        "[audit]",
        f'url = "{audit_url}"',
        f'subject_key = "{subject_key}"',
        "",
        *([
            "[transparency]  # signed checkpoints of the audit log (README: checking it)",
            f'key_file = "{log_key_file}"',
            "interval_seconds = 10",
            'directory = "checkpoints"',
            "",
        ] if log_key_file else []),
    ]
    for source in demo_sources(city):
        lines += [
            f"[sources.{source.source_id}]",
            f'connector = "{source.department.connector}"',
            f'url = "{urls[source.source_id]}"',
            f'department = "{source.department_name}"',
            f'city = "{CITIES[city].name}"',
            "",
        ]
    return "\n".join(lines)


LOG_KEY_FILE = "audit-log.key"


def log_origin(city: str) -> str:
    """The demo's audit log origin (its checkpoint key's name)."""
    return f"{city}.credit.demo/audit"


def ensure_log_key(data_dir: Path, city: str, name: str = LOG_KEY_FILE,
                   origin: str | None = None) -> str:
    """The file name (in ``data_dir``) of the city's checkpoint or witness
    signer key, made once and kept across regenerations (checkpoints
    published stay verifiable)."""
    path = data_dir / name
    if not path.exists():
        path.write_text(Signer.generate(origin or log_origin(city)).private_key_string() + "\n")
        path.chmod(0o600)
    return name


def create_demo_data(
    data_dir: Path, size: int = 2000, persons: int = 500, seed: int | None = None,
    today: date | None = None, force: bool = False, city: str = "huizhou",
    neighbour: Population | None = None,
) -> Path:
    """Create ``city``'s demo SQLite databases in ``data_dir`` unless a data set
    of the same city, size and seed (default: the city's, 441300 for Huizhou)
    is already there; return the configuration file's path.

    Shenzhen's data holds records about firms of ``neighbour``, the Huizhou
    population its gateway's partner serves (default: the one ``credit-gateway
    demo`` serves by default, ``build_population()``)."""
    if city not in CITY_PREFIXES:
        raise ValueError(f"unknown demo city {city!r}; known: {sorted(CITY_PREFIXES)}")
    seed = CITIES[city].seed if seed is None else seed
    if neighbour is None and city in VISITED_FROM:
        neighbour = build_population(today=today, city=VISITED_FROM[city])
    sources = demo_sources(city)
    data_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = data_dir / "manifest.json"
    config_path = data_dir / "gateway.toml"
    wanted = {"format": DEMO_FORMAT, "size": size, "persons": persons, "seed": seed,
              "departments": [s.source_id for s in sources],
              "visitors_from": None if neighbour is None else [
                  neighbour.city.name, len(neighbour.enterprises), len(neighbour.persons),
                  neighbour.seed]}
    if not force and config_path.exists() and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if {k: manifest.get(k) for k in wanted} == wanted:
            return config_path
    population = build_population(size, persons, seed, today, city=city)
    if neighbour is not None:
        with_visitors(population, neighbour)
    urls = {s.source_id: sqlite_url(data_dir / f"{s.department.database}.db") for s in sources}

    async def fill_all() -> None:
        await asyncio.gather(
            *(fill_database(urls[s.source_id], s.department, population) for s in sources)
        )

    asyncio.run(fill_all())
    _, jwks_file = ensure_signing_key(data_dir)
    (data_dir / "clients.toml").write_text(clients_text(population, city), encoding="utf-8")
    operations = demo_operations(city)
    if operations:
        write_operations(data_dir / OPERATIONS_FILE, operations)
    key_file = data_dir / "audit-subject-key"
    if not key_file.exists():  # kept across regenerations: recorded hashes stay comparable
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    log_key = ensure_log_key(data_dir, city) if city == "huizhou" else ""
    config_path.write_text(
        config_text(urls, jwks_file, sqlite_url(data_dir / "audit.db"), key_file.read_text(),
                    city=city, operations_file=OPERATIONS_FILE if operations else "",
                    log_key_file=log_key),
        encoding="utf-8",
    )
    manifest_path.write_text(json.dumps({**wanted, "today": population.today.isoformat()}))
    return config_path
