"""The connector contract: one class per departmental database or partner endpoint."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, TypeVar

from core.errors import BadSourceData
from core.config import SourceSettings
from core.records.base import Provenance, RecordType

log = logging.getLogger("gateway.sources")

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


#: Sent on every call to a partner; a request carrying it is never forwarded again.
HOP_HEADER = "X-Credit-Gateway-Hop"
#: The asking organization, percent-encoded, forwarded with the purpose of use.
ON_BEHALF_OF_HEADER = "X-On-Behalf-Of"


_RESIDENT_ID = re.compile(r"[0-9]{17}[0-9Xx]")


def _loggable(key: Any) -> str:
    """A key fit for a log line: an organization's code, never a person's ID number."""
    text = str(key)
    return "a person" if _RESIDENT_ID.fullmatch(text.strip()) else text


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


def serves(record_type: RecordType) -> Callable[[F], F]:
    """Mark a connector's method as its batch method for ``record_type``."""
    def mark(method: F) -> F:
        method.__serves__ = record_type  # type: ignore[attr-defined]
        return method
    return mark


class Connector:
    """A source of credit records: a departmental database or a partner
    city's endpoint. This docstring is the whole contract.

    A subclass sets ``kind``, the name the configuration's ``connector``
    key uses (``connector = "tax"``), and declares the record types it
    serves (``core.records``: name, key kind, one or many records per key,
    record class, GraphQL field) by marking one batch method per record
    type with ``@serves(RECORD_TYPE)``::

        @serves(TAX_RATINGS)
        async def load_tax_ratings(self, usccs: Sequence[str]) -> list[list[TaxRating]]

    The gateway calls ``load(record_type, keys, call)``, which runs that
    method (a subclass serving many record types alike may override
    ``load`` and set ``record_types`` itself, as the Shenzhen connector
    does). A batch receives distinct keys (at most the configured
    ``max_batch_keys``) and returns exactly one value per key, in the order
    of the keys: the DataLoader contract. A key without records gets ``[]``
    (``many`` record types) or ``None`` (single ones); a key of the wrong
    kind for the source (a resident ID number at a partner) too. It issues
    one statement or request per call where the source allows it, and
    raises only ``core.errors.SourceError`` subclasses: driver and HTTP
    failures are converted at this boundary (nothing internal reaches a
    client). Records carry ``provenance()``.

    The local source of ``REGISTRATION`` also answers name searches::

        async def search_by_name(self, text: str, after: str | None, limit: int) -> list[Registration]

    registrations whose name contains ``text`` literally, ordered by USCC,
    after the code ``after``, at most ``limit``.

    Every module of the ``connectors`` package is imported at start-up and
    every subclass with a ``kind`` is registered (``connectors.CONNECTORS``):
    adding a source is adding its modules (record types in ``core.records``,
    the connector here, demo data in ``demo``) and its catalog entries.
    """

    kind: ClassVar[str]
    #: Record type name -> record type, for every record type served.
    record_types: ClassVar[Mapping[str, RecordType]] = {}
    _batch_methods: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        marked = {name: method.__serves__ for name, method in vars(cls).items()
                  if hasattr(method, "__serves__")}
        if marked:
            cls._batch_methods = {**cls._batch_methods,
                                  **{rt.name: name for name, rt in marked.items()}}
            cls.record_types = {**cls.record_types, **{rt.name: rt for rt in marked.values()}}

    async def load(self, record_type: str, keys: Sequence[Any], call: SourceCall) -> list[Any]:
        """One value per key of ``keys`` for ``record_type`` (see the class docstring)."""
        return await getattr(self, self._batch_methods[record_type])(keys)

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
                # The key only if it is no resident ID number, and not the error's
                # text (it may quote the row): the kind of error only.
                log.warning("source %s: a record of %s left out, it cannot be interpreted (%s)",
                            self.id, _loggable(key_of(row)), type(exc).__name__)
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
        # The kind of error only: its text may quote the row (a name, an ID number).
        log.warning("source %s returned an unmappable record (%s)", self.id, type(exc).__name__)
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
