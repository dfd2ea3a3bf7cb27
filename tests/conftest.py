"""Shared fixtures.

``database_url`` runs a test once per database kind the connectors must
support: SQLite always; PostgreSQL (127.0.0.1:5432) and MariaDB
(127.0.0.1:3306) where they run. Without them a test is skipped with the
reason, except under CI (``CI`` set), where their absence is a failure.

Each test run (pytest session) works in databases of its own on those
servers, ``credit_gw_test_<pid>_<random>`` and databases named after it
(``server_databases``), created when first needed and dropped when the run
ends, pass or fail: two runs on one machine never see each other's tables.
``TEST_POSTGRESQL_URL`` and ``TEST_MARIADB_URL`` name the server and a
database to connect to while creating and dropping them (by default the
``postgres`` maintenance database; on MariaDB none).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

SERVER_URLS = {  # where to connect to create and drop a run's databases
    "postgresql": os.environ.get(
        "TEST_POSTGRESQL_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get("TEST_MARIADB_URL", "mysql+aiomysql://root@127.0.0.1:3306"),
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
            _reachable[kind] = f"{kind} at {_shown(SERVER_URLS[kind])} is not reachable: {exc!r}"
    return _reachable[kind]


def require_server(kind: str) -> None:
    """Skip the test when the ``kind`` server is absent; under CI, fail it."""
    problem = _server_problem(kind)
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide {kind}: {problem}")
        pytest.skip(problem)


def _shown(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


async def _admin(kind: str, *statements: str) -> list[sa.Row]:
    """Run ``statements`` on the ``kind`` server outside a transaction (CREATE and
    DROP DATABASE); the rows of the last one, if it returns any."""
    engine = create_async_engine(SERVER_URLS[kind], isolation_level="AUTOCOMMIT")
    rows: list[sa.Row] = []
    try:
        async with asyncio.timeout(60), engine.connect() as conn:
            for statement in statements:
                result = await conn.execute(sa.text(statement))
                rows = list(result) if result.returns_rows else []
    finally:
        await engine.dispose()
    return rows


class ServerDatabases:
    """The databases this test run owns on the PostgreSQL and MariaDB servers.

    ``url(kind)`` is the run's database, shared by its tests (each creates,
    dropping first, the tables it uses); ``create(kind, purpose)`` makes one
    more for tests that need a database nobody else writes to, to be handed
    back with ``drop``. All are named after the run (``name``) and dropped by
    ``drop_all`` at the end of the run.
    """

    def __init__(self) -> None:
        self.name = f"credit_gw_test_{os.getpid()}_{secrets.token_hex(4)}"
        self._shared: dict[str, str] = {}
        self._created: dict[str, list[str]] = {"postgresql": [], "mariadb": []}
        self._problems: dict[str, str] = {}

    def url(self, kind: str) -> str:
        """The URL of the run's own ``kind`` database, created on first use."""
        if kind not in self._shared:
            self._shared[kind] = self._create(kind, self.name)
        return self._shared[kind]

    def create(self, kind: str, purpose: str) -> str:
        """The URL of a new, empty ``kind`` database of the run's."""
        return self._create(kind, f"{self.name}_{purpose}_{secrets.token_hex(3)}")

    def drop(self, url: str) -> None:
        """Drop a database made by ``create`` (open connections to it are ended)."""
        parsed = sa.make_url(url)
        kind = "postgresql" if parsed.get_backend_name() == "postgresql" else "mariadb"
        name = parsed.database
        asyncio.run(self._drop(kind, name))
        self._created[kind].remove(name)

    def drop_all(self) -> None:
        """Drop every database the run made; raise after trying all if any failed."""
        failures = []
        for kind, names in self._created.items():
            for name in list(names):
                try:
                    asyncio.run(self._drop(kind, name))
                    names.remove(name)
                except Exception as exc:
                    failures.append(f"{kind} database {name}: {exc!r}")
        self._shared.clear()
        if failures:
            raise RuntimeError("could not drop the test run's databases: " + "; ".join(failures))

    def _create(self, kind: str, name: str) -> str:
        require_server(kind)
        if kind not in self._problems:
            try:
                quoted = f'"{name}"' if kind == "postgresql" else f"`{name}`"
                extra = "" if kind == "postgresql" else " CHARACTER SET utf8mb4"
                asyncio.run(_admin(kind, f"CREATE DATABASE {quoted}{extra}"))
                self._created[kind].append(name)
                return sa.make_url(SERVER_URLS[kind]).set(database=name).render_as_string(
                    hide_password=False)
            except Exception as exc:
                self._problems[kind] = (f"cannot create a test database on {kind} at "
                                        f"{_shown(SERVER_URLS[kind])}: {exc!r}")
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide {kind}: {self._problems[kind]}")
        pytest.skip(self._problems[kind])

    @staticmethod
    async def _drop(kind: str, name: str) -> None:
        if kind == "postgresql":
            await _admin(kind, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        # MariaDB's DROP DATABASE waits for every open transaction on its tables: end
        # the run's leftover connections to it first.
        sessions = await _admin(kind, "SELECT ID FROM information_schema.PROCESSLIST "
                                      f"WHERE DB = '{name}' AND ID <> CONNECTION_ID()")
        for (session,) in sessions:
            try:
                await _admin(kind, f"KILL CONNECTION {int(session)}")
            except Exception:  # ended meanwhile
                pass
        await _admin(kind, "SET SESSION lock_wait_timeout = 30",
                     f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def server_databases() -> Iterator[ServerDatabases]:
    """This run's databases on the servers, dropped when the run ends."""
    databases = ServerDatabases()
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An async SQLAlchemy URL of an empty-enough database of each supported kind.

    Tests create (dropping first) the tables they use: a run's server
    databases are shared by its tests (never with another run's).
    """
    kind = request.param
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'legacy.db'}"
    require_server(kind)
    return request.getfixturevalue("server_databases").url(kind)


@pytest.fixture(scope="session")
def population():
    from tests.gateway_fixtures import DEMO_PERSONS, DEMO_SIZE, TODAY
    from demo.population import build_population

    return build_population(DEMO_SIZE, DEMO_PERSONS, today=TODAY)


@pytest.fixture(scope="session")
def generated_demo_settings(tmp_path_factory, population):
    """Settings for the demo databases as the demo writes them, made once per
    test session (its banks may run only their persisted operations), save
    that checkpoints are signed only when a test asks (the publisher's
    interval never passes during a test: tests do not depend on its timing)."""
    import dataclasses

    from demo.generate import create_demo_data
    from gateway.settings import load_settings
    from tests.gateway_fixtures import DEMO_PERSONS, DEMO_SIZE, TODAY

    config = create_demo_data(
        tmp_path_factory.mktemp("demo"), size=DEMO_SIZE, persons=DEMO_PERSONS, today=TODAY
    )
    settings = load_settings(config, env={})
    return dataclasses.replace(settings, transparency=dataclasses.replace(
        settings.transparency, interval_seconds=86_000))


@pytest.fixture(scope="session")
def demo_settings(generated_demo_settings):
    """The demo's settings with no client persisted-only, so tests may send
    query text as the demo's banks (tests/test_operations.py tests the demo's
    registry as generated)."""
    from tests.gateway_fixtures import without_persisted_only

    return without_persisted_only(generated_demo_settings)


@pytest.fixture
def config_with_own_operations(generated_demo_settings, tmp_path):
    """A configuration of the demo's with an operations file of its own
    (``ops/operations.toml``, relative to the configuration, not yet there)."""
    import re
    from pathlib import Path

    demo_dir = Path(generated_demo_settings.auth.jwks_file).parent
    text = (demo_dir / "gateway.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^operations_file = .*$', 'operations_file = "ops/operations.toml"', text)
    text = text.replace('jwks_file = "jwks.json"', f'jwks_file = "{demo_dir / "jwks.json"}"')
    text = text.replace('clients_file = "clients.toml"',
                        f'clients_file = "{demo_dir / "clients.toml"}"')
    text = text.replace('key_file = "audit-log.key"', f'key_file = "{demo_dir / "audit-log.key"}"')
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path
