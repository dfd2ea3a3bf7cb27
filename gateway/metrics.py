"""Prometheus metrics, served at ``GET /metrics`` in the text exposition format.

==================================================  ===================================  =========
family                                              labels                               type
==================================================  ===================================  =========
``credit_gateway_requests_total``                   client, purpose, operation, outcome  counter
``credit_gateway_request_duration_seconds``         operation                            histogram
``credit_gateway_rejections_total``                 code                                 counter
``credit_gateway_source_duration_seconds``          source, record_type                  histogram
``credit_gateway_source_errors_total``              source, code                         counter
``credit_gateway_partner_circuit_state``            partner, state                       gauge
``credit_gateway_audit_append_duration_seconds``    kind                                 histogram
``credit_gateway_audit_append_failures_total``      kind, reason                         counter
``credit_gateway_rate_limited_total``               client                               counter
``credit_gateway_rate_limit_storage_errors_total``                                       counter
==================================================  ===================================  =========

One request (``gateway.http``, ``/graphql`` only) is counted once, when its
response has left, with the ``outcome``:

* ``ok``: executed, answered without errors;
* ``partial``: executed, data with errors (a source failed, a field raised);
* ``denied``: the caller was refused (401, 403: token, client, purpose, a
  persisted operation it may not run), or it ran and the purpose-of-use
  policy denied some of its fields (and nothing else failed);
* ``rejected``: refused whole before it touched data: a limit (413, 415,
  ``TOO_MANY_SUBJECTS``...), a malformed or invalid request, a rate limit, or
  an operation rejected whole for a denied field (``hz-procurement``);
* ``error``: the gateway failed: 500, 503 (the audit trail), no data.

(the audit trail's own outcomes, ``gateway.recording.outcome_of``, mapped.)
``credit_gateway_rejections_total`` counts the refused (``denied`` and
``rejected``) requests by their ``errors[0].extensions.code``. ``operation`` is
the GraphQL operation's name (a persisted operation's name), ``anonymous``, or
``invalid`` for an ``operationName`` that is no GraphQL name; every label
keeps at most ``MAX_LABEL_VALUES`` values per process, later ones are ``other``.

A source's histogram gets one observation per batch call (a prefetch chunk,
a DataLoader batch, a name search), failed ones included, never one per
field; a failed call also counts in ``source_errors_total`` with its
``SourceError`` code (``INTERNAL`` for anything else). The breaker gauge is
read from the connectors when scraped (1 for the current state of
``closed``, ``open``, ``half-open``, 0 for the others): nothing per request.

Several worker processes: when ``PROMETHEUS_MULTIPROC_DIR`` names a
directory (``credit-gateway serve --workers`` sets it up: an empty directory,
set before any worker starts), each process writes its values to files there
and ``/metrics`` merges them all (``MultiProcessCollector``) on a fresh
registry; the breaker gauge is then that of the process answering the scrape.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from prometheus_client import (REGISTRY, CollectorRegistry, Counter, Histogram,
                               disable_created_metrics)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response

from core.errors import ConfigurationError, SourceError
from gateway import recording, tracing
from gateway.audit import AuditUnavailable
from gateway.logs import RequestInfo, current_request

T = TypeVar("T")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The attribute ``gateway.http`` sets on a refusal's response: its error code.
REFUSAL_CODE = "gateway_refusal_code"
MAX_LABEL_VALUES = 200
OTHER = "other"
NONE = "none"
OUTCOMES = ("ok", "partial", "denied", "rejected", "error")
BREAKER_STATES = ("closed", "open", "half-open")
_DENIED = "FORBIDDEN_FOR_PURPOSE"  # the policy's error code
#: Codes of errors that are the client's request's fault (an operation without data).
CLIENT_ERRORS = frozenset({"BAD_USER_INPUT", "BAD_REQUEST", "GRAPHQL_VALIDATION_FAILED",
                           "OPERATION_NAME_REQUIRED"})

# Refusals of the caller -> its client label (the purpose label is ``none``): what
# a client sent is no label value before it is checked against the registry.
_UNCHECKED_CALLER: dict[str, Callable[[str | None], str | None]] = {
    "UNAUTHENTICATED": lambda client: None,
    "CLIENT_NOT_REGISTERED": lambda client: "unregistered",
    "PURPOSE_REQUIRED": lambda client: client,
    "UNKNOWN_PURPOSE": lambda client: client,
}

disable_created_metrics()  # no *_created series beside each counter and histogram

REQUESTS = Counter("credit_gateway_requests", "GraphQL requests answered, by outcome",
                   ["client", "purpose", "operation", "outcome"])
REQUEST_SECONDS = Histogram(
    "credit_gateway_request_duration_seconds",
    "Time from a GraphQL request's arrival to its response's end, by operation",
    ["operation"], buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
REJECTIONS = Counter("credit_gateway_rejections",
                     "Requests refused (denied or rejected), by error code", ["code"])
SOURCE_SECONDS = Histogram(
    "credit_gateway_source_duration_seconds",
    "Duration of one batch call to a source (one per batch, failures included)",
    ["source", "record_type"],
    buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
SOURCE_ERRORS = Counter("credit_gateway_source_errors",
                        "Failed batch calls to a source, by error code", ["source", "code"])
AUDIT_SECONDS = Histogram(
    "credit_gateway_audit_append_duration_seconds",
    "Time a request waits for its audit record to be committed", ["kind"],
    buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
AUDIT_FAILURES = Counter("credit_gateway_audit_append_failures",
                         "Audit records not committed, by kind and reason", ["kind", "reason"])
CHECKPOINTS = Counter("credit_gateway_checkpoints",
                      "Rounds of checkpoint publishing, by outcome: published, unchanged, "
                      "not_published (a required witness did not cosign), error", ["outcome"])
WITNESS_REFUSALS = Counter("credit_gateway_witness_refusals",
                           "Checkpoints a witness did not cosign, by witness and HTTP status "
                           "(0: unreachable; 422: not consistent with what it saw)",
                           ["witness", "status"])
RATE_LIMITED = Counter("credit_gateway_rate_limited",
                       "Requests refused by a per-client rate limit", ["client"])
RATE_LIMIT_STORAGE_ERRORS = Counter(
    "credit_gateway_rate_limit_storage_errors",
    "Requests whose rate limits could not be checked: the limits' storage failed")

_seen: dict[str, set[str]] = {}
# Label values -> the metrics' children (``labels()`` costs a lock and a tuple each time).
_request_children: dict[tuple[str, ...], tuple[Any, Any]] = {}
_source_children: dict[tuple[str, str], Any] = {}


def _bounded(label: str, value: str | None) -> str:
    """``value`` as a label value; ``other`` once ``label`` has had
    ``MAX_LABEL_VALUES`` distinct values in this process."""
    if value is None:
        return NONE
    seen = _seen.setdefault(label, set())
    if value in seen:
        return value
    if len(seen) >= MAX_LABEL_VALUES:
        return OTHER
    seen.add(value)
    return value


# -- requests -------------------------------------------------------------------


def executed(context: Any, result: Any) -> None:
    """Set the current request's outcome (and code) for an executed operation:
    the audit trail's outcome (``gateway.recording.outcome_of``) mapped, told
    apart by the errors' codes where that says ``partial`` or ``failed``."""
    info = current_request.get()
    if info is None:
        return
    audit = recording.outcome_of(context, result)
    info.executed = True
    if audit == "ok":
        info.outcome = "ok"
        return
    if audit == "rejected":  # whole, for a denied field
        info.outcome, info.code = "rejected", _DENIED
        return
    errors = getattr(result, "errors", None) or ()
    codes = [(getattr(e, "extensions", None) or {}).get("code") for e in errors] \
        if audit != "partial" or context.denied_fields else ()
    if audit == "partial":
        # nothing failed when every error is the policy's: it withheld fields
        info.outcome = "denied" if codes and all(c == _DENIED for c in codes) else "partial"
        return
    info.code = next((c for c in codes if c), None)
    if audit == "invalid" or (codes and all(c in CLIENT_ERRORS for c in codes)):
        info.outcome = "rejected"  # the client's request: invalid, or bad variables
        info.code = info.code or "GRAPHQL_VALIDATION_FAILED"
    elif codes and all(c == _DENIED for c in codes):
        info.outcome = "denied"
    else:
        info.outcome = "error"


