"""Per-request DataLoaders: one per (source, record type), created on first use."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import Any

from aiodataloader import DataLoader

from gateway.policy import Decision, RowFilter
from gateway.sources import SourceRegistry


class Loaders:
    """The DataLoaders of one request. Never share an instance across requests:
    its caches hold data released under that request's caller and purpose.

    ``load(record_type, key)`` returns an awaitable of that key's value from
    the source serving the record type. Keys requested in the same tick are
    batched into calls of at most ``max_batch_keys`` keys each. Record lists
    pass through the purpose's row filter for their record type; the records
    it withholds are counted in ``withheld`` by record type; ``sources_called``
    names every source a loader was asked of.
    """

    __slots__ = ("_registry", "_max_batch_keys", "_loaders", "_decision", "_today", "withheld",
                 "sources_called")

    def __init__(self, registry: SourceRegistry, max_batch_keys: int, decision: Decision,
                 today: date) -> None:
        self._registry = registry
        self._max_batch_keys = max_batch_keys
        self._decision = decision
        self._today = today
        self._loaders: dict[str, DataLoader] = {}
        self.withheld: Counter[str] = Counter()
        self.sources_called: set[str] = set()

    def loader(self, record_type: str) -> DataLoader:
        loader = self._loaders.get(record_type)
        if loader is None:
            source = self._registry.serving(record_type)
            self.sources_called.add(source.id)
            batch = source.batch_function(record_type)
            row_filter = self._decision.row_filters.get(record_type)
            if row_filter is not None:
                batch = self._filtered(batch, row_filter, record_type)
            loader = DataLoader(batch, max_batch_size=self._max_batch_keys)
            self._loaders[record_type] = loader
        return loader

    def _filtered(self, batch: Any, row_filter: RowFilter, record_type: str) -> Any:
        async def filtered_batch(keys: Sequence[Any]) -> list[Any]:
            results = []
            for records in await batch(keys):
                kept, withheld = row_filter.apply(records, self._today)
                if withheld:
                    self.withheld[record_type] += withheld
                results.append(kept)
            return results

        return filtered_batch

    def load(self, record_type: str, key: Any) -> Any:
        return self.loader(record_type).load(key)
