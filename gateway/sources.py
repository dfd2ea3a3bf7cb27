"""The configured sources of one gateway process, and which serves each record type."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from connectors import CONNECTORS
from connectors.base import Connector
from connectors.record_types import ALL as ALL_RECORD_TYPES
from gateway.errors import ConfigurationError
from gateway.settings import Settings


class SourceRegistry:
    """Connectors built from settings, one per source, shared by all requests.

    Every record type must be served by exactly one configured source: a
    missing or doubly served record type is a start-up error.
    """

    def __init__(self, connectors: Mapping[str, Connector]) -> None:
        self.connectors = dict(connectors)
        self.by_record_type: dict[str, Connector] = {}
        for connector in self.connectors.values():
            for record_type in connector.record_types:
                other = self.by_record_type.get(record_type)
                if other is not None:
                    raise ConfigurationError(
                        f"record type {record_type!r} is served by both sources "
                        f"{other.id!r} and {connector.id!r}"
                    )
                self.by_record_type[record_type] = connector
        missing = ALL_RECORD_TYPES - set(self.by_record_type)
        if missing:
            raise ConfigurationError(
                f"no configured source serves record type(s) {sorted(missing)}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> SourceRegistry:
        connectors = {}
        for source in settings.sources:
            try:
                connector_class = CONNECTORS[source.connector]
            except KeyError:
                raise ConfigurationError(
                    f"source {source.id!r}: unknown connector {source.connector!r}; "
                    f"known: {sorted(CONNECTORS)}"
                ) from None
            try:
                connectors[source.id] = connector_class(source)
            except Exception as exc:  # e.g. a malformed URL or a missing driver
                raise ConfigurationError(f"source {source.id!r}: {exc}") from None
        return cls(connectors)

    def serving(self, record_type: str) -> Connector:
        return self.by_record_type[record_type]

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.connectors.values()))