def answered(info: RequestInfo, response: Any) -> None:
    """Note the response's status and, for a request refused before
    execution, its code (``gateway.http`` tags refusals) and outcome."""
    info.status = status = response.status_code
    if info.code is None:
        info.code = getattr(response, REFUSAL_CODE, None)
    if info.outcome is None and (status >= 400 or info.code is not None):
        # (a request error answers 200 to a client accepting only application/json)
        info.outcome = ("denied" if status in (401, 403) else "error" if status >= 500
                        else "rejected")


def request_done(info: RequestInfo, started: float) -> None:
    """Count a request whose response has left (``answered`` first) and set
    its latency. A response that is neither an operation's nor a refusal
    (the GraphiQL page) is not counted."""
    seconds = time.perf_counter() - started
    info.latency_ms = round(seconds * 1000, 3)
    outcome = info.outcome
    if outcome is None:
        return
    code = info.code
    operation = _bounded("operation", info.operation or ("anonymous" if info.executed else NONE))
    client, purpose = info.client, info.purpose
    if code in _UNCHECKED_CALLER:  # refused before the client or purpose was checked
        client, purpose = _UNCHECKED_CALLER[code](client), None
    key = (_bounded("client", client), _bounded("purpose", purpose), operation, outcome)
    children = _request_children.get(key)
    if children is None:
        children = _request_children[key] = (REQUESTS.labels(*key),
                                              REQUEST_SECONDS.labels(operation))
    children[0].inc()
    children[1].observe(seconds)
    if code is not None and outcome in ("denied", "rejected"):
        REJECTIONS.labels(_bounded("code", code)).inc()


