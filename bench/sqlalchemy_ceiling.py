"""The SQLAlchemy ceiling: the gateway's own connectors, no GraphQL.

A plain starlette handler, no GraphQL, no token, no policy, no audit: for
``POST /entity {"uscc": ...}`` it calls the same connectors' batch methods
(the same SQL against the same databases, through SQLAlchemy and the
connectors' record classes) for every record type the benchmark query
selects, concurrently, and returns the JSON the gateway would return.
Beside the true ceiling (``bench/ceiling.py``: the same statements through
the driver) it shows what the connectors' read path costs.
``BENCH_CONFIG`` names the gateway configuration to read (unless the
settings are given).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.workload import FIELDS, PROVENANCE, camel
from connectors import RECORD_TYPES
from connectors.base import SourceCall
from gateway.settings import Settings, load_settings
from gateway.sources import SourceRegistry

#: The call every ceiling and source-only measurement makes.
CALL = SourceCall("ceiling", "ceiling", "ceiling", "SUPERVISION")


def _value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _record(record: Any, names: tuple[str, ...]) -> dict[str, Any]:
    out = {camel(n): _value(getattr(record, n)) for n in names}
    out["provenance"] = {p: getattr(record.provenance, p) for p in PROVENANCE}
    return out


def create_sqlalchemy_ceiling_app(settings: Settings | None = None) -> Starlette:
    registry = SourceRegistry.from_settings(settings or load_settings(os.environ["BENCH_CONFIG"]))

    async def entity(request: Request) -> Response:
        uscc = (await request.json())["uscc"]
        loads = []
        for _, (record_type, _) in FIELDS.items():
            if not RECORD_TYPES[record_type].many:
                source = registry.home(record_type, uscc)
            else:
                (source,) = registry.serving(record_type)
            loads.append(source.load(record_type, [uscc], CALL))
        results = await asyncio.gather(*loads)
        body: dict[str, Any] = {"uscc": uscc}
        for (field, (_, names)), (value,) in zip(FIELDS.items(), results):
            if isinstance(value, list):
                body[field] = [_record(r, names) for r in value]
            else:
                body[field] = None if value is None else _record(value, names)
        return Response(orjson.dumps({"data": {"entity": body}}), media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await registry.aclose()

    return Starlette(routes=[Route("/entity", entity, methods=["POST"])], lifespan=lifespan)
