"""Connectors: one module per departmental database or partner endpoint
(``sql``, ``partner`` and ``partner_http`` hold what they share).

Every module of this package is imported here, and every ``Connector``
subclass with a ``kind`` is registered: ``CONNECTORS`` maps the
configuration's ``connector`` names to classes, ``RECORD_TYPES`` every
record type some connector serves (single record types first, then in the
order the modules declare them) to its declaration. A new source is a new
module; nothing here or elsewhere lists the sources.
"""

from __future__ import annotations

import importlib
import pkgutil

from connectors.base import Connector
from core.records.base import RecordType


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def _discover() -> tuple[dict[str, type[Connector]], dict[str, RecordType]]:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    connectors: dict[str, type[Connector]] = {}
    for cls in _subclasses(Connector):
        kind = vars(cls).get("kind")
        if kind is None:
            continue
        if kind in connectors and connectors[kind] is not cls:
            raise ImportError(f"two connectors of kind {kind!r}: "
                              f"{connectors[kind].__qualname__} and {cls.__qualname__}")
        connectors[kind] = cls
    declared: dict[str, RecordType] = {}
    for cls in sorted(connectors.values(), key=lambda c: c.__module__):
        for record_type in cls.record_types.values():
            if declared.setdefault(record_type.name, record_type) is not record_type:
                raise ImportError(f"record type {record_type.name!r} is declared twice")
    ordered = sorted(declared.values(), key=lambda record_type: record_type.many)
    return connectors, {record_type.name: record_type for record_type in ordered}


CONNECTORS, RECORD_TYPES = _discover()
