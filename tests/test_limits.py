"""Per-client rate limits (gateway/limits.py): requests and admitted cost per
window, per client or per partner-city organization, in memory or shared
through Redis, failing open or closed when the storage fails.

The Redis tests use the server at 127.0.0.1:6379 (``TEST_REDIS_URL`` to name
another) under a key prefix of their own, removed afterwards, so that
parallel runs never share a budget. Without Redis they are skipped, except
under CI (``CI`` set), where its absence is a failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from demo.population import build_population
from gateway import limits as gateway_limits
from gateway.audit import AuditStore
from gateway.clients import parse_clients
from gateway.limits import RATE_LIMIT_UNAVAILABLE, RATE_LIMITED
from gateway.settings import LimitSettings, load_settings
from tests.audit_support import closed_port  # noqa: F401 (a fixture)
from tests.gateway_fixtures import DEMO_PERSONS, DEMO_SIZE, TODAY, Gateway, demo_token

PUBLIC = ("xinyong-huizhou", "PUBLIC_DISCLOSURE")
SUPERVISOR = ("hz-market-app", "SUPERVISION")
ICBC = ("bank-icbc-huizhou", "FINANCING")
SHENZHEN = ("shenzhen-gateway", "LICENSING_REVIEW")
DONGGUAN = ("dongguan-gateway", "LICENSING_REVIEW")
CHEAP = "{ __typename }"  # admitted, cost 0: counts against the request budget only
PORTFOLIO = """query Portfolio($usccs: [USCC!]!) {
  financingProfiles(usccs: $usccs) { uscc identity { release { status } name } } }"""
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PURPOSES = {"PUBLIC_DISCLOSURE", "FINANCING", "LICENSING_REVIEW"}


# --- configuration -------------------------------------------------------------------------

def registry(**clients: dict) -> dict:
    return {"clients": {client_id: {"organization": "某单位", "city": "惠州",
                                    "kind": "internal_department",
                                    "purposes": ["PUBLIC_DISCLOSURE"], **table}
                        for client_id, table in clients.items()}}


def test_registry_limits_are_parsed_and_optional():
    clients = parse_clients(registry(a={"rate_limit": "600/minute",
                                        "cost_limit": "200000 per 5 minutes"}, b={}), PURPOSES)
    assert (clients["a"].rate_limit, clients["a"].cost_limit) == ("600/minute",
                                                                  "200000 per 5 minutes")
    assert (clients["b"].rate_limit, clients["b"].cost_limit) == (None, None)


@pytest.mark.parametrize(("value", "message"), [
    ("lots", r"\[clients.a\]: rate_limit 'lots' is not a rate limit"),
    ("10/fortnight", r"rate_limit '10/fortnight' is not a rate limit"),
    ("1/second;5/minute", r"rate_limit '1/second;5/minute' must be one limit, not 2"),
    ("0/minute", r"rate_limit '0/minute' must allow at least 1"),
    (600, r"rate_limit must be a string"),
])
def test_registry_refuses_invalid_limits(value, message):
    with pytest.raises(ConfigurationError, match=message):
        parse_clients(registry(a={"rate_limit": value}), PURPOSES)


def test_registry_refuses_unknown_limit_keys():
    with pytest.raises(ConfigurationError, match=r"unknown key\(s\) \['rate'\]"):
        parse_clients(registry(a={"rate": "1/second"}), PURPOSES)


def test_partner_city_clients_of_one_organization_declare_the_same_limits():
    partner = {"organization": "深圳市公共信用中心", "city": "深圳", "kind": "partner_city"}
    same = parse_clients(registry(sz1={**partner, "rate_limit": "100/minute"},
                                  sz2={**partner, "rate_limit": "100 per 1 minute"}), PURPOSES)
    assert same["sz1"].shares_organization_budget and same["sz2"].shares_organization_budget
    with pytest.raises(ConfigurationError, match="share one rate-limit budget"):
        parse_clients(registry(sz1={**partner, "rate_limit": "100/minute"},
                               sz2={**partner, "rate_limit": "200/minute"}), PURPOSES)
    # Other kinds of one organization keep budgets of their own.
    apps = parse_clients(registry(x={"rate_limit": "1/minute"}, y={"rate_limit": "2/minute"}),
                         PURPOSES)
    assert not apps["x"].shares_organization_budget


SETTINGS = """
[auth]
issuer = "urn:test:issuer"
audience = "urn:test:gateway"
jwks_file = "jwks.json"
clients_file = "clients.toml"

