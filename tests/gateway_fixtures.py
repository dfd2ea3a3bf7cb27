"""Helpers for end-to-end tests over the demo databases."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any

from sqlalchemy import event

from gateway.settings import Settings
from gateway.sources import SourceRegistry

DEMO_SIZE = 600
DEMO_PERSONS = 40
SOURCE_IDS = {"hz-market", "hz-tax", "hz-court", "hz-hrss", "hz-environment", "hz-credit"}


def with_source(settings: Settings, source_id: str, **changes: Any) -> Settings:
    """``settings`` with the given keys of one source changed."""
    sources = tuple(
        dataclasses.replace(s, **changes) if s.id == source_id else s for s in settings.sources
    )
    return dataclasses.replace(settings, sources=sources)


def with_all_sources(settings: Settings, **changes: Any) -> Settings:
    sources = tuple(dataclasses.replace(s, **changes) for s in settings.sources)
    return dataclasses.replace(settings, sources=sources)


class StatementCounter:
    """Counts the SQL statements each source's engine really sends."""

    def __init__(self, registry: SourceRegistry) -> None:
        self.counts: Counter[str] = Counter()
        for source_id, connector in registry.connectors.items():
            event.listen(
                connector.engine.sync_engine, "before_cursor_execute",
                self._counter(source_id),
            )

    def _counter(self, source_id: str):
        def count(*_: Any) -> None:
            self.counts[source_id] += 1
        return count

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class FetchTimeline:
    """Records when each source's ``fetch`` started and ended."""

    def __init__(self, registry: SourceRegistry) -> None:
        self.intervals: dict[str, list[tuple[float, float]]] = {}
        for source_id, connector in registry.connectors.items():
            original = connector.fetch

            async def timed(statement, _original=original, _id=source_id):
                start = time.perf_counter()
                try:
                    return await _original(statement)
                finally:
                    self.intervals.setdefault(_id, []).append((start, time.perf_counter()))

            connector.fetch = timed
