"""``credit-gateway serve``: several worker processes from the packaged factory
(gateway/server.py), a graceful shutdown on SIGTERM that keeps every audit
record, and the deployment's configuration (secrets read from files).

The servers run in subprocesses over the demo data, each with an audit trail
of its own (``CREDIT_GATEWAY_AUDIT_URL``), on a free port.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import signal
import sqlite3
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from core.errors import ConfigurationError
from gateway.audit import AuditStore, AuditUnavailable
from gateway.cli import build_parser, main
from gateway.server import metrics_multiprocess_dir
from gateway.settings import load_settings
from tests.audit_support import entry
from tests.conftest import SERVER_URLS, _admin, require_server
from tests.gateway_fixtures import demo_token
from tests.test_limits import REDIS_URL, redis_prefix  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = ("xinyong-huizhou", "PUBLIC_DISCLOSURE")
SUPERVISOR = ("hz-market-app", "SUPERVISION")
RECORD = 'query Registration($u: USCC!) { entity(uscc: $u) { registration { name } } }'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def config(generated_demo_settings) -> Path:
    return Path(generated_demo_settings.auth.jwks_file).with_name("gateway.toml")


class Served:
    """``credit-gateway serve`` in a subprocess (its own session: its workers go with it)."""

    def __init__(self, config: Path, tmp_path: Path, workers: int, env: dict[str, str],
                 graceful: float = 10.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.audit_url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
        self.env = {**os.environ, "CREDIT_GATEWAY_AUDIT_URL": self.audit_url, **env}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log_path = tmp_path / "serve.log"
        self.config = config
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config),
             "--port", str(self.port), "--workers", str(workers),
             "--graceful-timeout", str(graceful)],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx2.get(f"{self.url}/livez", timeout=1).status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"serve did not answer within {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (as an orchestrator sends it), then the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"serve did not stop within {timeout} s:\n{self.log()}") from None

    def close(self) -> None:
        if self.process.poll() is None:  # a failed test: leave nothing running
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
        self._log.close()


@contextmanager
def served(config: Path, tmp_path: Path, workers: int = 2, **env: str) -> Iterator[Served]:
    server = Served(config, tmp_path, workers, env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.close()


def worker_pids(server: Served, wanted: int, timeout: float = 30) -> set[int]:
    """The ``X-Worker-Pid`` of the processes answering ``/livez``, each on a new
    connection, until ``wanted`` of them have answered."""
    pids: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(pids) < wanted and time.monotonic() < deadline:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: httpx2.get(f"{server.url}/livez", timeout=5),
                                    range(16)))
        pids |= {int(a.headers["X-Worker-Pid"]) for a in answers}
    return pids


def parent_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def graphql(server: Served, settings, as_, query, request_id: str, **variables):
    client_id, purpose = as_
    return httpx2.post(f"{server.url}/graphql", json={"query": query, "variables": variables},
                       headers={"Authorization": f"Bearer {demo_token(settings, client_id)}",
                                "X-Purpose-Of-Use": purpose, "X-Request-Id": request_id},
                       timeout=60)


def recorded_request_ids(server: Served) -> list[str]:
    path = server.audit_url.removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute(
            "SELECT request_id FROM audit_records WHERE kind = 'release' ORDER BY seq")]


def audit_verify(server: Served) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "audit", "verify", "--config",
                           str(server.config)], cwd=ROOT, env=server.env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def a_uscc(population):
    return population.enterprises[0].uscc


# --- several workers -----------------------------------------------------------------------

def test_serve_with_two_workers_answers_from_both(config, tmp_path, generated_demo_settings,
                                                  a_uscc):
    with served(config, tmp_path, workers=2) as server:
        pids = worker_pids(server, 2)
        assert len(pids) == 2, server.log()
        assert {parent_of(pid) for pid in pids} == {server.process.pid}  # uvicorn's supervisor
        # prometheus-client's multiprocess directory: a fresh one, the same for both.
        directories = {environment_of(pid).get("PROMETHEUS_MULTIPROC_DIR") for pid in pids}
        (directory,) = directories
        assert directory and Path(directory).is_dir()
        ids = [uuid.uuid4().hex for _ in range(8)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda rid: graphql(server, generated_demo_settings, PUBLIC,
                                                        RECORD, rid, u=a_uscc), ids))
        assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
        assert all(a.json()["data"]["entity"]["registration"] for a in answers)
        assert server.stop() == 0, server.log()
    assert not Path(directory).exists()  # removed when the workers are gone
    assert sorted(recorded_request_ids(server)) == sorted(ids)
    log = server.log()
    # Each worker counts the rate limits alone without a storage_url: said once, at start.
    assert log.count("each worker counts the rate limits alone") == 1


def test_two_workers_share_the_rate_limits_through_redis(config, tmp_path,
                                                         generated_demo_settings,
                                                         redis_prefix):
    registry = Path(generated_demo_settings.auth.clients_file).read_text(encoding="utf-8")
    clients = tmp_path / "clients.toml"
    clients.write_text(registry.replace("[clients.xinyong-huizhou]\n",
                                        '[clients.xinyong-huizhou]\nrate_limit = "6/minute"\n'),
                       encoding="utf-8")
    with served(config, tmp_path, workers=2, CREDIT_GATEWAY_AUTH_CLIENTS_FILE=str(clients),
                CREDIT_GATEWAY_LIMITS_STORAGE_URL=f"async+{REDIS_URL}",
                CREDIT_GATEWAY_LIMITS_KEY_PREFIX=redis_prefix) as server:
        assert len(worker_pids(server, 2)) == 2, server.log()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(
                lambda rid: graphql(server, generated_demo_settings, PUBLIC, "{ __typename }",
                                    rid), [uuid.uuid4().hex for _ in range(12)]))
        assert server.stop() == 0, server.log()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 6 + [429] * 6, server.log()  # 6 in all, not 6 per worker
    assert "each worker counts the rate limits alone" not in server.log()


# --- graceful shutdown ---------------------------------------------------------------------

@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_requests_in_flight_finish_and_keeps_their_audit_records(
        config, tmp_path, generated_demo_settings, a_uscc, workers):
    """Requests that take 1.5 s (the market database delayed) are in flight
    when SIGTERM arrives: they are answered, the server stops and the audit
    trail holds a record of each, its chain intact."""
    slow = {"CREDIT_GATEWAY_SOURCE_HZ_MARKET_SIMULATED_LATENCY_MS": "1500"}
    ids = [f"graceful-{workers}-{i:02d}-{uuid.uuid4().hex[:8]}" for i in range(6)]
    with served(config, tmp_path, workers=workers, **slow) as server:
        with concurrent.futures.ThreadPoolExecutor(len(ids)) as pool:
            pending = [pool.submit(graphql, server, generated_demo_settings, SUPERVISOR,
                                   RECORD, rid, u=a_uscc) for rid in ids]
            time.sleep(0.7)  # every request is waiting for the market database
            assert not any(f.done() for f in pending)
            server.process.send_signal(signal.SIGTERM)
            answers = [f.result(timeout=60) for f in pending]
        # One process re-raises the SIGTERM once shut down (uvicorn: "terminated by
        # SIGTERM", 143 in a shell); uvicorn's supervisor of several exits 0.
        assert server.stop() == (-signal.SIGTERM if workers == 1 else 0), server.log()
        # No new connection is accepted once it has stopped.
        with pytest.raises(httpx2.HTTPError):
            httpx2.get(f"{server.url}/livez", timeout=2)
    assert [a.status_code for a in answers] == [200] * len(ids), [a.text for a in answers]
    assert all(a.json()["data"]["entity"]["registration"] for a in answers)
    assert sorted(recorded_request_ids(server)) == sorted(ids)
    verified = audit_verify(server)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith(f"audit trail OK: {len(ids)} records"), verified.stdout


# --- the command line and the factory ------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_serve_refuses_a_bad_number_of_workers(value, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["serve", "--config", "x.toml", "--workers", value])
    assert exit_.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_serve_with_workers_stops_at_a_configuration_error_once(tmp_path, capsys):
    broken = tmp_path / "gateway.toml"
    broken.write_text("[gateway]\nmax_cost = -1\n", encoding="utf-8")
    assert main(["serve", "--config", str(broken), "--workers", "2",
                 "--port", str(free_port())]) == 2
    assert "configuration error" in capsys.readouterr().err


def test_the_factory_reads_the_configuration_named_in_the_environment(config, monkeypatch):
    from starlette.testclient import TestClient

    from gateway.server import create_app_from_env

    monkeypatch.delenv("CREDIT_GATEWAY_CONFIG", raising=False)
    with pytest.raises(ConfigurationError, match="set CREDIT_GATEWAY_CONFIG"):
        create_app_from_env()
    monkeypatch.setenv("CREDIT_GATEWAY_CONFIG", str(config))
    with TestClient(create_app_from_env()) as client:
        live = client.get("/livez")
    assert live.json() == {"status": "ok"}
    assert live.headers["X-Worker-Pid"] == str(os.getpid())


def test_the_metrics_directory_is_fresh_for_several_workers_and_removed(monkeypatch, tmp_path):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with metrics_multiprocess_dir(1) as none:
        assert none is None and "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    with metrics_multiprocess_dir(3) as made:
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == made
        assert Path(made).is_dir() and not any(Path(made).iterdir())
    assert not Path(made).exists() and "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    # The operator's own directory is used as it is, and kept.
    own = tmp_path / "metrics"
    own.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(own))
    with metrics_multiprocess_dir(2) as used:
        assert used == str(own)
    assert own.is_dir()


# --- secrets from files --------------------------------------------------------------------

SETTINGS = """
[auth]
issuer = "urn:test:issuer"
audience = "urn:test:gateway"
jwks_file = "jwks.json"
clients_file = "clients.toml"

