"""DongguanConnector against the Dongguan simulator (demo.dongguan) served by
uvicorn on loopback: real HTTP, OAuth client credentials, the city's envelope."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import date
from decimal import Decimal

import httpx2
import pytest
from starlette.applications import Starlette

from connectors.base import SourceCall
from connectors.dongguan import DongguanConnector
from connectors.partner import is_uscc
from demo.dongguan import create_dongguan_app
from demo.population import build_population
from core.errors import BadSourceData, PartnerRefused
from core.config import SourceSettings
from core.records.credit_office import PENALTIES, PenaltyType, Severity
from core.records.market import REGISTRATION, EntityStatus, Registration
from tests.connectors.http_server import LiveServer

pytestmark = pytest.mark.anyio

TODAY = date(2026, 6, 1)
CLIENT_ID, CLIENT_SECRET = "huizhou-gateway", "dg-Secret-7"
HUIZHOU = [e.uscc for e in build_population(60, 10, city="huizhou", today=TODAY).enterprises]
SHENZHEN_CODE = "91440300568520498A"
RESIDENT_ID = "440524188001010014"
UNKNOWN_DONGGUAN = "91441900708017879M"  # a valid Dongguan code the simulator does not hold
CALL = SourceCall(
    request_id="req-1", client_id="hz-supervision", organization="惠州市市场监督管理局",
    purpose="SUPERVISION", selected=frozenset({"Penalty.severity"}),
)


@pytest.fixture
def app() -> Starlette:
    return create_dongguan_app(
        clients={CLIENT_ID: CLIENT_SECRET}, huizhou_usccs=HUIZHOU, size=300, today=TODAY,
    )


@pytest.fixture
def server(app: Starlette) -> Iterator[LiveServer]:
    with LiveServer(app) as live:
        yield live


def settings(url: str, **overrides) -> SourceSettings:
    values = dict(
        id="dg-gateway", connector="dongguan", url=url, department="东莞市公共信用信息中心",
        city="东莞", divisions=("441900",), token_url=f"{url}/oauth/token",
        # a deadline no loaded machine reaches: these tests are not about speed
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, timeout_seconds=30.0, retries=1,
        max_concurrency=4,
    )
    return SourceSettings(**(values | overrides))


@asynccontextmanager
async def connector(server: LiveServer, **overrides) -> AsyncIterator[DongguanConnector]:
    source = DongguanConnector(settings(server.url, **overrides))
    try:
        yield source
    finally:
        await source.aclose()


def registrations(source: DongguanConnector, call: SourceCall = CALL):
    return functools.partial(source.load, REGISTRATION.name, call=call)


def penalties(source: DongguanConnector, call: SourceCall = CALL):
    return functools.partial(source.load, PENALTIES.name, call=call)


def held(app: Starlette) -> dict:
    return app.state.data.registrations


async def test_registrations_mapped_in_key_order(app: Starlette, server: LiveServer) -> None:
    rows = held(app)
    company = next(r for r in rows.values() if r["qylx"] == "有限责任公司" and r["djzt"] == "存续")
    individual = next(r for r in rows.values() if r["qylx"] == "个体工商户")
    keys = [company["tyshxydm"], UNKNOWN_DONGGUAN, HUIZHOU[0], individual["tyshxydm"],
            SHENZHEN_CODE, RESIDENT_ID]
    async with connector(server) as source:
        result = await registrations(source)(keys)

    assert [r is None for r in result] == [False, True, True, False, True, True]
    first, fourth = result[0], result[3]
    assert isinstance(first, Registration)
    assert first.uscc == company["tyshxydm"] and first.name == company["qymc"]
    assert first.legal_representative == company["fddbr"]
    assert first.legal_representative_id_number is None
    assert first.entity_type == "有限责任公司"
    assert first.established_on == date.fromisoformat(company["clrq"])
    assert first.registered_capital == Decimal(company["zczb"])
    assert first.status is EntityStatus.OPERATING
    assert first.address == company["zs"] and first.registration_authority == "东莞市市场监督管理局"
    assert first.provenance.city == "东莞" and first.provenance.source == "dg-gateway"
    # an individual business: no legal representative, no registered capital
    assert fourth.uscc == individual["tyshxydm"]
    assert fourth.legal_representative is None and fourth.registered_capital is None
    # one call, carrying only the Dongguan codes
    assert app.state.calls["qyxx"] == 1
    (request,) = app.state.received
    assert request["params"]["tyshxydm"].split(",") == [
        company["tyshxydm"], UNKNOWN_DONGGUAN, individual["tyshxydm"],
    ]


async def test_codes_outside_dongguan_are_not_requested(app: Starlette, server: LiveServer) -> None:
    async with connector(server) as source:
        result = await registrations(source)([HUIZHOU[0], SHENZHEN_CODE, RESIDENT_ID])
    assert result == [None, None, None]
    assert app.state.calls["qyxx"] == 0 and app.state.received == []
    assert app.state.tokens_issued == 0


async def test_45_codes_take_3_calls(app: Starlette, server: LiveServer) -> None:
    codes = list(held(app))[:45]
    async with connector(server, max_concurrency=2) as source:
        result = await registrations(source)(codes)
    assert [r.uscc for r in result] == codes
    assert app.state.calls["qyxx"] == 3
    sizes = sorted(len(r["params"]["tyshxydm"].split(",")) for r in app.state.received)
    assert sizes == [5, 20, 20]


async def test_penalties_of_dongguan_and_huizhou_codes(app: Starlette, server: LiveServer) -> None:
    population = build_population(300, 50, city="dongguan", today=TODAY)
    serious = population.showcase["penalty_serious_in_window"].uscc
    keys = [HUIZHOU[0], HUIZHOU[1], RESIDENT_ID, serious, UNKNOWN_DONGGUAN]
    async with connector(server) as source:
        result = await penalties(source)(keys)

    huizhou, other_huizhou, person, dongguan, unknown = result
    assert other_huizhou == [] and person == [] and unknown == []
    assert 1 <= len(huizhou) <= 2
    raw = app.state.data.penalties[HUIZHOU[0]]
    assert [p.decision_number for p in huizhou] == [r["cfjdsh"] for r in raw]
    for penalty, row in zip(huizhou, raw):
        assert penalty.decided_on == date.fromisoformat(row["cfrq"])
        assert penalty.severity.value == row["yzcd"]
        assert penalty.issuing_organ.startswith("东莞市") and penalty.repaired_on is None
        assert penalty.provenance.city == "东莞"
    (record,) = dongguan
    assert record.severity is Severity.SERIOUS
    assert PenaltyType.FINE in record.penalty_types
    assert record.fine is not None and record.publicity_ends_on is not None
    # one call per USCC; none for the resident ID
    assert app.state.calls["xzcf"] == 4
    assert RESIDENT_ID not in "".join(r["path"] for r in app.state.received)


class Gate:
    """ASGI middleware: holds the API requests until ``size`` of them wait at once,
    then lets them on together, and every later one at once (``arm`` closes it
    again). Calls that may overlap then do, however slow the machine: the ones
    let on together reach the simulator's handlers before any answer's delay ends."""

    def __init__(self, app: Starlette, size: int) -> None:
        self.app = app
        self.arm(size)

    def arm(self, size: int) -> None:
        self.size, self.waiting = size, 0
        self._open: asyncio.Event | None = None  # made on the server's loop

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            if self._open is None:
                self._open = asyncio.Event()
            opened = self._open
            if not opened.is_set():
                self.waiting += 1
                if self.waiting >= self.size:
                    opened.set()
                with contextlib.suppress(TimeoutError):  # too few came: the test says so
                    await asyncio.wait_for(opened.wait(), 30)
        await self.app(scope, receive, send)


async def test_calls_concurrent_within_the_limit(app: Starlette) -> None:
    app.state.delay = 0.05  # time in which a fourth call would arrive if it were sent
    codes = list(held(app))
    gate = Gate(app, 3)
    with LiveServer(gate) as server:
        async with connector(server, max_concurrency=3) as source:
            await penalties(source)(codes[:12])
            assert app.state.max_in_flight == 3
            app.state.max_in_flight = 0
            gate.arm(3)
            await registrations(source)(codes[:100])  # 5 calls
            assert app.state.max_in_flight == 3
    assert app.state.calls["xzcf"] == 12 and app.state.calls["qyxx"] == 5


async def test_huizhou_penalties_mix_recent_and_old() -> None:
    app = create_dongguan_app(clients={}, huizhou_usccs=HUIZHOU, today=TODAY)
    again = create_dongguan_app(clients={}, huizhou_usccs=HUIZHOU, today=TODAY)
    held_codes = {code for code in HUIZHOU if code in app.state.data.penalties}
    assert held_codes == set(HUIZHOU[::7])
    dates = [date.fromisoformat(p["cfrq"]) for c in held_codes for p in app.state.data.penalties[c]]
    ages = [(TODAY - d).days for d in dates]
    assert any(age < 365 for age in ages) and any(age > 3 * 365 for age in ages)
    assert app.state.data.penalties == again.state.data.penalties


async def test_headers_forwarded(app: Starlette, server: LiveServer) -> None:
    code = next(iter(held(app)))
    async with connector(server) as source:
        await registrations(source)([code])
        await penalties(source)([code])
    assert len(app.state.received) == 2
    for request in app.state.received:
        assert request["purpose"] == "SUPERVISION"
        assert request["on_behalf_of"] == "惠州市市场监督管理局"
        assert request["hop"] == "huizhou"
        assert request["request_id"] == "req-1"


@pytest.mark.parametrize("record_type", [REGISTRATION.name, PENALTIES.name])
async def test_purpose_not_shared(app: Starlette, server: LiveServer, record_type: str) -> None:
    code = next(iter(held(app)))
    call = SourceCall(request_id="req-2", client_id="bank", organization="某银行", purpose="FINANCING")
    async with connector(server) as source:
        with pytest.raises(PartnerRefused) as refused:
            await source.load(record_type, [code], call)
        # a refusal is no failure of the partner: the breaker stays closed
        assert source.client.breaker.state == "closed"
    assert refused.value.extensions["code"] == "PARTNER_REFUSED"
    assert app.state.received[-1]["purpose"] == "FINANCING"


async def test_token_fetched_once(app: Starlette, server: LiveServer) -> None:
    codes = list(held(app))
    async with connector(server) as source:
        for start in range(0, 100, 25):
            await registrations(source)(codes[start:start + 25])
        await penalties(source)(codes[:30])
    assert app.state.tokens_issued == 1
    assert app.state.calls["qyxx"] == 8 and app.state.calls["xzcf"] == 30


@pytest.mark.parametrize("fault", ["busy", "wrong_shape"])
async def test_envelope_error_and_wrong_shape(
    app: Starlette, server: LiveServer, fault: str,
) -> None:
    app.state.fault = fault
    code = next(iter(held(app)))
    async with connector(server) as source:
        with pytest.raises(BadSourceData):
            await registrations(source)([code])
        with pytest.raises(BadSourceData):
            await penalties(source)([code])


async def test_unmappable_record(app: Starlette, server: LiveServer) -> None:
    app.state.data.penalties[HUIZHOU[0]][0]["cflb"] = "罚款,打板子"
    app.state.data.registrations[next(iter(held(app)))]["djzt"] = "休眠"
    async with connector(server) as source:
        with pytest.raises(BadSourceData):
            await penalties(source)([HUIZHOU[0]])
        with pytest.raises(BadSourceData):
            await registrations(source)([next(iter(held(app)))])


def test_uscc_or_resident_id() -> None:
    assert is_uscc("91441900708017879M") and is_uscc("121200004013590816")
    assert not is_uscc(RESIDENT_ID) and not is_uscc("not-a-code")


async def test_simulator_api(app: Starlette, server: LiveServer) -> None:
    codes = list(held(app))
    async with httpx2.AsyncClient(base_url=server.url) as http:
        # client credentials as form fields
        token = await http.post("/oauth/token", data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        })
        assert token.status_code == 200
        body = token.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 600
        wrong = await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(CLIENT_ID, "wrong"))
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
        bearer = {"Authorization": f"Bearer {body['access_token']}",
                  "X-Purpose-Of-Use": "PUBLIC_DISCLOSURE"}
        ok = await http.get("/api/v1/qyxx", params={"tyshxydm": ",".join(codes[:20])},
                            headers=bearer)
        assert ok.status_code == 200 and ok.json()["code"] == 0 and len(ok.json()["data"]) == 20
        too_many = await http.get("/api/v1/qyxx", params={"tyshxydm": ",".join(codes[:21])},
                                  headers=bearer)
        assert too_many.status_code == 400 and too_many.json()["code"] == 400
        anonymous = await http.get(f"/api/v1/xzcf/{codes[0]}",
                                   headers={"X-Purpose-Of-Use": "SUPERVISION"})
        assert anonymous.status_code == 401 and anonymous.json()["code"] == 401
        refused = await http.get(f"/api/v1/xzcf/{codes[0]}",
                                 headers=bearer | {"X-Purpose-Of-Use": "SELF_INQUIRY"})
        assert refused.status_code == 403
        assert refused.json() == {"code": 403, "message": "purpose not shared", "data": None}
        missing = await http.get("/api/v1/nothing", headers=bearer)
        assert missing.status_code == 404 and missing.json()["code"] == 404
    assert app.state.tokens_issued == 1
