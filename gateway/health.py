"""Liveness and readiness: ``/livez``, ``/readyz`` (and ``/healthz``, its alias).

``/livez`` says only that the process answers HTTP: 200 ``{"status": "ok"}``,
whatever the state of the databases (a liveness probe that failed on a
database outage would have healthy processes restarted for nothing).

``/readyz`` says whether the gateway can serve now. Every part is checked at
once, each within ``timeout_seconds``:

* each source answers a real read of its data (``Connector.check``: a SQL
  source reads a row of each of its tables, so a missing, locked, empty or
  foreign database fails where ``SELECT 1`` did not; a partner endpoint is
  unavailable while its circuit breaker is open);
* the audit trail accepts appends (``AuditStore.check``: an append's write
  transaction up to its inserts, rolled back; on SQLite also the file the
  store opened still being at its path). Without it no data can be released.

200 ``{"status": "ok", "sources": {"hz-tax": "ok", ...}, "audit": "ok"}`` when
every part is ``"ok"``; 503 with ``"status": "unavailable"`` and the failing
parts ``"unavailable"`` when the audit trail or one of this city's own sources
fails. A partner city's endpoint failing (its breaker open) is ``"degraded"``
with 200: every instance sees the same partner, and taking them all out of a
load balancer's rotation would turn a partial answer into none. Why a part
failed goes to the log, never to the answer (it may name hosts or files).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.audit import AuditStore, AuditUnavailable
from core.errors import SourceError
from gateway.sources import SourceRegistry

log = logging.getLogger("gateway.health")

OK = "ok"
DEGRADED = "degraded"  # ready, but a partner city's endpoint is failing
UNAVAILABLE = "unavailable"
DEFAULT_TIMEOUT_SECONDS = 2.0

Endpoint = Callable[[Request], Awaitable[Response]]


def _json(body: dict, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json",
                    headers={"Cache-Control": "no-store"})


async def livez(request: Request) -> Response:
    """The process answers: 200 ``{"status": "ok"}``; nothing else is looked at."""
    return _json({"status": OK})


async def _state(name: str, check: Callable[[], Awaitable[None]], timeout_seconds: float,
                 expected: tuple[type[BaseException], ...]) -> str:
    try:
        async with asyncio.timeout(timeout_seconds):
            await check()
    except TimeoutError:
        log.warning("readiness: %s did not answer within %g s", name, timeout_seconds)
        return UNAVAILABLE
    except expected as exc:
        log.warning("readiness: %s is unavailable: %s", name, exc)
        return UNAVAILABLE
    except Exception:  # a bug in a check: not ready, and loudly so
        log.exception("readiness: checking %s failed", name)
        return UNAVAILABLE
    return OK


async def readiness_report(registry: SourceRegistry, store: AuditStore,
                           timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> dict:
    """``{"status", "sources": {id: state}, "audit": state}``, every part checked at once."""
    ids = list(registry.connectors)
    states = await asyncio.gather(
        _state("audit trail", lambda: store.check(timeout_seconds), timeout_seconds,
               (AuditUnavailable,)),
        *(_state(f"source {i}", registry.connectors[i].check, timeout_seconds, (SourceError,))
          for i in ids),
    )
    audit, sources = states[0], dict(zip(ids, states[1:], strict=True))
    ready = audit == OK and all(state == OK for source_id, state in sources.items()
                                if not registry.connectors[source_id].is_partner)
    status = UNAVAILABLE if not ready else OK if all(
        state == OK for state in sources.values()) else DEGRADED
    return {"status": status, "sources": sources, "audit": audit}


def readiness(registry: SourceRegistry, store: AuditStore,
              timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> Endpoint:
    """The ``/readyz`` endpoint over ``registry``'s sources and ``store``."""

    async def readyz(request: Request) -> Response:
        report = await readiness_report(registry, store, timeout_seconds)
        return _json(report, 503 if report["status"] == UNAVAILABLE else 200)

    return readyz