[audit]
url = "sqlite+aiosqlite:///audit.db"
subject_key = "0123456789abcdef0123456789abcdef"

[sources.hz-market]
connector = "market"
url = "sqlite+aiosqlite:///market.db"
department = "惠州市市场监督管理局"
city = "惠州"
"""


def test_limits_settings_have_safe_defaults(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text(SETTINGS, encoding="utf-8")
    assert load_settings(path, env={}).limits == LimitSettings(
        default_rate="600/minute", default_cost="200000/minute", storage_url="",
        key_prefix="credit-gateway", on_storage_error="open", storage_timeout_seconds=0.5)


def test_limits_settings_from_the_file_and_the_environment(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text(SETTINGS + '[limits]\ndefault_rate = "50/second"\non_storage_error = "closed"\n'
                    'storage_url_file = "redis-url"\n', encoding="utf-8")
    (tmp_path / "redis-url").write_text("async+redis://:secret@redis.internal:6379/0\n")
    limits = load_settings(path, env={"CREDIT_GATEWAY_LIMITS_DEFAULT_COST": "1000/hour"}).limits
    assert (limits.default_rate, limits.default_cost, limits.on_storage_error) == (
        "50/second", "1000/hour", "closed")
    assert limits.storage_url == "async+redis://:secret@redis.internal:6379/0"


@pytest.mark.parametrize(("text", "env", "message"), [
    ('default_rate = "fast"', {}, r"\[limits\]: default_rate 'fast' is not a rate limit"),
    ("", {"CREDIT_GATEWAY_LIMITS_DEFAULT_COST": "5/minute,6/hour"}, "must be one limit"),
    ('on_storage_error = "maybe"', {}, "on_storage_error must be \"open\" or \"closed\""),
    ('storage_url = "redis://localhost"', {}, "storage_url must be empty .* async\\+redis://"),
    ('storage_timeout_seconds = 0', {}, "storage_timeout_seconds must be a positive"),
    ('colour = "red"', {}, r"\[limits\]: unknown key\(s\) \['colour'\]"),
    ("", {"CREDIT_GATEWAY_LIMITS_COLOUR": "red"}, "is not a gateway setting"),
])
def test_invalid_limits_settings_are_refused(tmp_path, text, env, message):
    path = tmp_path / "gateway.toml"
    path.write_text(f"{SETTINGS}[limits]\n{text}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        load_settings(path, env=env)


# --- helpers -------------------------------------------------------------------------------

def with_clients(settings, tmp_path: Path, limits: dict[str, dict[str, str]] | None = None,
                 extra: str = "", **limit_settings):
    """``settings`` with a copy of its registry giving ``limits[client]`` keys to
    clients (and ``extra`` tables), and ``limit_settings`` in ``[limits]``."""
    text = Path(settings.auth.clients_file).read_text(encoding="utf-8")
    for client_id, keys in (limits or {}).items():
        lines = "".join(f'{key} = "{value}"\n' for key, value in keys.items())
        text, found = re.subn(rf"(?m)^\[clients\.{re.escape(client_id)}\]\n",
                              lambda m: m.group(0) + lines, text)
        assert found == 1, client_id
    path = tmp_path / f"clients-{secrets.token_hex(3)}.toml"
    path.write_text(text + "\n" + extra, encoding="utf-8")
    return dataclasses.replace(
        settings, auth=dataclasses.replace(settings.auth, clients_file=str(path)),
        audit=dataclasses.replace(settings.audit,
                                  url=f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"),
        limits=dataclasses.replace(settings.limits, **limit_settings))


def post(gateway, query, as_, request_id=None, **variables):
    return gateway.post(query, as_, headers={"X-Request-Id": request_id or uuid.uuid4().hex},
                        **variables)


def security_events(settings) -> list:
    async def read():
        store = AuditStore(settings.audit.url)
        try:
            return [r.entry for r in reversed(await store.query(limit=10_000))
                    if r.entry.kind == "security_event"]
        finally:
            await store.aclose()
    return asyncio.run(read())


def rate_limited_total(client_id: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("credit_gateway_rate_limited_total",
                                     {"client": client_id}) or 0.0


def assert_rate_limited(response, budget="requests", retry_after=True):
    assert response.status_code == 429, response.text
    body = response.json()
    assert "data" not in body
    (error,) = body["errors"]
    extensions = error["extensions"]
    assert extensions["code"] == RATE_LIMITED
    assert extensions["requestId"] == response.headers["X-Request-Id"]
    assert extensions["budget"] == budget
    if retry_after:
        assert int(response.headers["Retry-After"]) == extensions["retryAfter"] >= 1
    else:
        assert "Retry-After" not in response.headers and "retryAfter" not in extensions
    return error


@pytest.fixture(scope="module")
def usccs():
    return [e.uscc for e in build_population(DEMO_SIZE, DEMO_PERSONS, today=TODAY).enterprises]


# --- in memory -----------------------------------------------------------------------------

def test_a_burst_is_refused_with_429_retry_after_and_one_audit_record(demo_settings, tmp_path):
    """The defaults (600 requests a minute): a burst of 700 in a few seconds
    gets 600 answers, then 429s; only the first refusal is in the audit trail."""
    settings = with_clients(demo_settings, tmp_path)
    headers = {"Authorization": f"Bearer {demo_token(settings, PUBLIC[0])}",
               "X-Purpose-Of-Use": PUBLIC[1]}
    counted = rate_limited_total(PUBLIC[0])
    with Gateway(settings) as gateway:
        first = time.time()
        statuses = [gateway.client.post("/graphql", json={"query": CHEAP},
                                        headers=headers).status_code for _ in range(700)]
        refused = post(gateway, CHEAP, PUBLIC, request_id="refused-request-0001")
        expected_retry = first + 60 - time.time()
        other = post(gateway, CHEAP, SUPERVISOR)  # another client's budget
    assert statuses == [200] * 600 + [429] * 100
    error = assert_rate_limited(refused)
    assert refused.headers["content-type"] == "application/graphql-response+json"
    # When the oldest of the 600 leaves the window (whole seconds, rounded up).
    assert abs(int(refused.headers["Retry-After"]) - expected_retry) <= 2
    assert error["extensions"]["limit"] == "600 per 1 minute"
    assert error["message"].startswith("rate limit exceeded: client 'xinyong-huizhou' may send "
                                       "600 requests per 1 minute; retry after ")
    assert other.status_code == 200
    assert rate_limited_total(PUBLIC[0]) - counted == 101  # every refusal is counted ...
    (event,) = [e for e in security_events(settings) if e.outcome == "rate_limited"]
    assert (event.client_id, event.purpose) == PUBLIC  # ... the first one recorded
    assert "counted, not recorded one by one" in event.detail


def test_the_budget_frees_as_the_window_moves(demo_settings, tmp_path):
    settings = with_clients(demo_settings, tmp_path,
                            {"xinyong-huizhou": {"rate_limit": "2 per 2 seconds"}})
    with Gateway(settings) as gateway:
        assert [post(gateway, CHEAP, PUBLIC).status_code for _ in range(2)] == [200, 200]
        refused = post(gateway, CHEAP, PUBLIC)
        assert_rate_limited(refused)
        assert int(refused.headers["Retry-After"]) <= 2
        time.sleep(int(refused.headers["Retry-After"]) + 0.1)
        assert post(gateway, CHEAP, PUBLIC).status_code == 200


def test_refusals_answer_plain_json_clients_with_429_too(demo_settings, tmp_path):
    settings = with_clients(demo_settings, tmp_path,
                            {"xinyong-huizhou": {"rate_limit": "1/minute"}})
    with Gateway(settings) as gateway:
        post(gateway, CHEAP, PUBLIC)
        refused = gateway.post(CHEAP, PUBLIC, headers={"Accept": "application/json"})
    assert_rate_limited(refused)
    assert refused.headers["content-type"] == "application/json"


def test_an_expensive_portfolio_is_refused_by_the_cost_budget_first(demo_settings, tmp_path,
                                                                    usccs):
    """A bank's 500-enterprise portfolio costs 1,000 (2 per enterprise): with
    a cost budget of 2,500 a minute the third is refused on cost, long before
    its request budget; a cheap request of another client still passes."""
    settings = with_clients(demo_settings, tmp_path, {"bank-icbc-huizhou": {
        "rate_limit": "100/minute", "cost_limit": "2500/minute"}})
    portfolio = usccs[:500]
    with Gateway(settings) as gateway:
        answers = [post(gateway, PORTFOLIO, ICBC, usccs=portfolio) for _ in range(3)]
        cheap = post(gateway, CHEAP, SUPERVISOR)
    assert [a.status_code for a in answers[:2]] == [200, 200]
    assert len(answers[0].json()["data"]["financingProfiles"]) == 500
    error = assert_rate_limited(answers[2], budget="cost")
    assert error["extensions"]["limit"] == "2500 per 1 minute"
    assert error["message"].startswith("cost limit exceeded: client 'bank-icbc-huizhou' may "
                                       "spend a cost of 2500 per 1 minute (this request costs "
                                       "1000); retry after ")
    assert cheap.status_code == 200


def test_a_request_costing_more_than_the_whole_budget_is_refused_without_retry_after(
        demo_settings, tmp_path, usccs):
    settings = with_clients(demo_settings, tmp_path, {"bank-icbc-huizhou": {
        "cost_limit": "999/hour"}})
    with Gateway(settings) as gateway:
        refused = post(gateway, PORTFOLIO, ICBC, usccs=usccs[:500])
        small = post(gateway, PORTFOLIO, ICBC, usccs=usccs[:10])
    error = assert_rate_limited(refused, budget="cost", retry_after=False)
    assert error["message"] == ("the request's cost of 1000 exceeds the whole cost budget of "
                                "client 'bank-icbc-huizhou', 999 per 1 hour: ask for less in "
                                "one request")
    assert small.status_code == 200


SECOND_SHENZHEN_CLIENT = """
[clients.shenzhen-gateway-backup]
organization = "深圳市公共信用中心"
city = "深圳"
kind = "partner_city"
purposes = ["LICENSING_REVIEW"]
rate_limit = "4/minute"
"""


def test_a_partner_citys_client_ids_share_their_organizations_budget(demo_settings, tmp_path):
    settings = with_clients(demo_settings, tmp_path, {
        "shenzhen-gateway": {"rate_limit": "4/minute"},
        "dongguan-gateway": {"rate_limit": "4/minute"}}, extra=SECOND_SHENZHEN_CLIENT)
    backup = ("shenzhen-gateway-backup", "LICENSING_REVIEW")
    with Gateway(settings) as gateway:
        sent = [post(gateway, CHEAP, as_).status_code
                for as_ in (SHENZHEN, backup, SHENZHEN, backup)]
        refused = [post(gateway, CHEAP, SHENZHEN), post(gateway, CHEAP, backup)]
        dongguan = post(gateway, CHEAP, DONGGUAN)
    assert sent == [200] * 4
    for response in refused:
        error = assert_rate_limited(response)
        assert "organization '深圳市公共信用中心' (its partner-city clients together)" in (
            error["message"])
    assert dongguan.status_code == 200
    # One security event for the organization's budget, naming the client that hit it.
    (event,) = [e for e in security_events(settings) if e.outcome == "rate_limited"]
    assert event.client_id == "shenzhen-gateway"


def test_each_app_counts_alone_in_memory(demo_settings, tmp_path):
    settings = with_clients(demo_settings, tmp_path,
                            {"xinyong-huizhou": {"rate_limit": "2/minute"}})
    with Gateway(settings) as first, Gateway(settings) as second:
        statuses = [post(g, CHEAP, PUBLIC).status_code for g in (first, second, first, second)]
        assert statuses == [200] * 4
        assert post(first, CHEAP, PUBLIC).status_code == 429


# --- Redis ---------------------------------------------------------------------------------

@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the Redis server; its keys are removed after."""
    import redis  # a test dependency (pyproject's test extra)
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide Redis at {REDIS_URL}: {exc!r}")
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {exc!r}")
    prefix = f"credit-gw-test-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_two_instances_share_a_budget_through_redis(demo_settings, tmp_path, redis_prefix):
    settings = with_clients(demo_settings, tmp_path,
                            {"xinyong-huizhou": {"rate_limit": "5/minute"},
                             "bank-icbc-huizhou": {"cost_limit": "2500/minute"}},
                            storage_url=f"async+{REDIS_URL}", key_prefix=redis_prefix)
    with Gateway(settings) as first, Gateway(settings) as second:
        statuses = [post(g, CHEAP, PUBLIC).status_code
                    for g in (first, second, first, second, first)]
        refused = [post(first, CHEAP, PUBLIC), post(second, CHEAP, PUBLIC)]
        other = post(second, CHEAP, SUPERVISOR)
    assert statuses == [200] * 5
    for response in refused:
        assert_rate_limited(response)
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert other.status_code == 200


