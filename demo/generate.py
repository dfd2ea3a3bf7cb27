"""Create the six demo departmental databases and the gateway configuration for them.

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
import dataclasses
import json
import secrets
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import ModuleType

from sqlalchemy.ext.asyncio import create_async_engine

from demo import court, credit_office, environment, hrss, market, tax
from demo.issuer import DEMO_AUDIENCE, DEMO_ISSUER, ensure_signing_key
from demo.population import CITIES, Population, build_population, with_visitors

INSERT_CHUNK = 5000
DEMO_FORMAT = 6  # bump when the demo's tables, data or configuration change
# Partner city -> the city whose firms its data holds records about.
VISITED_FROM = {"shenzhen": "huizhou"}


@dataclass(frozen=True)
class DemoDepartment:
    source_id: str
    connector: str
    department: str
    database: str
    rows: ModuleType  # module with ``metadata`` and ``rows(population)``


DEPARTMENTS = (
    DemoDepartment("hz-market", "market", "惠州市市场监督管理局", "market", market),
    DemoDepartment("hz-tax", "tax", "国家税务总局惠州市税务局", "tax", tax),
    DemoDepartment("hz-court", "court", "惠州市中级人民法院", "court", court),
    DemoDepartment("hz-hrss", "hrss", "惠州市人力资源和社会保障局", "hrss", hrss),
    DemoDepartment("hz-environment", "environment", "惠州市生态环境局", "environment", environment),
    DemoDepartment(
        "hz-credit", "credit_office", "惠州市发展和改革局（市公共信用信息管理系统）",
        "credit_office", credit_office,
    ),
)


# Source-id prefixes of the cities the demo can build.
CITY_PREFIXES = {"huizhou": "hz", "shenzhen": "sz", "dongguan": "dg"}
# A partner city's registry grants the Huizhou gateway these purposes.
PARTNER_CLIENT_PURPOSES = (
    "LICENSING_REVIEW", "JOINT_PUNISHMENT", "PROCUREMENT_REVIEW", "PUBLIC_DISCLOSURE", "SUPERVISION",
)


def departments(city: str = "huizhou") -> tuple[DemoDepartment, ...]:
    """The demo departments of ``city``: Huizhou's, renamed for a partner city."""
    if city == "huizhou":
        return DEPARTMENTS
    prefix, name = CITY_PREFIXES[city], CITIES[city].name
    return tuple(
        dataclasses.replace(d, source_id=prefix + d.source_id[2:],
                            department=d.department.replace("惠州", name))
        for d in DEPARTMENTS
    )


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
            await conn.run_sync(department.rows.metadata.drop_all)
            await conn.run_sync(department.rows.metadata.create_all)
            for table, table_rows in department.rows.rows(population):
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


def clients_text(population: Population, city: str = "huizhou") -> str:
    """The demo's client registry: the static clients (a partner city: the
    Huizhou gateway), the banks and the enterprise clients."""
    static = CLIENTS_FILE.read_text(encoding="utf-8") if city == "huizhou" else partner_clients_text(city)
    lines = [static]
    if city == "huizhou":  # the banks the demo authorizations name
        for client_id, (code, name) in credit_office.BANKS.items():
            lines += [f"[clients.{client_id}]", f'organization = "{name}"',
                      f'organization_code = "{code}"', 'city = "惠州"', 'kind = "bank"',
                      'purposes = ["FINANCING"]', ""]
    for client_id, case in ENTERPRISE_CLIENTS.items():
        enterprise = population.showcase[case]
        lines += [
            f"[clients.{client_id}]",
            f'organization = "{enterprise.name}"',
            f'organization_code = "{enterprise.uscc}"',
            f'city = "{population.city.name}"',
            'kind = "enterprise"',
            'purposes = ["SELF_INQUIRY"]',
            "",
        ]
    return "\n".join(lines)


def config_text(urls: dict[str, str], jwks_file: Path, audit_url: str, subject_key: str,
                graphiql: bool = True, city: str = "huizhou") -> str:
    """The TOML configuration that serves ``city``'s demo databases at ``urls``."""
    lines = [
        f"# Generated by `credit-gateway demo`: the six {city.title()} demo departments.",
        "[gateway]",
        f"graphiql = {'true' if graphiql else 'false'}",
        f"introspection = {'true' if graphiql else 'false'}  # the demo is for exploring",
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
    ]
    for d in departments(city):
        lines += [
            f"[sources.{d.source_id}]",
            f'connector = "{d.connector}"',
            f'url = "{urls[d.source_id]}"',
            f'department = "{d.department}"',
            f'city = "{CITIES[city].name}"',
            "",
        ]
    return "\n".join(lines)


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
    city_departments = departments(city)
    data_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = data_dir / "manifest.json"
    config_path = data_dir / "gateway.toml"
    wanted = {"format": DEMO_FORMAT, "size": size, "persons": persons, "seed": seed,
              "departments": [d.source_id for d in city_departments],
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
    urls = {d.source_id: sqlite_url(data_dir / f"{d.database}.db") for d in city_departments}

    async def fill_all() -> None:
        await asyncio.gather(
            *(fill_database(urls[d.source_id], d, population) for d in city_departments)
        )

    asyncio.run(fill_all())
    _, jwks_file = ensure_signing_key(data_dir)
    (data_dir / "clients.toml").write_text(clients_text(population, city), encoding="utf-8")
    key_file = data_dir / "audit-subject-key"
    if not key_file.exists():  # kept across regenerations: recorded hashes stay comparable
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    config_path.write_text(
        config_text(urls, jwks_file, sqlite_url(data_dir / "audit.db"), key_file.read_text(),
                    city=city),
        encoding="utf-8",
    )
    manifest_path.write_text(json.dumps({**wanted, "today": population.today.isoformat()}))
    return config_path
