"""Huizhou's gateway with its partner cities over real HTTP on loopback:
routing by division code, merged lists with provenance, purpose propagation,
no forwarding loops, and each partner failure with its partial result."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from demo.dongguan import create_dongguan_app
from demo.federation import PARTNER_CLIENT_ID, gateway_with_token_endpoint, partner_sources_text
from demo.generate import create_demo_data
from demo.population import build_population
from gateway.settings import Settings, load_settings
from tests.connectors.http_server import LiveServer, free_port
from tests.gateway_fixtures import Gateway

SECRET = "partner-secret-for-tests-0123456789"
# The partners' deadline where a test is about what comes back, not how fast: no
# loaded machine reaches it (the demo's 2 s can be, by a gateway answering).
PATIENT = 30.0
SUPERVISOR = ("hz-market-app", "SUPERVISION")
CROSS_CITY = """query($u: [USCC!]!) { entities(usccs: $u) { uscc
  registration { name provenance { source city } }
  penalties { decisionNumber provenance { source city } } } }"""


class Counting:
    """Counts the GraphQL requests an ASGI app receives."""

    def __init__(self, app) -> None:
        self.app = app
        self.graphql_posts = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/graphql" and scope["method"] == "POST":
            self.graphql_posts += 1
        await self.app(scope, receive, send)


def with_partners(settings: Settings, tmp_path: Path, shenzhen_url: str, dongguan_url: str,
                  **source_changes) -> Settings:
    """``settings`` plus the two partner sources (changes apply to both)."""
    config = Path(settings.auth.jwks_file).with_name("gateway.toml")
    federated = config.with_name(f"federated-{time.monotonic_ns()}.toml")  # same relative paths
    federated.write_text(config.read_text(encoding="utf-8") + "\n" + partner_sources_text(
        shenzhen_url, dongguan_url, SECRET), encoding="utf-8")
    loaded = load_settings(federated, env={})
    sources = tuple(dataclasses.replace(s, **source_changes) if s.id in ("sz-gateway", "dg-gateway")
                    else s for s in loaded.sources)
    return dataclasses.replace(loaded, sources=sources, audit=settings.audit, auth=settings.auth)


@pytest.fixture(scope="module")
def shenzhen(tmp_path_factory):
    config = create_demo_data(tmp_path_factory.mktemp("shenzhen"), size=120, persons=30,
                              city="shenzhen")
    app = Counting(gateway_with_token_endpoint(load_settings(config, env={}),
                                               {PARTNER_CLIENT_ID: SECRET}))
    with LiveServer(app, lifespan="on") as server:
        server.counting = app
        server.population = build_population(120, 30, city="shenzhen")
        yield server


@pytest.fixture(scope="module")
def dongguan(population):
    app = create_dongguan_app(clients={PARTNER_CLIENT_ID: SECRET},
                              huizhou_usccs={e.uscc: e.name for e in population.enterprises},
                              size=80)
    with LiveServer(app) as server:
        server.state = app.state
        server.population = build_population(80, 50, city="dongguan")
        yield server


@pytest.fixture
def federated(demo_settings, tmp_path, shenzhen, dongguan):
    return with_partners(demo_settings, tmp_path, shenzhen.url, dongguan.url,
                         timeout_seconds=PATIENT)


def huizhou_code_dongguan_penalized(dongguan, population) -> str:
    """A Huizhou firm with a recent, shareable Dongguan penalty."""
    from datetime import date, timedelta

    recent = (date.today() - timedelta(days=200)).isoformat()
    held = dongguan.state.data.penalties
    return next(e.uscc for e in population.enterprises if any(
        p["cfrq"] >= recent and p["yzcd"] != "轻微" for p in held.get(e.uscc, [])))


def test_registrations_follow_the_division_code_and_lists_merge_every_city(
        federated, shenzhen, dongguan, population):
    hz = huizhou_code_dongguan_penalized(dongguan, population)
    sz = shenzhen.population.showcase["clean"]
    dg = dongguan.population.showcase["clean"]
    with Gateway(federated) as gateway:
        body = gateway.query(CROSS_CITY, SUPERVISOR, u=[hz, sz.uscc, dg.uscc])
    assert "errors" not in body, body["errors"]
    huizhou, shenzhen_firm, dongguan_firm = body["data"]["entities"]
    assert huizhou["registration"]["provenance"] == {"source": "hz-market", "city": "惠州"}
    assert shenzhen_firm["registration"] == {
        "name": sz.name, "provenance": {"source": "sz-gateway", "city": "深圳"}}
    assert dongguan_firm["registration"] == {
        "name": dg.name, "provenance": {"source": "dg-gateway", "city": "东莞"}}
    cities = {p["provenance"]["city"] for p in huizhou["penalties"]}
    assert "东莞" in cities  # a Dongguan penalty of a Huizhou firm, merged into its list


def test_purpose_and_organization_travel_with_the_partner_call(federated, dongguan, population):
    dongguan.state.received.clear()
    with Gateway(federated) as gateway:
        gateway.query(CROSS_CITY, ("hz-market-app", "LICENSING_REVIEW"),
                      u=[huizhou_code_dongguan_penalized(dongguan, population)])
    assert dongguan.state.received
    for call in dongguan.state.received:
        assert call["purpose"] == "LICENSING_REVIEW"
        assert call["on_behalf_of"] == "惠州市市场监督管理局"
        assert call["hop"] == "huizhou"


def test_a_partner_never_widens_what_the_purpose_may_see(federated, dongguan, population):
    # Dongguan does not share for incentive review: its part is refused, ours stays.
    with Gateway(federated) as gateway:
        body = gateway.query(CROSS_CITY, ("hz-credit-office", "INCENTIVE_REVIEW"),
                             u=[huizhou_code_dongguan_penalized(dongguan, population)])
    (entity,) = body["data"]["entities"]
    assert all(p["provenance"]["city"] != "东莞" for p in entity["penalties"])
    refused = {e["extensions"]["source"]: e for e in body["errors"]
               if e["extensions"]["code"] == "PARTNER_REFUSED"}
    assert set(refused) == {"sz-gateway", "dg-gateway"}  # neither shares for this purpose
    assert all(e["path"] == ["entities", 0, "penalties"] and e["extensions"]["partial"]
               for e in refused.values())


def hz_source_text(huizhou_url: str) -> str:
    return "\n".join([
        "[sources.hz-gateway]", 'connector = "shenzhen"', f'url = "{huizhou_url}/graphql"',
        f'token_url = "{huizhou_url}/oauth/token"', 'divisions = ["4413"]',
        'department = "惠州市公共信用信息管理系统"', 'city = "惠州"',
        'client_id = "shenzhen-gateway"', f'client_secret = "{SECRET}"',
        f"timeout_seconds = {PATIENT}",
    ])


def post(url: str, settings: Settings, client_id: str, purpose: str, query: str, **variables):
    from tests.gateway_fixtures import demo_token

    response = httpx2.post(f"{url}/graphql", timeout=4 * PATIENT, json={
        "query": query, "variables": variables}, headers={
        "Authorization": f"Bearer {demo_token(settings, client_id)}",
        "X-Purpose-Of-Use": purpose})
    assert response.status_code == 200, response.text
    return response.json()


def test_two_gateways_that_are_each_others_partner_do_not_loop(
        demo_settings, tmp_path, shenzhen, population):
    hz_port, sz_port = free_port(), free_port()
    hz_url, sz_url = f"http://127.0.0.1:{hz_port}", f"http://127.0.0.1:{sz_port}"
    federated = with_partners(demo_settings, tmp_path, sz_url, "http://127.0.0.1:9",
                              timeout_seconds=PATIENT)
    huizhou_settings = dataclasses.replace(federated, sources=tuple(
        s for s in federated.sources if s.id != "dg-gateway"))
    sz_dir = tmp_path / "shenzhen-looping"
    sz_config = create_demo_data(sz_dir, size=60, persons=20, city="shenzhen")
    looping = sz_dir / "looping.toml"
    looping.write_text(sz_config.read_text(encoding="utf-8") + "\n" + hz_source_text(hz_url),
                       encoding="utf-8")
    shenzhen_settings = load_settings(looping, env={})
    huizhou_app = Counting(gateway_with_token_endpoint(
        huizhou_settings, {"shenzhen-gateway": SECRET}))
    shenzhen_app = Counting(gateway_with_token_endpoint(
        shenzhen_settings, {PARTNER_CLIENT_ID: SECRET}))
    firms = [population.showcase["clean"].uscc,
             build_population(60, 20, city="shenzhen").showcase["clean"].uscc]
    with LiveServer(huizhou_app, lifespan="on", port=hz_port), \
            LiveServer(shenzhen_app, lifespan="on", port=sz_port):
        from_huizhou = post(hz_url, huizhou_settings, "hz-market-app", "LICENSING_REVIEW",
                            CROSS_CITY, u=firms)
        assert huizhou_app.graphql_posts == 1  # Shenzhen did not call back
        assert shenzhen_app.graphql_posts >= 1
        calls_to_shenzhen = shenzhen_app.graphql_posts
        from_shenzhen = post(sz_url, shenzhen_settings, PARTNER_CLIENT_ID, "LICENSING_REVIEW",
                             CROSS_CITY, u=firms)
        assert shenzhen_app.graphql_posts == calls_to_shenzhen + 1  # Huizhou did not call back
        assert huizhou_app.graphql_posts >= 2
    # Each side's audit trail names the organization the partner asked for.
    asked_for = asyncio.run(_details(shenzhen_settings))
    assert "on behalf of 惠州市市场监督管理局" in asked_for
    for body in (from_huizhou, from_shenzhen):
        assert "errors" not in body, body["errors"]
        registrations = [e["registration"]["provenance"]["city"] for e in body["data"]["entities"]]
        assert registrations == ["惠州", "深圳"]


async def _details(settings: Settings) -> list[str]:
    from gateway.audit import AuditStore

    store = AuditStore(settings.audit.url)
    try:
        return [r.entry.detail for r in await store.query(limit=100) if r.entry.detail]
    finally:
        await store.aclose()


def test_a_hanging_partner_costs_no_more_than_its_timeout(demo_settings, tmp_path, shenzhen,
                                                          population):
    released = threading.Event()  # set at the end: no request still hangs when the server stops

    async def hang(request: Request):
        async with asyncio.timeout(60):
            while not released.is_set():
                await asyncio.sleep(0.05)
        return JSONResponse({})

    timeout = 1.0
    hanging = Starlette(routes=[Route("/{path:path}", hang, methods=["GET", "POST"])])
    with LiveServer(hanging) as dongguan:
        try:
            settings = with_partners(demo_settings, tmp_path, shenzhen.url, dongguan.url,
                                     timeout_seconds=timeout)
            without_dongguan = dataclasses.replace(settings, sources=tuple(
                s for s in settings.sources if s.id != "dg-gateway"))
            dg = build_population(80, 50, city="dongguan").showcase["clean"].uscc
            hz = population.showcase["penalty_general_in_window"].uscc
            with Gateway(without_dongguan) as gateway:  # what the rest costs on this machine now
                started = time.perf_counter()
                gateway.query(CROSS_CITY, SUPERVISOR, u=[hz, dg])
                usual = time.perf_counter() - started
            with Gateway(settings) as gateway:
                started = time.perf_counter()
                body = gateway.query(CROSS_CITY, SUPERVISOR, u=[hz, dg])
                elapsed = time.perf_counter() - started
        finally:
            released.set()
    # What the query costs without the partner, plus the partner's timeout, plus a margin
    # (generous: a correctness bound, not a benchmark, that grows with the machine's load):
    # far less than the partner's hang, or than its timeout once per attempt (retries: 2).
    assert elapsed < timeout + 2 * usual + 0.5, (elapsed, usual)
    huizhou, dongguan_firm = body["data"]["entities"]
    assert huizhou["registration"]["name"] and huizhou["penalties"]
    assert dongguan_firm["registration"] is None
    errors = {(tuple(e["path"]), e["extensions"]["code"], e["extensions"]["source"])
              for e in body["errors"]}
    assert (("entities", 1, "registration"), "SOURCE_TIMEOUT", "dg-gateway") in errors
    assert (("entities", 0, "penalties"), "SOURCE_TIMEOUT", "dg-gateway") in errors


def test_the_circuit_opens_after_repeated_failures(demo_settings, tmp_path, shenzhen, population):
    reached = []  # every request that reached the failing partner

    async def unavailable(request: Request):
        reached.append(request.url.path)
        return JSONResponse({"code": 503, "message": "unavailable"}, status_code=503)

    failing = Starlette(routes=[Route("/{path:path}", unavailable, methods=["GET", "POST"])])
    query = "query($u: USCC!) { entity(uscc: $u) { penalties { decisionNumber } } }"
    hz = population.showcase["penalty_general_in_window"].uscc
    codes, requests = [], []
    with LiveServer(failing) as dongguan:
        settings = with_partners(demo_settings, tmp_path, shenzhen.url, dongguan.url,
                                 timeout_seconds=PATIENT, retries=0, breaker_failures=2,
                                 breaker_reset_seconds=60)
        with Gateway(settings) as gateway:
            for _ in range(3):
                body = gateway.query(query, SUPERVISOR, u=hz)
                codes.append([e["extensions"]["code"] for e in body["errors"]
                              if e["extensions"]["source"] == "dg-gateway"])
                requests.append(len(reached))
                assert body["data"]["entity"]["penalties"]  # Huizhou's own records still come
    assert codes == [["SOURCE_UNAVAILABLE"], ["SOURCE_UNAVAILABLE"], ["CIRCUIT_OPEN"]]
    # Open, the circuit fails the call at once: nothing more is sent to the partner.
    assert 0 < requests[0] < requests[1] == requests[2]


def test_a_wrong_answer_is_a_bad_upstream_response(federated, dongguan):
    dg = dongguan.population.showcase["clean"].uscc
    dongguan.state.fault = "wrong_shape"
    try:
        with Gateway(federated) as gateway:
            body = gateway.query(CROSS_CITY, SUPERVISOR, u=[dg])
    finally:
        dongguan.state.fault = None
    errors = {(tuple(e["path"]), e["extensions"]["code"]) for e in body["errors"]}
    assert (("entities", 0, "registration"), "BAD_UPSTREAM_RESPONSE") in errors
    assert body["data"]["entities"][0]["registration"] is None


def test_a_portfolio_reports_each_refusing_partner_once(federated, population):
    # The partners do not share for financing: each says so once for the
    # whole portfolio, and no part names them among its sources.
    codes = [population.showcase[c].uscc for c in ("financing_authorized", "black_list", "clean")]
    query = """query($u: [USCC!]!) { financingProfiles(usccs: $u) { uscc
        compliance { release { provenance { source } } blackListEntries }
        positiveSignals { release { provenance { source } } } indicators { code value } } }"""
    with Gateway(federated) as gateway:
        body = gateway.query(query, ("bank-icbc-huizhou", "FINANCING"), u=codes)
    refused = [e for e in body["errors"] if e["extensions"]["code"] == "PARTNER_REFUSED"]
    assert sorted(e["extensions"]["source"] for e in refused) == ["dg-gateway", "sz-gateway"]
    assert all(e["extensions"]["partial"] and "path" not in e for e in refused)
    assert len(body["errors"]) == len(refused)
    profiles = body["data"]["financingProfiles"]
    assert profiles[1]["compliance"]["blackListEntries"] == 1
    for profile in profiles:
        for part in ("compliance", "positiveSignals"):
            sources = {p["source"] for p in profile[part]["release"]["provenance"]}
            assert sources and not sources & {"sz-gateway", "dg-gateway"}