def test_the_cost_budget_is_shared_through_redis(demo_settings, tmp_path, redis_prefix, usccs):
    settings = with_clients(demo_settings, tmp_path,
                            {"bank-icbc-huizhou": {"cost_limit": "2500/minute"}},
                            storage_url=f"async+{REDIS_URL}", key_prefix=redis_prefix)
    with Gateway(settings) as first, Gateway(settings) as second:
        answers = [post(g, PORTFOLIO, ICBC, usccs=usccs[:500]) for g in (first, second, first)]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    assert_rate_limited(answers[2], budget="cost")


def test_another_key_prefix_is_another_budget(demo_settings, tmp_path, redis_prefix):
    limits = {"xinyong-huizhou": {"rate_limit": "1/minute"}}
    first = with_clients(demo_settings, tmp_path, limits, storage_url=f"async+{REDIS_URL}",
                         key_prefix=redis_prefix)
    other = dataclasses.replace(first, limits=dataclasses.replace(
        first.limits, key_prefix=f"{redis_prefix}:other"))
    with Gateway(first) as a, Gateway(other) as b:
        assert [post(g, CHEAP, PUBLIC).status_code for g in (a, b, a)] == [200, 200, 429]


# --- the storage fails ---------------------------------------------------------------------

@pytest.fixture
def storage_errors(monkeypatch) -> list[None]:
    counted: list[None] = []
    monkeypatch.setattr(gateway_limits, "count_storage_error", lambda: counted.append(None))
    return counted


