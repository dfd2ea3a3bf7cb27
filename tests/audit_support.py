"""Shared fixtures and helpers of the audit store tests: the databases
(SQLite, and PostgreSQL where it runs) and audit entries."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.audit import AuditEntry, AuditStore
from tests.conftest import ServerDatabases

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 5, 9, 8, 0, tzinfo=UTC)
USCC_A = "91441302MA4W0K3X17"
USCC_B = "91441300195971850Y"
PERSON = "person:" + "ab" * 32
DROP_ALL = [
    "DROP TABLE IF EXISTS audit_records",
    "DROP TABLE IF EXISTS audit_subjects",
    "DROP TABLE IF EXISTS audit_head",
    "DROP TABLE IF EXISTS audit_anchor",
    "DROP TABLE IF EXISTS audit_tree",
    "DROP TABLE IF EXISTS audit_checkpoints",
    "DROP TABLE IF EXISTS audit_alembic_version",
]


def entry(n: int = 0, **overrides) -> AuditEntry:
    fields = dict(
        kind="release",
        request_id=f"req-{n}",
        recorded_at=T0 + timedelta(seconds=n, microseconds=n),
        client_id="bank-001",
        organization="惠州农村商业银行",
        purpose="credit_approval",
        legal_basis=("enterprise_authorization:SQ2026-001",),
        subjects=(USCC_A, PERSON),
        released=("Entity.name", "Entity.penalties"),
        masked=("Entity.legalRepresentative.idNumber",),
        denied=(),
        withheld=n % 3,
        sources=("market", "tax"),
        outcome="ok",
        latency_ms=12.345 + n,
    )
    return AuditEntry(**{**fields, **overrides})


# --- databases ---------------------------------------------------------------------------


async def _execute(url: str, *statements: str | sa.Executable, autocommit: bool = False) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT") if autocommit \
        else create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement) if isinstance(statement, str) else statement)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def pg_database(server_databases: ServerDatabases) -> Iterator[str]:
    """A PostgreSQL database of this module's own (one of the test run's,
    ``<run>_audit_<random>``), dropped after it."""
    url = server_databases.create("postgresql", "audit")
    try:
        yield url
    finally:
        server_databases.drop(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def audit_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty audit database of each kind (the module's PostgreSQL one, emptied)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    url = request.getfixturevalue("pg_database")
    asyncio.run(_execute(url, *DROP_ALL, "DROP FUNCTION IF EXISTS audit_fail() CASCADE"))
    return url


@pytest.fixture
async def store(audit_url: str) -> AsyncIterator[AuditStore]:
    audit = AuditStore(audit_url)
    await audit.migrate()
    try:
        yield audit
    finally:
        await audit.aclose()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections during the test: bound, never
    listening, so that no other process (another test run) can listen on it meanwhile."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield probe.getsockname()[1]
