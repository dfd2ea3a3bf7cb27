"""``GET /metrics``: requests by client, purpose, operation and outcome, refusals
by code, one source observation per batch call (never per field), source
errors, the partner breakers read when scraped, the audit trail's appends,
and prometheus-client's multiprocess mode across worker processes."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import textwrap
from collections import Counter
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import metrics
from tests.connectors.http_server import free_port
from tests.gateway_fixtures import Gateway, demo_token, with_source

SUPERVISOR = ("hz-market-app", "SUPERVISION")
PUBLIC = ("xinyong-huizhou", "PUBLIC_DISCLOSURE")
PROCUREMENT = ("hz-procurement", "PROCUREMENT_REVIEW")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
def fresh_label_values(monkeypatch):
    """Label values bounded afresh: other tests of the run may have used up the
    per-process allowance (their values would be ``other`` here otherwise)."""
    monkeypatch.setattr(metrics, "_seen", {})


def scrape(gateway: Gateway, accept: str | None = None) -> Samples:
    """Every sample ``/metrics`` shows, by name and labels."""
    response = gateway.client.get("/metrics", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def matching(samples: Samples, name: str, **labels: str) -> dict[tuple, float]:
    """The samples of ``name`` whose labels include ``labels``."""
    return {key: v for key, v in samples.items()
            if key[0] == name and set(labels.items()) <= set(key[1])}


def requests(samples: Samples, operation: str) -> dict[tuple[str, str, str], float]:
    """(client, purpose, outcome) -> count, for one operation name."""
    found = {}
    for (name, labels), v in samples.items():
        labels = dict(labels)
        if name == "credit_gateway_requests_total" and labels["operation"] == operation:
            found[(labels["client"], labels["purpose"], labels["outcome"])] = v
    return found


def named(gateway: Gateway, query: str, operation_name: str, as_=SUPERVISOR, **variables):
    """POST ``query`` with its ``operationName``."""
    client_id, purpose = as_
    return gateway.client.post("/graphql", json={
        "query": query, "variables": variables, "operationName": operation_name}, headers={
        "Authorization": f"Bearer {demo_token(gateway.settings, client_id)}",
        "X-Purpose-Of-Use": purpose})


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_requests_are_counted_by_client_purpose_operation_and_outcome(demo_settings, population,
                                                                      tmp_path, monkeypatch):
    # A refusal's record is dropped after 0.5 s (tests/test_audit_trail.py); on a
    # loaded machine a commit may take that long: counting is tested here, not timing.
    monkeypatch.setattr("gateway.recording.REFUSAL_RECORD_TIMEOUT_SECONDS", 30.0)
    firm = population.showcase["dishonest_debtor"]
    settings = dataclasses.replace(
        with_source(demo_settings, "hz-court", url=f"sqlite+aiosqlite:///{tmp_path}/no/court.db"),
        max_subjects_per_request=2, max_body_bytes=4000)
    usccs = [e.uscc for e in population.enterprises[:3]]
    with Gateway(settings) as gateway:
        before = scrape(gateway)
        ok = gateway.post("query MetricsOk($u: USCC!) { entity(uscc: $u) { registration { name } } }",
                          u=firm.uscc)
        partial = gateway.post("""query MetricsPartial($u: USCC!) { entity(uscc: $u) {
            registration { name } dishonestDebtorRecords { caseCode } } }""", u=firm.uscc)
        denied_field = gateway.post("""query MetricsDeniedField($u: USCC!) { entity(uscc: $u) {
            penalties { facts } socialInsurance { period } } }""", PUBLIC, u=firm.uscc)
        not_granted = gateway.post("query MetricsNotGranted { __typename }",
                                   ("xinyong-huizhou", "FINANCING"))
        too_many = named(gateway, """query MetricsTooMany($u: [USCC!]!) {
            entities(usccs: $u) { uscc } }""", "MetricsTooMany", u=usccs)
        whole = gateway.post("""query MetricsWhole($u: USCC!) { entity(uscc: $u) {
            repairs { status } } }""", PROCUREMENT, u=firm.uscc)
        invalid = gateway.post("query MetricsInvalid { entity(uscc: \"91441300000000000X\") { nope } }")
        too_large = gateway.post("query MetricsTooLarge { __typename }" + " " * 5000)
        media = gateway.client.post("/graphql", content=b"{}", headers={"Content-Type": "text/plain"})
        no_token = gateway.client.post("/graphql", json={
            "query": "query MetricsNoToken { __typename }"}, headers={
            "X-Purpose-Of-Use": "441324197302218710"})  # no label value before it is checked
        unknown = gateway.post("{ __typename }", ("xinyong-huizhou", "CURIOSITY"))
        after = scrape(gateway)

    assert [r.status_code for r in (ok, partial, denied_field, not_granted, too_many, whole,
                                    invalid, too_large, media, no_token, unknown)] == [
        200, 200, 200, 403, 400, 403, 400, 413, 415, 401, 400]
    assert requests(after, "MetricsOk") == {("hz-market-app", "SUPERVISION", "ok"): 1}
    assert requests(after, "MetricsPartial") == {("hz-market-app", "SUPERVISION", "partial"): 1}
    assert requests(after, "MetricsDeniedField") == {
        ("xinyong-huizhou", "PUBLIC_DISCLOSURE", "denied"): 1}
    assert requests(after, "MetricsTooMany") == {("hz-market-app", "SUPERVISION", "rejected"): 1}
    assert requests(after, "MetricsWhole") == {
        ("hz-procurement", "PROCUREMENT_REVIEW", "rejected"): 1}
    assert requests(after, "MetricsInvalid") == {("hz-market-app", "SUPERVISION", "rejected"): 1}
    # Refused before the document was read: no operation name, and before the
    # caller was identified, no client or purpose either.
    refused_early = {key: delta(before, after, "credit_gateway_requests_total", **dict(
        zip(("client", "purpose", "operation", "outcome"), key)))
        for key in [("xinyong-huizhou", "FINANCING", "none", "denied"),
                    ("xinyong-huizhou", "none", "none", "rejected"),
                    ("none", "none", "none", "rejected"),
                    ("none", "none", "none", "denied")]}
    assert refused_early == {("xinyong-huizhou", "FINANCING", "none", "denied"): 1,
                             ("xinyong-huizhou", "none", "none", "rejected"): 1,  # CURIOSITY
                             ("none", "none", "none", "rejected"): 2,  # 413 and 415
                             ("none", "none", "none", "denied"): 1}  # no token
    labels = {v for (name, pairs) in after for _, v in pairs if name.startswith("credit_gateway")}
    assert not {"CURIOSITY", "441324197302218710"} & labels

    rejections = {code: delta(before, after, "credit_gateway_rejections_total", code=code)
                  for code in ("TOO_MANY_SUBJECTS", "FORBIDDEN_FOR_PURPOSE",
                               "GRAPHQL_VALIDATION_FAILED", "REQUEST_TOO_LARGE",
                               "UNSUPPORTED_MEDIA_TYPE", "PURPOSE_NOT_GRANTED", "UNAUTHENTICATED",
                               "UNKNOWN_PURPOSE")}
    assert rejections == dict.fromkeys(rejections, 1)

    for operation in ("MetricsOk", "MetricsPartial", "MetricsTooMany"):
        assert value(after, "credit_gateway_request_duration_seconds_count",
                     operation=operation) == 1
        assert value(after, "credit_gateway_request_duration_seconds_bucket",
                     operation=operation, le="+Inf") == 1
    assert delta(before, after, "credit_gateway_source_errors_total",
                 source="hz-court", code="SOURCE_UNAVAILABLE") == 1
    assert delta(before, after, "credit_gateway_source_duration_seconds_count",
                 source="hz-court", record_type="dishonest_debtors") == 1
    # Every executed operation's release and the refusals' security events are appended.
    assert delta(before, after, "credit_gateway_audit_append_duration_seconds_count",
                 kind="release") == 5
    assert delta(before, after, "credit_gateway_audit_append_duration_seconds_count",
                 kind="security_event") == 3
    assert matching(after, "credit_gateway_audit_append_failures_total") == matching(
        before, "credit_gateway_audit_append_failures_total")  # none failed


def test_histograms_count_batches_not_fields(demo_settings, population, monkeypatch):
    """Ten enterprises, three record types, in batches of four keys: one
    observation per batch call a source receives (a prefetch chunk, a
    DataLoader batch), as counted at the connectors, whatever the fields."""
    settings = dataclasses.replace(demo_settings, max_batch_keys=4)
    usccs = [e.uscc for e in population.enterprises[:10]]
    with Gateway(settings) as gateway:
        calls: Counter[tuple[str, str]] = Counter()
        for connector in gateway.registry.connectors.values():
            def counting(record_type, keys, call, _load=connector.load, _id=connector.id):
                calls[(_id, record_type)] += 1
                return _load(record_type, keys, call)
            monkeypatch.setattr(connector, "load", counting)
        before = scrape(gateway)
        body = gateway.query("""query MetricsBatches($u: [USCC!]!) { entities(usccs: $u) {
            uscc registration { name status legalRepresentative }
            penalties { decisionNumber severity decidedOn }
            taxRatings { year grade } } }""", u=usccs)
        after = scrape(gateway)
    assert "errors" not in body
    fields = sum(len(entity["penalties"]) + len(entity["taxRatings"]) + 1
                 for entity in body["data"]["entities"])
    assert calls and sum(calls.values()) < fields
    observed = {key: delta(before, after, "credit_gateway_source_duration_seconds_count",
                           source=key[0], record_type=key[1]) for key in calls}
    assert observed == calls
    chunks = math.ceil(len(usccs) / 4)
    assert calls[("hz-market", "registration")] == chunks
    assert all(n <= chunks for n in calls.values()), calls
    assert value(after, "credit_gateway_request_duration_seconds_count",
                 operation="MetricsBatches") == 1


def test_the_breaker_gauge_follows_a_partner_breaker(demo_settings, population, tmp_path):
    from tests.test_federation import with_partners

    down = f"http://127.0.0.1:{free_port()}"  # nothing listens: every call fails at once
    settings = with_partners(demo_settings, tmp_path, down, down, breaker_failures=1,
                             retries=0, breaker_reset_seconds=600)
    firm = population.showcase["dishonest_debtor"]
    with Gateway(settings) as gateway:
        closed = scrape(gateway)
        partial = gateway.query("""query MetricsPartners($u: USCC!) { entity(uscc: $u) {
            penalties { decisionNumber } } }""", u=firm.uscc)
        opened = scrape(gateway)
        again = gateway.query("""query MetricsPartners($u: USCC!) { entity(uscc: $u) {
            penalties { decisionNumber } } }""", u=firm.uscc)
        still = scrape(gateway)
    assert {e["extensions"]["source"] for e in partial["errors"]} == {"sz-gateway", "dg-gateway"}
    assert {e["extensions"]["code"] for e in again["errors"]} == {"CIRCUIT_OPEN"}
    for partner in ("sz-gateway", "dg-gateway"):
        states = {state: (value(closed, "credit_gateway_partner_circuit_state",
                                partner=partner, state=state),
                          value(opened, "credit_gateway_partner_circuit_state",
                                partner=partner, state=state))
                  for state in metrics.BREAKER_STATES}
        assert states == {"closed": (1, 0), "open": (0, 1), "half-open": (0, 0)}
        assert delta(closed, opened, "credit_gateway_source_errors_total", source=partner,
                     code="SOURCE_UNAVAILABLE") == 1
        assert delta(opened, still, "credit_gateway_source_errors_total", source=partner,
                     code="CIRCUIT_OPEN") == 1
    assert not matching(closed, "credit_gateway_partner_circuit_state", partner="hz-market")
    assert requests(still, "MetricsPartners") == {("hz-market-app", "SUPERVISION", "partial"): 2}


def test_rate_limited_requests(demo_settings, population):
    """A refusal of the limiter (``gateway.limits``) is a rejected request with its
    code, and ``credit_gateway_rate_limited_total`` counts it by client (the
    limiter calls ``metrics.rate_limited``)."""
    settings = dataclasses.replace(demo_settings, limits=dataclasses.replace(
        demo_settings.limits, default_rate="1/minute"))
    query = "query MetricsLimited { __typename }"
    with Gateway(settings) as gateway:
        before = scrape(gateway)
        first, second = gateway.post(query, PUBLIC), gateway.post(query, PUBLIC)
        after = scrape(gateway)
    assert (first.status_code, second.status_code) == (200, 429)
    assert requests(after, "MetricsLimited") == {
        ("xinyong-huizhou", "PUBLIC_DISCLOSURE", "ok"): 1,
        ("xinyong-huizhou", "PUBLIC_DISCLOSURE", "rejected"): 1}
    assert delta(before, after, "credit_gateway_rejections_total", code="RATE_LIMITED") == 1
    assert delta(before, after, "credit_gateway_rate_limited_total",
                 client="xinyong-huizhou") == 1


def test_exposition_formats_and_families(demo_settings):
    with Gateway(demo_settings) as gateway:
        gateway.post("query MetricsFamilies { __typename }")
        text = gateway.client.get("/metrics")
        open_metrics = gateway.client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.rstrip().endswith("# EOF")
    families = {f.name: f for f in text_string_to_metric_families(text.text)}
    expected = {
        "credit_gateway_requests": ("counter", {"client", "purpose", "operation", "outcome"}),
        "credit_gateway_request_duration_seconds": ("histogram", {"operation", "le"}),
        "credit_gateway_rejections": ("counter", {"code"}),
        "credit_gateway_source_duration_seconds": ("histogram", {"source", "record_type", "le"}),
        "credit_gateway_source_errors": ("counter", {"source", "code"}),
        "credit_gateway_partner_circuit_state": ("gauge", {"partner", "state"}),
        "credit_gateway_audit_append_duration_seconds": ("histogram", {"kind", "le"}),
        "credit_gateway_audit_append_failures": ("counter", {"kind", "reason"}),
        "credit_gateway_rate_limited": ("counter", {"client"}),
    }
    for name, (kind, labels) in expected.items():
        assert name in families, name
        assert families[name].type == kind
        for sample in families[name].samples:
            wanted = labels if sample.name.endswith("_bucket") else labels - {"le"}
            assert set(sample.labels) == wanted, (name, sample)
    assert "_created" not in text.text


def test_label_values_are_bounded(monkeypatch):
    monkeypatch.setattr(metrics, "_seen", {})
    monkeypatch.setattr(metrics, "MAX_LABEL_VALUES", 3)
    assert [metrics._bounded("operation", f"Op{i}") for i in range(5)] == [
        "Op0", "Op1", "Op2", "other", "other"]
    assert metrics._bounded("operation", "Op1") == "Op1"
    assert metrics._bounded("client", None) == "none"


WORKER = textwrap.dedent("""
    import sys
    from gateway import metrics
    metrics.REQUESTS.labels("bank-hzrcb", "FINANCING", "BankFinancingProfile", "ok").inc()
    metrics.SOURCE_SECONDS.labels("hz-tax", "tax_ratings").observe(float(sys.argv[1]))
    metrics.rate_limited("bank-hzrcb")
