"""The gateway records every request in the audit trail before answering,
fails closed when it cannot, and lets subjects and auditors read the trail."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.audit import AuditEntry, AuditStore
from gateway.cli import main
from tests.gateway_fixtures import Gateway, replace_batch, with_source

PUBLIC = ("xinyong-huizhou", "PUBLIC_DISCLOSURE")
SUPERVISOR = ("hz-market-app", "SUPERVISION")
ICBC = ("bank-icbc-huizhou", "FINANCING")
AUDITOR = ("hz-credit-auditor", "AUDIT")


def audited(settings, url):
    return dataclasses.replace(settings, audit=dataclasses.replace(settings.audit, url=url))


@pytest.fixture
def settings(demo_settings, tmp_path):
    return audited(demo_settings, f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")


def trail(settings):
    """Every record of the trail, oldest first."""
    async def read():
        store = AuditStore(settings.audit.url)
        try:
            return list(reversed(await store.query(limit=10_000)))
        finally:
            await store.aclose()
    return asyncio.run(read())


def verify(settings):
    async def run():
        store = AuditStore(settings.audit.url)
        try:
            return await store.verify()
        finally:
            await store.aclose()
    return asyncio.run(run())


def ask(gateway, query, as_, **variables):
    request_id = uuid.uuid4().hex
    response = gateway.post(query, as_, headers={"X-Request-Id": request_id}, **variables)
    return request_id, response


def test_every_request_has_exactly_one_record(settings, population):
    firm = population.showcase["social_insurance_arrears"]
    queries = [
        ("query($u: USCC!) { entity(uscc: $u) { registration { name } } }", SUPERVISOR, 200, "ok"),
        ("query($u: USCC!) { entity(uscc: $u) { penalties { facts } socialInsurance { period } } }",
         PUBLIC, 200, "partial"),
        ("query($u: USCC!) { entity(uscc: $u) { repairs { status } } }",
         ("hz-procurement", "PROCUREMENT_REVIEW"), 403, "rejected"),
        ('{ entity(uscc: "91110000600037341N") { uscc } }', PUBLIC, 400, "invalid"),
    ]
    with Gateway(settings) as gateway:
        sent = []
        for query, as_, status, outcome in queries:
            variables = {"u": firm.uscc} if "$u" in query else {}
            request_id, response = ask(gateway, query, as_, **variables)
            assert response.status_code == status, response.text
            sent.append((request_id, as_, outcome))
    records = trail(settings)
    assert [(r.entry.request_id, r.entry.outcome) for r in records] == [
        (request_id, outcome) for request_id, _, outcome in sent]
    assert all(r.entry.kind == "release" for r in records)
    assert verify(settings).ok

    ok, partial, rejected, invalid = (r.entry for r in records)
    assert (ok.client_id, ok.organization, ok.purpose) == (
        "hz-market-app", "惠州市市场监督管理局", "SUPERVISION")
    assert ok.legal_basis == ("statutory_duty",)
    assert ok.subjects == (firm.uscc,)
    assert set(ok.released) == {"Query.entity", "Entity.registration", "Registration.name"}
    assert ok.sources == ("hz-market",) and ok.denied == () and ok.latency_ms > 0
    assert partial.legal_basis == ("public_information",)
    assert partial.denied == ("Entity.socialInsurance",)
    assert "Entity.penalties" in partial.released and "Entity.socialInsurance" not in partial.released
    assert partial.sources == ("hz-credit",)
    assert rejected.denied == ("Entity.repairs",) and rejected.sources == ()
    assert invalid.subjects == () and invalid.sources == ()


def test_withheld_masked_and_authorization_are_recorded(settings, population):
    person = population.person_showcase["person_dishonest_debtor"]
    with Gateway(settings) as gateway:
        ask(gateway, "query($u: USCC!) { entity(uscc: $u) { penalties { facts } } }", PUBLIC,
            u=population.showcase["penalty_minor"].uscc)
        ask(gateway, """query($id: ResidentId!) { person(idNumber: $id) { idNumber
            dishonestDebtorRecords { subjectIdNumber } } }""", PUBLIC, id=person.id_number)
        ask(gateway, "query($u: USCC!) { entity(uscc: $u) { taxRatings { grade } } }", ICBC,
            u=population.showcase["financing_authorized"].uscc)
        ask(gateway, "query($u: USCC!) { entity(uscc: $u) { taxRatings { grade } } }", ICBC,
            u=population.showcase["financing_expired"].uscc)
    withheld, masked, authorized, refused = (r.entry for r in trail(settings))
    assert withheld.withheld == 1
    assert set(masked.masked) == {"Person.idNumber", "DishonestDebtorRecord.subjectIdNumber"}
    (subject,) = masked.subjects
    assert subject.startswith("person:") and person.id_number not in subject
    assert authorized.legal_basis[0] == "public_information"
    assert authorized.legal_basis[1].startswith("enterprise_authorization:")
    assert refused.denied == ("Entity.taxRatings",) and refused.outcome == "partial"
    everything = json.dumps([dataclasses.asdict(r.entry) for r in trail(settings)], default=str)
    assert person.id_number not in everything


def test_refused_requests_are_security_events_without_data(settings):
    with Gateway(settings) as gateway:
        no_token = gateway.client.post("/graphql", json={"query": "{ __typename }"},
                                       headers={"X-Request-Id": "no-token-0001"})
        unknown = gateway.post("{ __typename }", ("xinyong-huizhou", "CURIOSITY"),
                               headers={"X-Request-Id": "bad-purpose-01"})
    assert (no_token.status_code, unknown.status_code) == (401, 400)
    first, second = (r.entry for r in trail(settings))
    assert (first.kind, first.request_id, first.client_id, first.outcome) == (
        "security_event", "no-token-0001", None, "unauthenticated")
    assert "no bearer" in first.detail.lower() or first.detail
    assert (second.client_id, second.purpose, second.outcome) == (
        "xinyong-huizhou", "CURIOSITY", "unknown_purpose")
    assert second.released == () and second.subjects == ()


def test_a_source_failure_is_recorded_as_partial(settings, population, tmp_path):
    broken = with_source(settings, "hz-court", url=f"sqlite+aiosqlite:///{tmp_path}/no/court.db")
    with Gateway(broken) as gateway:
        ask(gateway, """query($u: USCC!) { entity(uscc: $u) { registration { name }
            dishonestDebtorRecords { caseCode } } }""", SUPERVISOR,
            u=population.showcase["dishonest_debtor"].uscc)
    (record,) = trail(settings)
    assert record.entry.outcome == "partial"
    assert set(record.entry.sources) == {"hz-market", "hz-court"}


def test_concurrent_requests_keep_one_chain(settings, population):
    usccs = [e.uscc for e in population.enterprises[:40]]

    async def burst():
        import httpx2
        from gateway.app import create_app
        from gateway.sources import SourceRegistry
        from tests.gateway_fixtures import demo_token

        app = create_app(settings, SourceRegistry.from_settings(settings))
        headers = {"Authorization": f"Bearer {demo_token(settings, 'hz-market-app')}",
                   "X-Purpose-Of-Use": "SUPERVISION"}
        query = "query($u: USCC!) { entity(uscc: $u) { registration { name } } }"
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://gw") as client:
                responses = await asyncio.gather(*(
                    client.post("/graphql", json={"query": query, "variables": {"u": u}},
                                headers=headers)
                    for u in usccs * 3
                ))
        return [r.status_code for r in responses]

    assert asyncio.run(burst()) == [200] * 120
    records = trail(settings)
    assert len(records) == 120
    assert [r.seq for r in records] == list(range(records[0].seq, records[0].seq + 120))
    assert verify(settings).ok


class Proxy:
    """A TCP forwarder to PostgreSQL that a test can cut, as an outage would."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.loop = asyncio.new_event_loop()
        self.server = None
        self.writers: set[asyncio.StreamWriter] = set()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.port = self._call(self._start())

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", port)
        return self.server.sockets[0].getsockname()[1]

    async def _pipe(self, reader, writer):
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, upstream_writer}

        async def copy(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(copy(reader, upstream_writer), copy(upstream_reader, writer))

    def cut(self) -> None:
        async def stop():
            self.server.close()
            for writer in self.writers:
                writer.transport.abort()
            self.writers.clear()
        self._call(stop())

    def restore(self) -> None:
        self._call(self._start(self.port))


@contextmanager
def postgres_audit_database(server_databases):
    """A new PostgreSQL database of the test run's, dropped after the block."""
    url = server_databases.create("postgresql", "audit_outage")
    try:
        yield sa.make_url(url)
    finally:
        server_databases.drop(url)


def test_fail_closed_when_the_audit_database_goes_away(demo_settings, population,
                                                      server_databases):
    with postgres_audit_database(server_databases) as database:
        proxy = Proxy(database.host or "127.0.0.1", database.port or 5432)
        through_proxy = database.set(host="127.0.0.1", port=proxy.port)
        settings = audited(demo_settings, through_proxy.render_as_string(hide_password=False))
        query = "query($u: USCC!) { entity(uscc: $u) { registration { name } } }"
        uscc = population.showcase["clean"].uscc
        with Gateway(settings) as gateway:
            _, before = ask(gateway, query, SUPERVISOR, u=uscc)
            proxy.cut()
            _, during = ask(gateway, query, SUPERVISOR, u=uscc)
            proxy.restore()
            _, after = ask(gateway, query, SUPERVISOR, u=uscc)
        assert before.status_code == 200 and before.json()["data"]["entity"]["registration"]
        assert during.status_code == 503
        body = during.json()
        assert body["data"] is None
        assert body["errors"][0]["extensions"] == {"code": "AUDIT_UNAVAILABLE"}
        assert "registration" not in during.text
        assert after.status_code == 200
        direct = audited(demo_settings, database.render_as_string(hide_password=False))
        records = trail(direct)
        assert len(records) == 2 and [r.entry.outcome for r in records] == ["ok", "ok"]
        assert verify(direct).ok


def test_a_failing_source_releases_nothing_of_its_fields(settings, population, monkeypatch):
    firm, in_arrears = population.showcase["tax_d"], population.showcase["tax_arrears"]
    query = """query($u: USCC!, $l: [USCC!]!) {
      entity(uscc: $u) { registration { name } taxRatings { grade provenance { source } } }
      entities(usccs: $l) { taxArrears { amount } } }"""
    with Gateway(settings) as gateway:
        (tax,) = gateway.registry.serving("tax_ratings")

        async def down(keys):
            from core.errors import SourceUnavailable
            raise SourceUnavailable(tax.id, "tax database down")

        replace_batch(monkeypatch, tax, "tax_ratings", down)
        _, response = ask(gateway, query, SUPERVISOR, u=firm.uscc, l=[in_arrears.uscc])
    body = response.json()
    assert body["data"]["entity"]["taxRatings"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["SOURCE_UNAVAILABLE"]
    (record,) = trail(settings)
    assert record.entry.outcome == "partial"
    assert set(record.entry.released) == {
        "Query.entity", "Query.entities", "Entity.registration", "Registration.name",
        "Entity.taxArrears", "TaxArrear.amount"}


def test_an_enterprise_reads_who_looked_at_it_and_nobody_else(settings, population):
    own = population.showcase["clean"]
    other = population.showcase["penalty_minor"]
    me = ("enterprise-clean", "SELF_INQUIRY")
    history = """query($u: USCC!) { entity(uscc: $u) { registration { name } accessHistory(first: 10) {
        events { organization purpose { code name } categories outcome } hasNextPage } } }"""
    with Gateway(settings) as gateway:
        ask(gateway, "query($u: USCC!) { entity(uscc: $u) { penalties { facts } } }", PUBLIC, u=own.uscc)
        ask(gateway, "query($u: USCC!) { entity(uscc: $u) { taxRatings { grade } } }", ICBC, u=own.uscc)
        ask(gateway, "query($u: USCC!) { entity(uscc: $u) { penalties { facts } } }", PUBLIC, u=other.uscc)
        _, mine = ask(gateway, history, me, u=own.uscc)
        _, theirs = ask(gateway, history, me, u=other.uscc)
        _, search = ask(gateway, '{ searchEntities(name: "惠州") { hasNextPage } }', me)
    entity = mine.json()["data"]["entity"]
    assert entity["registration"]["name"] == own.name
    events = entity["accessHistory"]["events"]
    assert [e["organization"] for e in events] == ["中国工商银行股份有限公司惠州分行", "信用惠州网"]
    assert events[0]["purpose"] == {"code": "FINANCING", "name": "融资授信"}
    # The bank had no authorization: its request was recorded, but no tax data left.
    assert events[0]["categories"] == [] and events[0]["outcome"] == "partial"
    assert events[1]["categories"] == ["行政处罚信息"]
    assert theirs.json()["data"] is None
    assert theirs.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN_FOR_PURPOSE"
    assert search.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN_FOR_PURPOSE"


def test_the_auditor_reads_the_trail_by_client_purpose_subject_and_time(settings, population):
    firm = population.showcase["clean"]
    query = "query($u: USCC!) { entity(uscc: $u) { registration { name } } }"
    page = """query($c: String, $p: String, $s: String, $since: DateTime, $after: String) {
        auditTrail(clientId: $c, purpose: $p, subject: $s, since: $since, first: 2, after: $after) {
          records { seq clientId purpose subjects released outcome hash prevHash }
          endCursor hasNextPage } }"""
    with Gateway(settings) as gateway:
        for _ in range(3):
            ask(gateway, query, PUBLIC, u=firm.uscc)
        ask(gateway, query, SUPERVISOR, u=firm.uscc)
        ask(gateway, query, SUPERVISOR, u=population.showcase["tax_d"].uscc)
        first = gateway.query(page, AUDITOR, c="xinyong-huizhou")["data"]["auditTrail"]
        second = gateway.query(page, AUDITOR, c="xinyong-huizhou",
                               after=first["endCursor"])["data"]["auditTrail"]
        by_subject = gateway.query(page, AUDITOR, s=firm.uscc, p="SUPERVISION")["data"]["auditTrail"]
        future = gateway.query(page, AUDITOR, since=(datetime.now(timezone.utc)
                               + timedelta(hours=1)).isoformat())["data"]["auditTrail"]
        denied = gateway.post(page, PUBLIC)
    assert [r["clientId"] for r in first["records"] + second["records"]] == ["xinyong-huizhou"] * 3
    assert first["hasNextPage"] and not second["hasNextPage"]
    seqs = [r["seq"] for r in first["records"] + second["records"]]
    assert seqs == sorted(seqs, reverse=True)
    assert [r["subjects"] for r in by_subject["records"]] == [[firm.uscc]]
    assert future["records"] == []
    assert denied.json()["data"] == {"auditTrail": None}
    assert denied.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN_FOR_PURPOSE"


def test_audit_verify_command_reports_tampering(settings, population, capsys, monkeypatch):
    with Gateway(settings) as gateway:
        for case in ("clean", "tax_d", "tax_a"):
            ask(gateway, "query($u: USCC!) { entity(uscc: $u) { uscc } }", PUBLIC,
                u=population.showcase[case].uscc)
    config = str(Path(settings.auth.jwks_file).with_name("gateway.toml"))
    monkeypatch.setenv("CREDIT_GATEWAY_AUDIT_URL", settings.audit.url)
    assert main(["audit", "verify", "--config", config]) == 0
    assert "3 records" in capsys.readouterr().out

    second = trail(settings)[1].seq
    with sqlite3.connect(settings.audit.url.split("///", 1)[1]) as conn:
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        (records_table,) = [t for t in tables if "record" in t and "subject" not in t]
        conn.execute(f"DELETE FROM {records_table} WHERE seq = ?", (second,))
    assert main(["audit", "verify", "--config", config]) == 1
    assert str(second) in capsys.readouterr().out


def test_audit_prune_command_removes_records_past_retention(settings, capsys, monkeypatch):
    now = datetime.now(timezone.utc)
    ages = [timedelta(days=1200), timedelta(days=1100), timedelta(days=30), timedelta(0)]

    async def fill():
        async with AuditStore(settings.audit.url) as store:
            await store.migrate()
            for n, age in enumerate(ages):
                await store.append(AuditEntry(
                    kind="release", request_id=f"req-{n}", recorded_at=now - age, client_id="c",
                    organization=None, purpose="AUDIT", legal_basis=(), subjects=(), released=(),
                    masked=(), denied=(), withheld=0, sources=(), outcome="ok", latency_ms=1))
    asyncio.run(fill())
    config = str(Path(settings.auth.jwks_file).with_name("gateway.toml"))
    monkeypatch.setenv("CREDIT_GATEWAY_AUDIT_URL", settings.audit.url)
    assert settings.audit.retention_days == 1096

    assert main(["audit", "prune", "--config", config, "--dry-run"]) == 0
    assert "would remove 2 records (1..2)" in capsys.readouterr().out
    assert [r.seq for r in trail(settings)] == [1, 2, 3, 4]
    assert main(["audit", "prune", "--config", config]) == 0
    assert "removed 2 records (1..2)" in capsys.readouterr().out
    assert [r.entry.kind for r in trail(settings)] == ["release", "release", "maintenance"]
    assert main(["audit", "prune", "--config", config]) == 0
    assert "nothing to prune" in capsys.readouterr().out
    assert main(["audit", "verify", "--config", config]) == 0
    assert "3 records" in capsys.readouterr().out


def test_control_characters_never_reach_the_trail(settings, population):
    with Gateway(settings) as gateway:
        _, refused = ask(gateway, '{ auditTrail(clientId: "x\\u0000") { hasNextPage } }', AUDITOR)
        request_id = uuid.uuid4().hex
        gateway.post("query($u: USCC!) { entity(uscc: $u) { registration { name } } }",
                     ("shenzhen-gateway", "LICENSING_REVIEW"),
                     headers={"X-Request-Id": request_id,
                              "X-On-Behalf-Of": "%E6%B7%B1%E5%9C%B3%00%E2%80%8B%E5%B8%82"},
                     u=population.showcase["clean"].uscc)
    (error,) = refused.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "U+0000" in error["message"]
    (record,) = [r for r in trail(settings) if r.entry.request_id == request_id]
    assert record.entry.detail == "on behalf of 深圳市"


# --- a SQLite trail's file removed, replaced or locked while the gateway runs ------------

REGISTRATION = "query($u: USCC!) { entity(uscc: $u) { registration { name } } }"


@pytest.mark.parametrize("how", ["file removed", "directory removed", "file replaced"])
def test_no_data_is_released_once_the_trail_file_is_removed_or_replaced(
        demo_settings, population, tmp_path, caplog, how):
    """SQLite went on "committing" into the unlinked file: data was released
    and its records lost, while ``audit verify`` later found the trail intact."""
    import os
    import shutil

    folder = tmp_path / "trail"
    folder.mkdir()
    path = folder / "audit.db"
    settings = audited(demo_settings, f"sqlite+aiosqlite:///{path}")
    uscc = population.showcase["clean"].uscc
    with Gateway(settings) as gateway:
        assert gateway.post(REGISTRATION, u=uscc).status_code == 200
        if how == "file removed":
            path.unlink()
        elif how == "directory removed":
            shutil.rmtree(folder)
        else:
            asyncio.run(_migrated(tmp_path / "other.db"))
            os.replace(tmp_path / "other.db", path)
        during = [gateway.post(REGISTRATION, u=uscc) for _ in range(10)]
        ready = gateway.client.get("/readyz")
    for response in during:
        assert response.status_code == 503, response.text
        body = response.json()
        assert body.get("data") is None and "registration" not in response.text
        assert body["errors"][0]["extensions"] == {"code": "AUDIT_UNAVAILABLE"}
    assert ready.status_code == 503 and ready.json()["audit"] == "unavailable"
    assert any(r.levelname == "CRITICAL" and how.split()[-1] in r.getMessage()
               for r in caplog.records)  # not silently
    if how != "file replaced":
        assert not path.exists()  # nor "recorded" in a new, empty trail


async def _migrated(path):
    async with AuditStore(f"sqlite+aiosqlite:///{path}") as store:
        await store.migrate()


def test_a_refusal_does_not_wait_for_a_locked_trail(settings):
    """A bad token is answered within the refusal's own short bound while
    another process holds the trail's write lock, not after the release bound
    (10 s); nothing is released by a refusal."""
    import time

    with Gateway(settings) as gateway:
        holder = sqlite3.connect(Path(settings.audit.url.split("///", 1)[1]),
                                 isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            started = time.monotonic()
            no_token = gateway.client.post("/graphql", json={"query": "{ __typename }"},
                                           headers={"X-Request-Id": "locked-trail-01"})
            bad_token = gateway.client.post(
                "/graphql", json={"query": "{ __typename }"},
                headers={"Authorization": "Bearer not-a-token", "X-Purpose-Of-Use": "SUPERVISION"})
            elapsed = time.monotonic() - started
            holder.execute("ROLLBACK")
        finally:
            holder.close()
    assert (no_token.status_code, bad_token.status_code) == (401, 401)
    assert elapsed < 5  # two refusals of 0.5 s at most each, far from 2 x 10 s
