"""``/livez`` answers while the process does; ``/readyz`` (and ``/healthz``, its
alias) reads every source's data and checks that the audit trail accepts
writes, and names what is not ready."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.audit import AuditUnavailable
from core.errors import CircuitOpen, SourceUnavailable
from gateway.health import readiness_report
from tests.gateway_fixtures import SOURCE_IDS, Gateway, with_source

ALL_OK = {"status": "ok", "sources": {i: "ok" for i in SOURCE_IDS}, "audit": "ok"}


def audited(settings, url):
    return dataclasses.replace(settings, audit=dataclasses.replace(settings.audit, url=url))


@pytest.fixture
def settings(demo_settings, tmp_path):
    return audited(demo_settings, f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")


def source_path(settings, source_id: str) -> Path:
    (source,) = (s for s in settings.sources if s.id == source_id)
    return Path(source.url.split("///", 1)[1])


def unavailable(*sources: str, audit: str = "ok") -> dict:
    states = {i: "unavailable" if i in sources else "ok" for i in SOURCE_IDS}
    return {"status": "unavailable", "sources": states, "audit": audit}


def test_a_ready_gateway(settings):
    with Gateway(settings) as gateway:
        live = gateway.client.get("/livez")
        ready = gateway.client.get("/readyz")
        health = gateway.client.get("/healthz")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, ALL_OK)
    assert (health.status_code, health.json()) == (200, ALL_OK)
    assert ready.headers["content-type"] == "application/json"


def test_a_missing_source_file_is_not_ready_and_is_not_created(settings, tmp_path):
    missing = tmp_path / "tax.db"
    broken = with_source(settings, "hz-tax", url=f"sqlite+aiosqlite:///{missing}")
    with Gateway(broken) as gateway:
        live = gateway.client.get("/livez")
        ready = gateway.client.get("/readyz")
        health = gateway.client.get("/healthz")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (503, unavailable("hz-tax"))
    assert (health.status_code, health.json()) == (503, unavailable("hz-tax"))
    assert not missing.exists()


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 512])
def test_a_source_file_that_is_not_the_database_is_not_ready(settings, tmp_path, content):
    """``SELECT 1`` succeeded on any file; the check reads the source's tables."""
    foreign = tmp_path / "court.db"
    foreign.write_bytes(content)
    broken = with_source(settings, "hz-court", url=f"sqlite+aiosqlite:///{foreign}")
    with Gateway(broken) as gateway:
        ready = gateway.client.get("/readyz")
    assert (ready.status_code, ready.json()) == (503, unavailable("hz-court"))
    assert foreign.read_bytes() == content


def test_a_locked_source_is_not_ready(settings, tmp_path):
    copy = tmp_path / "hrss.db"
    with sqlite3.connect(source_path(settings, "hz-hrss")) as original, \
            sqlite3.connect(copy) as target:
        original.backup(target)
    locked = with_source(settings, "hz-hrss", url=f"sqlite+aiosqlite:///{copy}")
    holder = sqlite3.connect(copy, isolation_level=None)
    try:
        with Gateway(locked) as gateway:
            holder.execute("BEGIN EXCLUSIVE")
            started = time.monotonic()
            ready = gateway.client.get("/readyz")
            elapsed = time.monotonic() - started
            holder.execute("ROLLBACK")
            again = gateway.client.get("/readyz")
    finally:
        holder.close()
    assert (ready.status_code, ready.json()) == (503, unavailable("hz-hrss"))
    assert elapsed < 4  # a fraction of a second (the busy timeout), not the source's 5 s
    assert (again.status_code, again.json()) == (200, ALL_OK)


def test_a_locked_audit_trail_is_not_ready(settings, tmp_path):
    holder = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    try:
        with Gateway(settings) as gateway:
            holder.execute("BEGIN EXCLUSIVE")  # another process holds the trail's write lock
            started = time.monotonic()
            ready = gateway.client.get("/readyz")
            elapsed = time.monotonic() - started
            live = gateway.client.get("/livez")
            holder.execute("ROLLBACK")
            again = gateway.client.get("/readyz")
    finally:
        holder.close()
    assert (ready.status_code, ready.json()) == (503, unavailable(audit="unavailable"))
    assert elapsed < 6  # the health check's own bound (2 s), not the trail's 10 s
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (again.status_code, again.json()) == (200, ALL_OK)


def test_a_removed_audit_trail_is_not_ready(settings, tmp_path):
    with Gateway(settings) as gateway:
        assert gateway.client.get("/readyz").status_code == 200
        (tmp_path / "audit.db").unlink()
        ready = gateway.client.get("/readyz")
        health = gateway.client.get("/healthz")
        live = gateway.client.get("/livez")
    assert (ready.status_code, ready.json()) == (503, unavailable(audit="unavailable"))
    assert (health.status_code, health.json()) == (503, unavailable(audit="unavailable"))
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert not (tmp_path / "audit.db").exists()


# --- the report, over stand-in sources and trail -----------------------------------------


class Registry:
    def __init__(self, **connectors):
        self.connectors = connectors


class Part:
    """A source (of this city) or trail whose check does what ``outcome`` says."""

    is_partner = False

    def __init__(self, outcome=None):
        self.outcome = outcome

    async def check(self, timeout_seconds=None):
        if self.outcome == "hang":
            await asyncio.sleep(60)
        elif self.outcome is not None:
            raise self.outcome


@pytest.mark.anyio
async def test_every_part_is_checked_at_once_and_bounded(caplog):
    registry = Registry(
        fine=Part(), slow=Part("hang"), down=Part(SourceUnavailable("down", "down")),
        suspended=Part(CircuitOpen("suspended", "open")), buggy=Part(RuntimeError("bug")),
    )
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="gateway.health"):
        report = await readiness_report(registry, Part("hang"), timeout_seconds=0.2)
    assert time.monotonic() - started < 3  # all at once, each within 0.2 s
    assert report == {"status": "unavailable", "audit": "unavailable", "sources": {
        "fine": "ok", "slow": "unavailable", "down": "unavailable",
        "suspended": "unavailable", "buggy": "unavailable"}}
    assert any(r.levelno == logging.ERROR and "buggy" in r.getMessage() for r in caplog.records)

    report = await readiness_report(Registry(fine=Part()), Part(AuditUnavailable("x")))
    assert report == {"status": "unavailable", "sources": {"fine": "ok"}, "audit": "unavailable"}
    report = await readiness_report(Registry(fine=Part()), Part())
    assert report == {"status": "ok", "sources": {"fine": "ok"}, "audit": "ok"}


@pytest.mark.anyio
async def test_a_failing_partner_leaves_the_gateway_ready_but_degraded(demo_settings):
    from gateway.health import readiness_report
    from gateway.sources import SourceRegistry

    class Partner:
        is_partner = True

        async def check(self) -> None:
            from core.errors import CircuitOpen
            raise CircuitOpen("sz-gateway", "calls are suspended")

    class Store:
        async def check(self, timeout_seconds: float) -> None:
            return None

    registry = SourceRegistry.from_settings(demo_settings)
    registry.connectors["sz-gateway"] = Partner()
    try:
        report = await readiness_report(registry, Store(), 2.0)
    finally:
        del registry.connectors["sz-gateway"]
        await registry.aclose()
    assert report["status"] == "degraded" and report["audit"] == "ok"
    assert report["sources"]["sz-gateway"] == "unavailable"
    assert report["sources"]["hz-market"] == "ok"
