"""OpenTelemetry traces, off unless ``[telemetry] tracing = true``.

Spans, one tree per GraphQL request:

* ``graphql.request`` (kind SERVER; continues a W3C ``traceparent`` the
  request carries): ``credit_gateway.request_id``, ``credit_gateway.client``,
  ``credit_gateway.purpose``, ``graphql.operation.name``,
  ``credit_gateway.outcome``, ``http.response.status_code``;
* ``graphql.admit`` (limits, parsing, validation) and ``graphql.plan`` (the
  purpose-of-use enforcement plan);
* ``source.call`` (kind CLIENT), one per batch call to a source, never per
  field: ``credit_gateway.source``, ``credit_gateway.record_type``,
  ``credit_gateway.keys`` (how many keys the batch asks for; never the keys);
* ``audit.append``: ``audit.kind``.

With ``otlp_endpoint`` set they are exported over OTLP/HTTP (protobuf) in
batches; a base URL (``http://collector:4318``) gets ``/v1/traces`` appended.
Without it they are kept in memory, the last ``MEMORY_SPANS`` of them
(``finished_spans()``: for tests and debugging), and exported nowhere.

Tracing off, every hook here is a module-level function returning one shared
no-op context manager: no OpenTelemetry import, no allocation. Callers reach
the hooks through the module (``tracing.span(...)``), as ``configure`` rebinds them.
"""

from __future__ import annotations

import collections
import threading
from typing import Any
from urllib.parse import urlsplit

from core.errors import ConfigurationError

MEMORY_SPANS = 10_000
TRACER_NAME = "credit-gateway"

enabled = False


class _NoSpan:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_NO_SPAN = _NoSpan()


def _no_span(*args: Any, **kwargs: Any) -> _NoSpan:
    return _NO_SPAN


# The hooks (rebound by ``configure``):
#: ``span(name, attributes=None)``: an internal span around a block.
span = _no_span
#: ``source_span(source_id, record_type, keys)``: a span around one batch call.
source_span = _no_span
#: ``request_span(info, headers)``: the request's span; its attributes are read
#: from ``info`` (``gateway.logs.RequestInfo``) when it ends.
request_span = _no_span

_provider: Any = None
_memory: Any = None
_lock = threading.Lock()


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for ``endpoint`` (a base URL gets ``/v1/traces``)."""
    parts = urlsplit(endpoint)
    if parts.path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def configure(telemetry: Any, exporter: Any = None) -> None:
    """Turn tracing on as ``telemetry`` (``gateway.settings.TelemetrySettings``)
    says; ``exporter``: a span exporter to use instead (tests). With
    ``tracing = false`` nothing changes: another app of the process may trace
    (``disable`` turns it off). ``ConfigurationError`` without OpenTelemetry."""
    if not telemetry.tracing:
        return
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        raise ConfigurationError(
            "[telemetry] tracing = true needs OpenTelemetry: install the gateway with its "
            "`tracing` extra (opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http)"
        ) from None
    global _provider, _memory
    with _lock:
        _shutdown()
        provider = TracerProvider(resource=Resource.create(
            {"service.name": telemetry.service_name}))
        memory = None
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        elif telemetry.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(
                OTLPSpanExporter(endpoint=traces_url(telemetry.otlp_endpoint))))
        else:
            memory = _MemoryExporter(MEMORY_SPANS)
            provider.add_span_processor(SimpleSpanProcessor(memory))
        _provider, _memory = provider, memory
        _bind(provider.get_tracer(TRACER_NAME))


def disable() -> None:
    """Tracing off: the spans still buffered are exported first."""
    with _lock:
        _shutdown()


def flush() -> None:
    """Export the spans still buffered (at an app's shutdown)."""
    provider = _provider
    if provider is not None:
        provider.force_flush()


def finished_spans() -> list[Any]:
    """The spans kept in memory (no ``otlp_endpoint``), oldest first."""
    return list(_memory.spans) if _memory is not None else []


def _shutdown() -> None:
    global _provider, _memory, enabled, span, source_span, request_span
    enabled = False
    span = source_span = request_span = _no_span
    provider, _provider, _memory = _provider, None, None
    if provider is not None:
        provider.shutdown()


def _bind(tracer: Any) -> None:
    global enabled, span, source_span, request_span
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()

    def real_span(name: str, attributes: dict[str, Any] | None = None) -> Any:
        return tracer.start_as_current_span(name, attributes=attributes)

    def real_source_span(source_id: str, record_type: str, keys: int) -> Any:
        return tracer.start_as_current_span("source.call", kind=SpanKind.CLIENT, attributes={
            "credit_gateway.source": source_id, "credit_gateway.record_type": record_type,
            "credit_gateway.keys": keys})

    def real_request_span(info: Any, headers: Any = None) -> Any:
        parent = propagator.extract(headers) if headers is not None else None
        return _RequestSpan(tracer, info, parent, SpanKind.SERVER)

    span, source_span, request_span = real_span, real_source_span, real_request_span
    enabled = True


class _RequestSpan:
    """The request's span, current while the request is served; named and
    given the request's attributes when it ends."""

    __slots__ = ("_tracer", "_info", "_parent", "_kind", "_manager", "_span")

    def __init__(self, tracer: Any, info: Any, parent: Any, kind: Any) -> None:
        self._tracer, self._info, self._parent, self._kind = tracer, info, parent, kind

    def __enter__(self) -> Any:
        info = self._info
        self._manager = self._tracer.start_as_current_span(
            "graphql.request", context=self._parent, kind=self._kind, attributes={
                "credit_gateway.request_id": info.request_id,
                "http.request.method": info.method, "url.path": info.path})
        self._span = self._manager.__enter__()
        return self._span

    def __exit__(self, *exc: Any) -> Any:
        info, current = self._info, self._span
        for key, value in (("credit_gateway.client", info.client),
                           ("credit_gateway.purpose", info.purpose),
                           ("graphql.operation.name", info.operation),
                           ("credit_gateway.outcome", info.outcome),
                           ("credit_gateway.code", info.code),
                           ("http.response.status_code", info.status or None)):
            if value is not None:
                current.set_attribute(key, value)
        return self._manager.__exit__(*exc)


class _MemoryExporter:
    """A span exporter keeping the last ``size`` spans in memory."""

    def __init__(self, size: int) -> None:
        self.spans: collections.deque = collections.deque(maxlen=size)

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