[audit]
url = "sqlite+aiosqlite:///audit.db"
{audit}

[sources.sz-gateway]
connector = "shenzhen"
url = "https://credit.sz.example/graphql"
department = "深圳市公共信用中心"
city = "深圳"
divisions = ["4403"]
token_url = "https://credit.sz.example/oauth/token"
client_id = "huizhou-gateway"
{source}
"""


def write(tmp_path: Path, audit: str, source: str = "") -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(SETTINGS.format(audit=audit, source=source), encoding="utf-8")
    return path


def test_secrets_are_read_from_files_named_in_the_file(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "subject-key").write_text("k" * 40 + "\n")
    (secrets / "sz-secret").write_text("  s3cret\n")
    settings = load_settings(write(tmp_path, 'subject_key_file = "secrets/subject-key"',
                                   f'client_secret_file = "{secrets / "sz-secret"}"'), env={})
    assert settings.audit.subject_key == "k" * 40
    assert settings.sources[0].client_secret == "s3cret"


def test_secrets_files_can_be_named_in_the_environment(tmp_path):
    (tmp_path / "key").write_text("e" * 32)
    (tmp_path / "audit-url").write_text("postgresql+asyncpg://gateway:pw@audit-db/audit")
    (tmp_path / "sz").write_text("from-a-file")
    settings = load_settings(write(tmp_path, 'subject_key = "in the file, replaced........."',
                                   'client_secret = "in the file"'), env={
        "CREDIT_GATEWAY_AUDIT_SUBJECT_KEY_FILE": str(tmp_path / "key"),
        "CREDIT_GATEWAY_AUDIT_URL_FILE": "audit-url",  # relative to the configuration
        "CREDIT_GATEWAY_SOURCE_SZ_GATEWAY_CLIENT_SECRET_FILE": str(tmp_path / "sz"),
    })
    assert settings.audit.subject_key == "e" * 32
    assert settings.audit.url == "postgresql+asyncpg://gateway:pw@audit-db/audit"
    assert settings.sources[0].client_secret == "from-a-file"
    # ... and a value in the environment replaces a file named in the file.
    (tmp_path / "file-key").write_text("f" * 32)
    settings = load_settings(write(tmp_path, 'subject_key_file = "file-key"'),
                             env={"CREDIT_GATEWAY_AUDIT_SUBJECT_KEY": "v" * 32})
    assert settings.audit.subject_key == "v" * 32


@pytest.mark.parametrize(("audit", "source", "message"), [
    ('subject_key = "' + "k" * 32 + '"\nsubject_key_file = "key"', "",
     "set either subject_key or subject_key_file, not both"),
    ('subject_key_file = "missing"', "", r"subject_key_file: .*missing cannot be read"),
    ('subject_key_file = "empty"', "", r"subject_key_file: .*empty is empty"),
    ('subject_key_file = "short"', "", "subject_key must have at least 32 characters"),
    ('subject_key = "' + "k" * 32 + '"', 'department_file = "x"',
     r"unknown key\(s\) \['department_file'\]"),
])
def test_bad_secret_files_are_refused(tmp_path, audit, source, message):
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "short").write_text("abc")
    with pytest.raises(ConfigurationError, match=message):
        load_settings(write(tmp_path, audit, source), env={})


# --- the database roles --------------------------------------------------------------------

def test_the_gateway_needs_only_its_grants_on_the_audit_tables():
    """The README's grants, on PostgreSQL: the schema's owner migrates; the
    gateway's role (SELECT and INSERT on the records and their subjects, SELECT
    and UPDATE on the chain head, SELECT on the anchor and alembic's version)
    starts, checks readiness, appends, verifies and queries, and can neither
    change nor remove a record; pruning takes the pruner's grants."""
    require_server("postgresql")
    name = f"credit_gw_roles_{os.getpid()}_{secrets.token_hex(3)}"
    owner, gateway, pruner = f"{name}_owner", f"{name}_gateway", f"{name}_pruner"
    server = sa.make_url(SERVER_URLS["postgresql"])

    def url(role: str | None = None) -> str:
        at = server.set(database=name)
        if role is not None:
            at = at.set(username=role, password="pw")
        return at.render_as_string(hide_password=False)

    async def scenario() -> None:
        store = AuditStore(url(owner))
        await store.migrate()  # creates the schema: the owner's job, once per release
        await store.aclose()
        both = f"{gateway}, {pruner}"
        await _admin_at(url(), f"GRANT SELECT, INSERT ON audit_records, audit_subjects, audit_tree "
                        f"TO {both}",
                        f"GRANT SELECT, INSERT, UPDATE ON audit_checkpoints TO {both}",
                        f"GRANT SELECT, UPDATE ON audit_head TO {both}",
                        f"GRANT SELECT ON audit_anchor, audit_alembic_version TO {both}",
                        f"GRANT DELETE ON audit_records, audit_subjects TO {pruner}",
                        f"GRANT UPDATE ON audit_anchor TO {pruner}")
        store = AuditStore(url(gateway))
        try:
            await store.migrate()  # at head: reads the version, changes nothing
            await store.check()
            for n in range(3):
                await store.append(entry(n))
            assert (await store.verify()).records == 3
            assert len(await store.query(limit=10)) == 3
            with pytest.raises(AuditUnavailable):
                await store.prune(datetime.now(UTC) + timedelta(days=1))
        finally:
            await store.aclose()
        engine = create_async_engine(url(gateway))
        try:
            for statement in ("DELETE FROM audit_records", "TRUNCATE audit_subjects",
                              "UPDATE audit_records SET outcome = 'x'",
                              "UPDATE audit_anchor SET seq = 5", "DROP TABLE audit_records"):
                with pytest.raises(sa.exc.DBAPIError, match="permission denied|must be owner"):
                    async with engine.begin() as conn:
                        await conn.execute(sa.text(statement))
        finally:
            await engine.dispose()
        store = AuditStore(url(pruner))
        try:
            pruned = await store.prune(datetime.now(UTC) + timedelta(days=1))
            assert pruned.removed == 3
            assert (await store.verify()).ok
        finally:
            await store.aclose()

    async def _admin_at(at: str, *statements: str) -> None:
        engine = create_async_engine(at, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                for statement in statements:
                    await conn.execute(sa.text(statement))
        finally:
            await engine.dispose()

    roles = (owner, gateway, pruner)
    asyncio.run(_admin("postgresql", *(f"CREATE ROLE {r} LOGIN PASSWORD 'pw'" for r in roles),
                       f'CREATE DATABASE "{name}" OWNER {owner}'))
    try:
        asyncio.run(_admin_at(url(), "REVOKE ALL ON SCHEMA public FROM PUBLIC",
                              f"GRANT USAGE, CREATE ON SCHEMA public TO {owner}",
                              f"GRANT USAGE ON SCHEMA public TO {gateway}, {pruner}"))
        asyncio.run(scenario())
    finally:
        asyncio.run(_admin("postgresql", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                           *(f"DROP ROLE IF EXISTS {r}" for r in roles)))
