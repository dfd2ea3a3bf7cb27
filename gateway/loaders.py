"""Per-request DataLoaders: one per (source, record type), created on first use."""

from __future__ import annotations

from typing import Any

from aiodataloader import DataLoader

from gateway.sources import SourceRegistry


class Loaders:
    """The DataLoaders of one request. Never share an instance across requests:
    its caches hold data released under that request's caller and purpose.

    ``load(record_type, key)`` returns an awaitable of that key's value from
    the source serving the record type. Keys requested in the same tick are
    batched into calls of at most ``max_batch_keys`` keys each.
    """

    __slots__ = ("_registry", "_max_batch_keys", "_loaders")

    def __init__(self, registry: SourceRegistry, max_batch_keys: int) -> None:
        self._registry = registry
        self._max_batch_keys = max_batch_keys
        self._loaders: dict[str, DataLoader] = {}

    def loader(self, record_type: str) -> DataLoader:
        loader = self._loaders.get(record_type)
        if loader is None:
            source = self._registry.serving(record_type)
            loader = DataLoader(
                source.batch_function(record_type), max_batch_size=self._max_batch_keys
            )
            self._loaders[record_type] = loader
        return loader

    def load(self, record_type: str, key: Any) -> Any:
        return self.loader(record_type).load(key)
