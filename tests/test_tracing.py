"""OpenTelemetry traces: off by default (the hooks are one shared no-op), on
with ``[telemetry] tracing = true``: one request span carrying the request's
id, client, purpose and operation, spans for admission, planning and the
audit append, and one span per batch call to a source, never per field;
exported over OTLP/HTTP when ``otlp_endpoint`` is set."""

from __future__ import annotations

import dataclasses
import math
import threading
import uuid
from collections import Counter
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import ConfigurationError
from gateway import tracing
from gateway.settings import TelemetrySettings, load_settings
from tests.connectors.http_server import LiveServer
from tests.gateway_fixtures import Gateway

SUPERVISOR = ("hz-market-app", "SUPERVISION")


@pytest.fixture
def traced(demo_settings):
    """The demo's settings with tracing on (spans kept in memory); off again after."""
    yield dataclasses.replace(demo_settings, telemetry=TelemetrySettings(tracing=True),
                              max_batch_keys=4)
    tracing.disable()


def test_tracing_is_off_by_default_and_costs_a_no_op(demo_settings):
    assert demo_settings.telemetry == TelemetrySettings()
    assert demo_settings.telemetry.tracing is False
    with Gateway(demo_settings) as gateway:
        gateway.query("{ __typename }")
    assert not tracing.enabled and tracing.finished_spans() == []
    # Every hook is the one module-level no-op, returning one shared object.
    hooks = (tracing.span("x"), tracing.source_span("hz-tax", "tax_ratings", 3),
             tracing.request_span(object(), {}))
    assert all(hook is tracing._NO_SPAN for hook in hooks)
    assert tracing.span is tracing.source_span is tracing.request_span is tracing._no_span


def test_spans_of_a_request(traced, population, monkeypatch):
    usccs = [e.uscc for e in population.enterprises[:10]]
    request_id = uuid.uuid4().hex
    with Gateway(traced) as gateway:
        calls: Counter[tuple[str, str]] = Counter()
        for connector in gateway.registry.connectors.values():
            def counting(record_type, keys, call, _load=connector.load, _id=connector.id):
                calls[(_id, record_type)] += 1
                return _load(record_type, keys, call)
            monkeypatch.setattr(connector, "load", counting)
        response = gateway.post("""query TracedPortfolio($u: [USCC!]!) { entities(usccs: $u) {
            uscc registration { name status } penalties { decisionNumber severity }
            taxRatings { year grade } } }""", headers={"X-Request-Id": request_id}, u=usccs)
        assert response.status_code == 200 and "errors" not in response.json()
    spans = tracing.finished_spans()
    (request,) = [s for s in spans if s.name == "graphql.request"]
    assert dict(request.attributes) == {
        "credit_gateway.request_id": request_id, "http.request.method": "POST",
        "url.path": "/graphql", "credit_gateway.client": "hz-market-app",
        "credit_gateway.purpose": "SUPERVISION", "graphql.operation.name": "TracedPortfolio",
        "credit_gateway.outcome": "ok", "http.response.status_code": 200}
    assert request.parent is None and request.kind.name == "SERVER"
    assert {s.context.trace_id for s in spans} == {request.context.trace_id}
    names = Counter(s.name for s in spans)
    assert names["graphql.admit"] == names["graphql.plan"] == names["audit.append"] == 1
    sources = [s for s in spans if s.name == "source.call"]
    # One span per batch call the sources received, never one per field.
    assert Counter((s.attributes["credit_gateway.source"],
                    s.attributes["credit_gateway.record_type"]) for s in sources) == calls
    assert len(sources) == sum(calls.values()) < 10 * 3
    chunk_sizes = sorted(s.attributes["credit_gateway.keys"] for s in sources
                         if s.attributes["credit_gateway.record_type"] == "registration")
    assert chunk_sizes == [2, 4, 4] and len(chunk_sizes) == math.ceil(10 / 4)
    assert all(s.kind.name == "CLIENT" for s in sources)
    by_id = {s.context.span_id: s for s in spans}
    for s in spans:
        if s is not request:  # every other span lies beneath the request's
            parent = s
            while parent.parent is not None:
                parent = by_id[parent.parent.span_id]
            assert parent is request
    (audit,) = [s for s in spans if s.name == "audit.append"]
    assert audit.attributes["audit.kind"] == "release"
    values = " ".join(str(v) for s in spans for v in s.attributes.values())
    assert not any(uscc in values for uscc in usccs)  # counts of keys, never the keys


