"""Shared fixtures.

``database_url`` runs a test once per database kind the connectors must
support: SQLite always; PostgreSQL (127.0.0.1:5432) and MariaDB
(127.0.0.1:3306) where they run. Without them a test is skipped with the
reason, except under CI (``CI`` set), where their absence is a failure.
"""

from __future__ import annotations

import asyncio
import os

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

SERVER_URLS = {
    "postgresql": os.environ.get(
        "TEST_POSTGRESQL_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get("TEST_MARIADB_URL", "mysql+aiomysql://root@127.0.0.1:3306/test"),
}
_reachable: dict[str, str | None] = {}


def _server_problem(kind: str) -> str | None:
    """``None`` when the server answers, else why not."""
    if kind not in _reachable:
        async def probe() -> None:
            engine = create_async_engine(SERVER_URLS[kind])
            try:
                async with asyncio.timeout(5), engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
            finally:
                await engine.dispose()

        try:
            asyncio.run(probe())
            _reachable[kind] = None
        except Exception as exc:  # any failure means: not usable here
            _reachable[kind] = f"{kind} at {SERVER_URLS[kind]} is not reachable: {exc!r}"
    return _reachable[kind]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An async SQLAlchemy URL of an empty-enough database of each supported kind.

    Tests create (dropping first) the tables they use: server databases are shared.
    """
    kind = request.param
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'legacy.db'}"
    problem = _server_problem(kind)
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide {kind}: {problem}")
        pytest.skip(problem)
    return SERVER_URLS[kind]


@pytest.fixture(scope="session")
def population():
    from tests.gateway_fixtures import DEMO_PERSONS, DEMO_SIZE, TODAY
    from demo.population import build_population

    return build_population(DEMO_SIZE, DEMO_PERSONS, today=TODAY)


@pytest.fixture(scope="session")
def demo_settings(tmp_path_factory, population):
    """Settings for the demo databases, made once per test session."""
    from demo.generate import create_demo_data
    from gateway.settings import load_settings
    from tests.gateway_fixtures import DEMO_PERSONS, DEMO_SIZE, TODAY

    config = create_demo_data(
        tmp_path_factory.mktemp("demo"), size=DEMO_SIZE, persons=DEMO_PERSONS, today=TODAY
    )
    return load_settings(config, env={})