def rate_limited(client_id: str) -> None:
    """Count a request refused by a per-client rate limit (``gateway.limits``)."""
    RATE_LIMITED.labels(_bounded("client", client_id)).inc()


def checkpoint_round(outcome: str) -> None:
    """Count one round of ``gateway.audit.publisher`` by its outcome."""
    CHECKPOINTS.labels(outcome).inc()


def witness_refused(witness: str, status: int) -> None:
    WITNESS_REFUSALS.labels(_bounded("witness", witness), str(status)).inc()


def rate_limit_storage_error() -> None:
    """Count a request whose limits the storage could not check (``gateway.limits``)."""
    RATE_LIMIT_STORAGE_ERRORS.inc()


# -- sources ------------------------------------------------------------------------


class _SourceCall:
    """Times one call to a source and counts its failure (a context manager)."""

    __slots__ = ("_histogram", "_source", "_span", "_start")

    def __init__(self, histogram: Any, source_id: str, span: Any) -> None:
        self._histogram, self._source, self._span = histogram, source_id, span

    def __enter__(self) -> None:
        self._span.__enter__()
        self._start = time.perf_counter()

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        self._histogram.observe(time.perf_counter() - self._start)
        if error is not None and not isinstance(error, asyncio.CancelledError):
            code = error.code if isinstance(error, SourceError) else "INTERNAL"
            SOURCE_ERRORS.labels(self._source, code).inc()
        self._span.__exit__(kind, error, traceback)


def _source_histogram(source_id: str, record_type: str) -> Any:
    histogram = _source_children.get((source_id, record_type))
    if histogram is None:
        histogram = _source_children[(source_id, record_type)] = SOURCE_SECONDS.labels(
            source_id, record_type)
    return histogram