def test_a_failing_source_call_is_an_error_span(traced, population, tmp_path):
    from tests.gateway_fixtures import with_source

    broken = with_source(traced, "hz-court", url=f"sqlite+aiosqlite:///{tmp_path}/no/court.db")
    with Gateway(broken) as gateway:
        gateway.query("""query TracedFailure($u: USCC!) { entity(uscc: $u) {
            dishonestDebtorRecords { caseCode } } }""", u=population.showcase["dishonest_debtor"].uscc)
    (court,) = [s for s in tracing.finished_spans() if s.name == "source.call"
                and s.attributes["credit_gateway.source"] == "hz-court"]
    assert court.status.status_code.name == "ERROR"
    assert [e.name for e in court.events] == ["exception"]
    (request,) = [s for s in tracing.finished_spans() if s.name == "graphql.request"]
    assert request.attributes["credit_gateway.outcome"] == "partial"


def test_a_traceparent_is_continued(traced):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with Gateway(traced) as gateway:
        gateway.post("{ __typename }", headers={
            "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    (request,) = [s for s in tracing.finished_spans() if s.name == "graphql.request"]
    assert format(request.context.trace_id, "032x") == trace_id
    assert format(request.parent.span_id, "016x") == "00f067aa0ba902b7"


def test_spans_are_exported_over_otlp_http(demo_settings):
    """With ``otlp_endpoint`` (a base URL), batches of spans are POSTed as
    protobuf to ``<endpoint>/v1/traces``."""
    received: list[tuple[str, str, bytes]] = []
    arrived = threading.Event()

    async def collector(request: Request) -> Response:
        received.append((request.url.path, request.headers.get("content-type", ""),
                         await request.body()))
        arrived.set()
        return Response(b"", media_type="application/x-protobuf")

    app = Starlette(routes=[Route("/v1/traces", collector, methods=["POST"])])
    with LiveServer(app) as server:
        settings = dataclasses.replace(demo_settings, telemetry=TelemetrySettings(
            tracing=True, otlp_endpoint=server.url, service_name="credit-gateway-test"))
        try:
            with Gateway(settings) as gateway:
                gateway.query("query Exported { __typename }")
            tracing.flush()
            assert arrived.wait(30)
        finally:
            tracing.disable()
    path, content_type, body = received[0]
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    assert b"graphql.request" in body and b"credit-gateway-test" in body and b"Exported" in body


def test_traces_url():
    assert tracing.traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("https://c.example/otlp/v1/traces") == \
        "https://c.example/otlp/v1/traces"


def _config(tmp_path: Path, telemetry: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(f"""
[auth]
issuer = "https://idp.example/"
audience = "urn:test"
jwks_file = "jwks.json"
clients_file = "clients.toml"
[audit]
url = "sqlite+aiosqlite:///audit.db"
subject_key = "{'k' * 32}"
[sources.hz-market]
connector = "market"
url = "sqlite+aiosqlite:///market.db"
department = "d"
city = "c"
{telemetry}
""", encoding="utf-8")
    return path


def test_telemetry_settings_are_strict(tmp_path):
    default = load_settings(_config(tmp_path, ""), env={}).telemetry
    assert default == TelemetrySettings(tracing=False, otlp_endpoint="",
                                        service_name="credit-gateway")
    on = load_settings(_config(tmp_path, """[telemetry]
tracing = true
otlp_endpoint = "http://otel-collector:4318"
service_name = "gateway-a"
"""), env={}).telemetry
    assert on == TelemetrySettings(True, "http://otel-collector:4318", "gateway-a")
    from_env = load_settings(_config(tmp_path, ""), env={
        "CREDIT_GATEWAY_TELEMETRY_TRACING": "true",
        "CREDIT_GATEWAY_TELEMETRY_OTLP_ENDPOINT": "https://c.example"}).telemetry
    assert (from_env.tracing, from_env.otlp_endpoint) == (True, "https://c.example")
    for table, problem in [
        ("[telemetry]\ntracing = true\nsampling = 0.5\n", "sampling"),
        ('[telemetry]\ntracing = "yes please"\n', "tracing must be bool"),
        ('[telemetry]\notlp_endpoint = "collector:4318"\n', "otlp_endpoint"),
        ('[telemetry]\nservice_name = " "\n', "service_name"),
    ]:
        with pytest.raises(ConfigurationError, match=problem):
            load_settings(_config(tmp_path, table), env={})
    with pytest.raises(ConfigurationError, match="CREDIT_GATEWAY_TELEMETRY_SAMPLING"):
        load_settings(_config(tmp_path, ""), env={"CREDIT_GATEWAY_TELEMETRY_SAMPLING": "1"})