""")


def test_multiprocess_mode_merges_every_worker(demo_settings, tmp_path, monkeypatch):
    """Two processes write their values to ``PROMETHEUS_MULTIPROC_DIR``;
    ``/metrics`` (of a process whose own values are not in those files)
    shows their sums, beside this app's breaker gauge."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {**os.environ, metrics.MULTIPROC_ENV: str(directory)}
    for seconds in ("0.003", "0.7"):
        subprocess.run([sys.executable, "-c", WORKER, seconds], env=env, check=True, timeout=120)
    assert len(list(directory.glob("*.db"))) >= 2  # one file per process and kind
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(directory))
    with Gateway(demo_settings) as gateway:
        gateway.post("query MetricsNotInTheFiles { __typename }")
        samples = scrape(gateway)
    assert value(samples, "credit_gateway_requests_total", client="bank-hzrcb",
                 purpose="FINANCING", operation="BankFinancingProfile", outcome="ok") == 2
    assert value(samples, "credit_gateway_rate_limited_total", client="bank-hzrcb") == 2
    assert value(samples, "credit_gateway_source_duration_seconds_count", source="hz-tax",
                 record_type="tax_ratings") == 2
    assert value(samples, "credit_gateway_source_duration_seconds_bucket", source="hz-tax",
                 record_type="tax_ratings", le="0.005") == 1
    assert value(samples, "credit_gateway_source_duration_seconds_sum", source="hz-tax",
                 record_type="tax_ratings") == pytest.approx(0.703)
    assert not requests(samples, "MetricsNotInTheFiles")
    assert not matching(samples, "credit_gateway_partner_circuit_state")  # no partners here
