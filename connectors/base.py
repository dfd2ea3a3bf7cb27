"""The connector contract: one class per departmental database or partner endpoint."""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, TypeVar

from gateway.errors import BadSourceData
from gateway.settings import SourceSettings
from resolvers.records import Provenance

log = logging.getLogger("gateway.sources")

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


#: Sent on every call to a partner; a request carrying it is never forwarded again.
HOP_HEADER = "X-Credit-Gateway-Hop"
#: The asking organization, percent-encoded, forwarded with the purpose of use.
ON_BEHALF_OF_HEADER = "X-On-Behalf-Of"


@dataclass(frozen=True, slots=True)
class SourceCall:
    """What a source may need to know about the request it serves: partner
    endpoints forward the purpose and the asking organization, and only the
    fields the operation selected (``selected`` holds ``Type.field``) plus the
    attributes the policy reads (``reads``)."""

    request_id: str
    client_id: str
    organization: str
    purpose: str
    selected: frozenset[str] = frozenset()
    # record type -> record attributes the purpose's policy reads (row rules,
    # publicity windows): a partner is asked for them beside ``selected``.
    reads: Mapping[str, frozenset[str]] = field(default_factory=dict)


class Connector:
    """A source of credit records.

    Subclasses set ``kind`` (the name used in the configuration's
    ``connector`` key) and ``record_types``: a mapping from record type name
    (see ``connectors.record_types``) to the name of an async batch method::

        async def load_x(self, keys: Sequence[str]) -> list[V]

    The batch method receives distinct keys (at most the configured
    ``max_batch_keys``) and returns exactly one value per key, in the order
    of the keys: the DataLoader contract. A key without records gets ``[]``
    (list record types) or ``None`` (single record types). It issues one
    statement or request per call, and raises only ``gateway.errors.SourceError``
    subclasses: driver and HTTP failures are converted at this boundary.

    The local source of registrations also answers name searches::

        async def search_by_name(self, text: str, after: str | None, limit: int) -> list[Registration]

    registrations whose name contains ``text`` literally, ordered by USCC,
    after the code ``after``, at most ``limit``.
    """

    kind: ClassVar[str]
    record_types: ClassVar[Mapping[str, str]]

    def __init__(self, settings: SourceSettings) -> None:
        self.settings = settings
        self.id = settings.id

    def provenance(self) -> Provenance:
        """A provenance stamp for records read now; share it across one batch."""
        return Provenance(
            source=self.id,
            department=self.settings.department,
            city=self.settings.city,
            as_of=datetime.now(timezone.utc),
        )

    #: Whether this source is another city's endpoint: never called for a
    #: request that itself came from a partner (no forwarding loops).
    is_partner: ClassVar[bool] = False

    @property
    def divisions(self) -> tuple[str, ...]:
        """Division-code prefixes whose registrations this source holds (partners)."""
        return self.settings.divisions

    def batch_function(self, record_type: str, call: SourceCall) -> Callable[[Sequence[Any]], Any]:
        """The batch method for ``record_type`` in one request. Partner
        connectors bind ``call`` (who asks, why, what they selected)."""
        return getattr(self, self.record_types[record_type])

    def grouped(
        self, keys: Sequence[K], rows: Iterable[Any], key_of: Callable[[Any], K],
        build: Callable[[Any], R], skip_unmappable: bool = False,
    ) -> list[list[R]]:
        """``build`` each row into a record and group the records by ``key_of(row)``:
        one list per key, in key order. A row that ``build`` cannot map (a
        ``ValueError``, ``KeyError`` or ``TypeError`` from an unknown legacy code
        or an unreadable date) makes the batch fail with ``BadSourceData``;
        with ``skip_unmappable`` it is logged and left out instead (only for
        records whose absence grants nothing, such as authorizations)."""
        groups: dict[K, list[R]] = {key: [] for key in keys}
        for row in rows:
            bucket = groups.get(key_of(row))
            if bucket is None:
                continue
            try:
                bucket.append(build(row))
            except (ValueError, KeyError, TypeError) as exc:
                if not skip_unmappable:
                    raise self._bad_data(exc) from None
                log.warning("source %s: a record of %s left out, it cannot be interpreted: %r",
                            self.id, key_of(row), exc)
        return [groups[key] for key in keys]

    def mapped(self, rows: Iterable[Any], build: Callable[[Any], R]) -> list[R]:
        """``build`` each row into a record, failing like ``grouped``."""
        try:
            return [build(row) for row in rows]
        except (ValueError, KeyError, TypeError) as exc:
            raise self._bad_data(exc) from None

    def single(
        self, keys: Sequence[K], rows: Iterable[Any], key_of: Callable[[Any], K],
        build: Callable[[Any], R],
    ) -> list[R | None]:
        """Like ``grouped`` for record types with at most one record per key."""
        found: dict[K, R] = {}
        try:
            for row in rows:
                found[key_of(row)] = build(row)
        except (ValueError, KeyError, TypeError) as exc:
            raise self._bad_data(exc) from None
        return [found.get(key) for key in keys]

    def _bad_data(self, exc: Exception) -> BadSourceData:
        log.warning("source %s returned an unmappable record: %r", self.id, exc)
        return BadSourceData(
            self.id, f"source {self.id} returned a record the gateway cannot interpret"
        )

    async def check(self) -> None:
        """Raise a ``SourceError`` when the source cannot serve its data now
        (readiness, ``/readyz``). A check must exercise what a request needs,
        not merely a connection: SQL sources read a row of each of their
        tables (``SqlConnector.check``), partner endpoints are unavailable
        while their circuit breaker is open (the partner is not called). The
        caller bounds it with its own short timeout; here: nothing to check."""

    async def aclose(self) -> None:
        """Release connections; called once at shutdown."""
