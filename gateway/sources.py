"""The configured sources of one gateway process, and which serve each record type."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from connectors import CONNECTORS, RECORD_TYPES
from connectors.base import Connector
from core.errors import ConfigurationError
from gateway.settings import Settings


class SourceRegistry:
    """Connectors built from settings, one per source, shared by all requests.

    A list record type is merged from every source that serves it. A single
    record type (a registration) comes from the subject's home source: the
    source whose ``divisions`` prefix the USCC's division code, else the one
    local source serving it. A record type nobody serves, two local sources
    of a single record type, or overlapping divisions are start-up errors.
    """

    def __init__(self, connectors: Mapping[str, Connector]) -> None:
        self.connectors = dict(connectors)
        self.by_record_type: dict[str, list[Connector]] = {}
        for connector in self.connectors.values():
            for record_type in connector.record_types:
                self.by_record_type.setdefault(record_type, []).append(connector)
        missing = set(RECORD_TYPES) - set(self.by_record_type)
        if missing:
            raise ConfigurationError(
                f"no configured source serves record type(s) {sorted(missing)}"
            )
        self._homes: dict[str, tuple[list[tuple[str, Connector]], Connector | None]] = {}
        for record_type in (name for name, declared in RECORD_TYPES.items() if not declared.many):
            sources = self.by_record_type[record_type]
            local = [c for c in sources if not c.divisions]
            if len(local) > 1:
                raise ConfigurationError(
                    f"record type {record_type!r} is served locally by both "
                    f"{local[0].id!r} and {local[1].id!r}"
                )
            prefixes = [(p, c) for c in sources for p in c.divisions]
            for prefix, connector in prefixes:
                for other_prefix, other in prefixes:
                    if other is not connector and other_prefix.startswith(prefix):
                        raise ConfigurationError(
                            f"divisions {prefix!r} of {connector.id!r} and {other_prefix!r} "
                            f"of {other.id!r} overlap"
                        )
            self._homes[record_type] = (prefixes, local[0] if local else None)

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
            except ConfigurationError as exc:
                raise ConfigurationError(f"source {source.id!r}: {exc}") from None
            except Exception as exc:  # e.g. a malformed URL or a missing driver
                raise ConfigurationError(f"source {source.id!r}: {exc}") from None
        return cls(connectors)

    def serving(self, record_type: str, with_partners: bool = True) -> list[Connector]:
        """Every source of a list record type, partners left out on request."""
        sources = self.by_record_type[record_type]
        return sources if with_partners else [c for c in sources if not c.is_partner]

    def home(self, record_type: str, uscc: str) -> Connector | None:
        """The source holding the single record of ``uscc`` (``None``: nobody)."""
        prefixes, local = self._homes[record_type]
        division = uscc[2:8]
        for prefix, connector in prefixes:
            if division.startswith(prefix):
                return connector
        return local

    def local(self, record_type: str) -> Connector:
        """The local source of a single record type (for calls that are not batched)."""
        return self._homes[record_type][1] or self.by_record_type[record_type][0]

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.connectors.values()))
