"""What a demo department module declares, and finding the modules that do.

A module of the ``demo`` package is a demo department when it declares::

    DEPARTMENT = DemoDepartment(
        module=__name__, source="market", connector="market",
        department="惠州市市场监督管理局", database="market",
    )

and supplies ``metadata`` (the legacy tables its connector reads) and
``rows(population)`` (yielding ``(table, rows)`` pairs). Nothing else lists
the departments: ``demo.generate`` creates one database and one configured
source per department found, ``demo.population`` gives every case a
department declares (``cases``, ``person_cases``) a showcase, and the
client registry holds the clients a department's records name
(``clients``). A new department is a new module of ``demo`` (beside its
connector and record types); no other file changes.

``discover_departments()`` imports every module of the package (but
``__main__``) and returns the declarations ordered by module name; call it
at run time, never while a ``demo`` module is being imported. This module
imports nothing of the project at import time, so every ``demo`` module may
import it.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy as sa

    from demo.population import Population

PACKAGE = "demo"
# The prefix of the Huizhou names in ``DemoDepartment.department``.
HOME_CITY_NAME = "惠州"


@dataclass(frozen=True, slots=True)
class DemoClient:
    """A client of the demo's (Huizhou's) registry, as ``gateway/clients.py`` reads it.

    ``persisted_only``: the client may run only persisted operations (the
    demo registers the bank portal's for its banks, ``demo/operations/``)."""

    client_id: str
    organization: str
    organization_code: str
    kind: str
    purposes: tuple[str, ...]
    city: str = HOME_CITY_NAME
    persisted_only: bool = False


@dataclass(frozen=True)
class DemoDepartment:
    """One demo departmental database, declared by the module ``module``
    (its ``__name__``), which supplies ``metadata`` and ``rows(population)``.

    ``source`` is the source id without the city's prefix (``"market"``:
    ``hz-market``, ``sz-market``); ``connector`` the connector kind serving
    the database (a key of ``connectors.CONNECTORS``); ``department`` the
    Huizhou department's name (another city's replaces 惠州 by its name);
    ``database`` the SQLite file's stem. ``cases`` and ``person_cases`` map
    the enterprise and person cases the module's rows describe, beyond the
    ones ``demo.population`` lists, to the share of ordinary enterprises or
    persons that have them; each gets a showcase. ``clients`` are the demo
    clients the department's records name (Huizhou's registry holds them)."""

    module: str
    source: str
    connector: str
    department: str
    database: str
    cases: Mapping[str, float] = field(default_factory=dict)
    person_cases: Mapping[str, float] = field(default_factory=dict)
    clients: tuple[DemoClient, ...] = ()

    def source_id(self, city_prefix: str) -> str:
        """The department's source id in the city of ``city_prefix`` (``"hz"``)."""
        return f"{city_prefix}-{self.source}"

    def department_in(self, city_name: str) -> str:
        """The department's name in the city named ``city_name`` (``"深圳"``)."""
        return self.department.replace(HOME_CITY_NAME, city_name)

    @property
    def metadata(self) -> sa.MetaData:
        """The legacy tables of the department's database."""
        return importlib.import_module(self.module).metadata

    def rows(self, population: Population) -> Iterator[tuple[sa.Table, list[dict[str, Any]]]]:
        """The rows of every table for ``population``, table by table."""
        return importlib.import_module(self.module).rows(population)


@functools.cache
def discover_departments() -> tuple[DemoDepartment, ...]:
    """Every ``DEPARTMENT`` declared by a module of ``demo``, by module name.

    Raises ``ImportError`` when a module's ``DEPARTMENT`` names another
    module or two departments share a source id or database file."""
    package = importlib.import_module(PACKAGE)
    found: list[DemoDepartment] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name == "__main__":  # the set-up entry point runs on import
            continue
        name = f"{PACKAGE}.{info.name}"
        declared = getattr(importlib.import_module(name), "DEPARTMENT", None)
        if declared is None:
            continue
        if not isinstance(declared, DemoDepartment) or declared.module != name:
            raise ImportError(f"{name}.DEPARTMENT must be a DemoDepartment with module={name!r}")
        found.append(declared)
    for attribute in ("source", "database"):
        values = [getattr(d, attribute) for d in found]
        if len(set(values)) != len(values):
            raise ImportError(f"two demo departments share a {attribute}: {sorted(values)}")
    return tuple(found)