def test_storage_down_fails_open_with_a_warning(demo_settings, tmp_path, closed_port, caplog,
                                                storage_errors):
    settings = with_clients(demo_settings, tmp_path,
                            {"xinyong-huizhou": {"rate_limit": "1/minute"}},
                            storage_url=f"async+redis://127.0.0.1:{closed_port}/0",
                            on_storage_error="open")
    caplog.set_level(logging.WARNING, logger="gateway.limits")
    with Gateway(settings) as gateway:
        statuses = [post(gateway, CHEAP, PUBLIC).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]  # served without limits
    assert len(storage_errors) == 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "gateway.limits"]
    assert warnings[0].startswith("rate-limit storage unavailable at start-up (ConnectionError")
    assert len(warnings) == 2  # then at most one every 10 s
    assert warnings[1].startswith("rate-limit storage unavailable (ConnectionError")
    assert "served without limits (on_storage_error = open)" in warnings[1]


def test_storage_down_fails_closed_with_503(demo_settings, tmp_path, closed_port,
                                            storage_errors):
    settings = with_clients(demo_settings, tmp_path,
                            storage_url=f"async+redis://127.0.0.1:{closed_port}/0",
                            on_storage_error="closed")
    with Gateway(settings) as gateway:
        refused = [post(gateway, CHEAP, PUBLIC) for _ in range(2)]
        health = gateway.client.get("/livez")
    for response in refused:
        assert response.status_code == 503, response.text
        (error,) = response.json()["errors"]
        assert error["extensions"] == {"code": RATE_LIMIT_UNAVAILABLE,
                                       "requestId": response.headers["X-Request-Id"]}
        assert response.headers["Retry-After"] == "1"
    assert len(storage_errors) == 2
    assert health.status_code == 200
    # Not the client's doing: nothing in the audit trail.
    assert [e for e in security_events(settings) if "rate" in e.outcome] == []


