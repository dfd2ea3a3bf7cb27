"""End-to-end helpers: the demo gateway behind a test client, with demo tokens."""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from connectors import CONNECTORS, RECORD_TYPES
from connectors.base import Connector
from core.records.base import Key, RecordType
from demo.generate import demo_sources
from demo.issuer import ensure_signing_key, issue_token
from gateway.app import create_app
from gateway.clock import china_today
from gateway.settings import Settings
from gateway.sources import SourceRegistry

TODAY = china_today()  # row rules are evaluated on the real date, in China
DEMO_SIZE = 600
DEMO_PERSONS = 40
# A client and purpose that may see every data item (row rules still apply).
SUPERVISOR = ("hz-market-app", "SUPERVISION")


def local_sources(settings: Settings) -> dict[str, type[Connector]]:
    """The configured sources that are not partner cities -> their connector classes."""
    return {s.id: CONNECTORS[s.connector] for s in settings.sources
            if not CONNECTORS[s.connector].is_partner}


def source_ids(settings: Settings) -> set[str]:
    """The ids of the local (not partner) sources configured in ``settings``."""
    return set(local_sources(settings))


def demo_connectors() -> dict[str, type[Connector]]:
    """The local sources of Huizhou's demo configuration (``demo.generate``
    writes one per demo department; the ``demo_settings`` fixture loads it)
    -> their connector classes, known without making the data."""
    connectors = {s.source_id: CONNECTORS[s.department.connector] for s in demo_sources()}
    return {source_id: c for source_id, c in connectors.items() if not c.is_partner}


# The demo's local source ids, for module-level tables; with settings at hand
# use ``source_ids(settings)`` (tests/test_gateway.py checks that they agree).
SOURCE_IDS = set(demo_connectors())
# Every record type served as a field of Entity, by GraphQL field name, in schema order.
ENTITY_RECORD_TYPES: dict[str, RecordType] = {
    rt.field: rt for rt in RECORD_TYPES.values() if Key.USCC in rt.fields}


def statements_per_source(sources: Mapping[str, Any], record_types: Iterable[str],
                          batches: int = 1) -> dict[str, int]:
    """What the sources' declarations say reading ``record_types`` costs: one
    statement per record type a source serves (its ``record_types``), per batch
    of keys; sources serving none of them are left out. ``sources`` maps source
    ids to connectors or connector classes (``registry.connectors``,
    ``local_sources(settings)``); partner cities send no statements and are
    left out, so a single record type is read from its one local source."""
    wanted = set(record_types)
    unknown = wanted - set(RECORD_TYPES)
    assert not unknown, f"not declared record types: {sorted(unknown)}"
    counts = {source_id: batches * len(wanted & set(source.record_types))
              for source_id, source in sources.items() if not source.is_partner}
    return {source_id: n for source_id, n in counts.items() if n}


def with_source(settings: Settings, source_id: str, **changes: Any) -> Settings:
    """``settings`` with the given keys of one source changed."""
    sources = tuple(
        dataclasses.replace(s, **changes) if s.id == source_id else s for s in settings.sources
    )
    return dataclasses.replace(settings, sources=sources)


def with_all_sources(settings: Settings, **changes: Any) -> Settings:
    sources = tuple(dataclasses.replace(s, **changes) for s in settings.sources)
    return dataclasses.replace(settings, sources=sources)


@functools.cache
def _registry_without_persisted_only(clients_file: str) -> str:
    source = Path(clients_file)
    target = source.with_name(f"{source.stem}-without-persisted-only{source.suffix}")
    text = source.read_text(encoding="utf-8")
    target.write_text(re.sub(r"(?m)^persisted_only\s*=.*\n", "", text), encoding="utf-8")
    return str(target)


def without_persisted_only(settings: Settings) -> Settings:
    """``settings`` with a copy of its client registry in which no client is
    persisted-only: for tests that send query text as the demo's banks
    (which may run only their persisted operations, tests/test_operations.py)."""
    return dataclasses.replace(settings, auth=dataclasses.replace(
        settings.auth, clients_file=_registry_without_persisted_only(settings.auth.clients_file)))


def demo_token(settings: Settings, client_id: str, **claims: Any) -> str:
    """A token for ``client_id`` signed with the demo key beside the JWKS."""
    key, _ = ensure_signing_key(Path(settings.auth.jwks_file).parent)
    return issue_token(key, client_id=client_id, issuer=settings.auth.issuer,
                       audience=settings.auth.audience, **claims)


def replace_batch(monkeypatch: Any, connector: Any, record_type: str, batch: Any) -> None:
    """Make ``connector`` answer ``record_type`` with ``batch(keys)`` (the
    rest as before), for this test."""
    original = connector.load

    async def load(name: str, keys: Any, call: Any) -> Any:
        return await (batch(keys) if name == record_type else original(name, keys, call))

    monkeypatch.setattr(connector, "load", load)


class Gateway:
    """A test client over ``settings`` and the registry behind it (to observe sources)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = SourceRegistry.from_settings(settings)
        self.client = TestClient(create_app(settings, self.registry))

    def __enter__(self) -> Gateway:
        self.client.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.client.__exit__(*exc)

    def post(self, query: str, as_: tuple[str, str] = SUPERVISOR,
             headers: dict[str, str] | None = None, **variables: Any):
        client_id, purpose = as_
        return self.client.post("/graphql", json={"query": query, "variables": variables}, headers={
            "Authorization": f"Bearer {demo_token(self.settings, client_id)}",
            "X-Purpose-Of-Use": purpose, **(headers or {}),
        })

    def query(self, query: str, as_: tuple[str, str] = SUPERVISOR, **variables: Any) -> dict:
        response = self.post(query, as_, **variables)
        assert response.status_code == 200, response.text
        return response.json()

    def run(self, document_id: str, as_: tuple[str, str] = SUPERVISOR,
            headers: dict[str, str] | None = None, **body: Any):
        """POST a persisted-document request: ``documentId`` and the other
        parameters in ``body`` (``variables``, ``operationName``...)."""
        client_id, purpose = as_
        return self.client.post("/graphql", json={"documentId": document_id, **body}, headers={
            "Authorization": f"Bearer {demo_token(self.settings, client_id)}",
            "X-Purpose-Of-Use": purpose, **(headers or {}),
        })


class StatementCounter:
    """Counts the SQL statements each source's connector sends from now on
    (its ``statements_sent``)."""

    def __init__(self, registry: SourceRegistry) -> None:
        self._connectors = {source_id: connector
                            for source_id, connector in registry.connectors.items()
                            if hasattr(connector, "statements_sent")}
        self.clear()

    def clear(self) -> None:
        """Count from now on again."""
        self._start = {source_id: c.statements_sent for source_id, c in self._connectors.items()}

    @property
    def counts(self) -> Counter[str]:
        return +Counter({source_id: c.statements_sent - self._start[source_id]
                         for source_id, c in self._connectors.items()})

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class FetchTimeline:
    """Records when each source's ``fetch`` started and ended."""

    def __init__(self, registry: SourceRegistry) -> None:
        self.intervals: dict[str, list[tuple[float, float]]] = {}
        for source_id, connector in registry.connectors.items():
            original = connector.fetch

            async def timed(statement, keys=None, _original=original, _id=source_id):
                start = time.perf_counter()
                try:
                    return await _original(statement, keys)
                finally:
                    self.intervals.setdefault(_id, []).append((start, time.perf_counter()))

            connector.fetch = timed