def source_call(source_id: str, record_type: str, keys: int) -> _SourceCall:
    """A context manager around one call to a source (``keys``: how many it asks)."""
    return _SourceCall(_source_histogram(source_id, record_type), source_id,
                       tracing.source_span(source_id, record_type, keys))


def timed_batch(batch: Callable[[Sequence[Any]], Awaitable[T]], source_id: str,
                record_type: str) -> Callable[[Sequence[Any]], Awaitable[T]]:
    """``batch`` (a source's batch function) timed and counted per call."""
    histogram = _source_histogram(source_id, record_type)

    async def timed(keys: Sequence[Any]) -> T:
        with _SourceCall(histogram, source_id,
                         tracing.source_span(source_id, record_type, len(keys))):
            return await batch(keys)

    return timed


# -- the audit trail ------------------------------------------------------------------


async def audit_append(append: Awaitable[T], kind: str) -> T:
    """Await ``append`` (an ``AuditStore.append``), timed, its failure counted."""
    start = time.perf_counter()
    reason = "error"
    try:
        with tracing.span("audit.append", {"audit.kind": kind}):
            result = await append
        reason = None
        return result
    except asyncio.CancelledError:  # a refusal's bound passed, or the request ended
        reason = "cancelled"
        raise
    except Exception as exc:
        reason = "unavailable" if isinstance(exc, AuditUnavailable) else "error"
        raise
    finally:
        AUDIT_SECONDS.labels(kind).observe(time.perf_counter() - start)
        if reason is not None:
            AUDIT_FAILURES.labels(kind, reason).inc()


# -- exposition -------------------------------------------------------------------------


class BreakerCollector:
    """``credit_gateway_partner_circuit_state``, read from the partner
    connectors' breakers when scraped."""

    def __init__(self, connectors: Callable[[], Iterable[Any]]) -> None:
        self._connectors = connectors

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "credit_gateway_partner_circuit_state",
            "A partner city's circuit breaker: 1 for its current state, 0 for the others",
            labels=["partner", "state"])
        for connector in self._connectors():
            breaker = getattr(getattr(connector, "client", None), "breaker", None)
            if breaker is None:
                continue
            current = breaker.state
            for state in BREAKER_STATES:
                family.add_metric([connector.id, state], 1.0 if state == current else 0.0)
        yield family


class _Forwarded:
    """Another registry's metrics, collected when this one is."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


def exposed(connectors: Callable[[], Iterable[Any]],
            multiproc_dir: str | None = None) -> CollectorRegistry:
    """The registry ``/metrics`` reads, a fresh one: in multiprocess mode
    (``multiproc_dir``, default ``$PROMETHEUS_MULTIPROC_DIR``) every process's
    files, else this process's metrics (``prometheus_client.REGISTRY``: these
    and the process's own); beside them the breakers of ``connectors``."""
    registry = CollectorRegistry()
    multiproc_dir = multiproc_dir or os.environ.get(MULTIPROC_ENV) or None
    if multiproc_dir:
        if not os.path.isdir(multiproc_dir):
            raise ConfigurationError(f"{MULTIPROC_ENV}={multiproc_dir} is not a directory: "
                                     f"create it (empty) before the workers start")
        MultiProcessCollector(registry, path=multiproc_dir)
    else:
        registry.register(_Forwarded(REGISTRY))
    registry.register(BreakerCollector(connectors))
    return registry


def endpoint(connectors: Callable[[], Iterable[Any]]) -> Callable[[Request], Awaitable[Response]]:
    """The ``GET /metrics`` endpoint (the Prometheus text format, or OpenMetrics
    when asked for); ``connectors``: the app's sources, for the breaker gauge."""
    collector = exposed(connectors)

    async def metrics(request: Request) -> Response:
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(collector), headers={"Content-Type": content_type,
                                                    "Cache-Control": "no-store"})

    return metrics