def test_a_storage_that_does_not_answer_is_given_up_on_after_its_timeout(
        demo_settings, tmp_path, storage_errors, monkeypatch, caplog):
    """A Redis that accepts connections and never answers: each request waits
    at most ``storage_timeout_seconds``, and the next ones within a second not at all."""
    monkeypatch.setattr(gateway_limits, "STARTUP_TIMEOUT_SECONDS", 0.3)
    ready, stop = threading.Event(), threading.Event()
    port: list[int] = []

    def serve() -> None:
        writers = []

        async def silent(reader, writer):
            writers.append(writer)
            await reader.read(1 << 16)  # and never answers

        async def main() -> None:
            server = await asyncio.start_server(silent, "127.0.0.1", 0)
            port.append(server.sockets[0].getsockname()[1])
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            for writer in writers:
                writer.close()
            server.close()
            await server.wait_closed()
        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(5)
    try:
        settings = with_clients(demo_settings, tmp_path,
                                storage_url=f"async+redis://127.0.0.1:{port[0]}/0",
                                storage_timeout_seconds=0.2)
        with Gateway(settings) as gateway:
            started = time.perf_counter()
            first = post(gateway, CHEAP, PUBLIC)
            first_took = time.perf_counter() - started
            started = time.perf_counter()
            second = post(gateway, CHEAP, PUBLIC)
            second_took = time.perf_counter() - started
    finally:
        stop.set()
        thread.join(5)
    assert (first.status_code, second.status_code) == (200, 200)
    assert "rate-limit storage unavailable at start-up (TimeoutError)" in caplog.text
    assert 0.2 <= first_took < 1.5
    assert second_took < 0.2
    assert len(storage_errors) == 2
