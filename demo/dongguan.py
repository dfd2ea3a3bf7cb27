"""Simulator of Dongguan's (东莞, 441900) public credit API: a legacy REST/JSON
service of its own design, for demos and tests.

Every answer except the token endpoint's is an envelope
``{"code": 0, "message": "ok", "data": ...}``; an error is the same envelope
with a non-zero ``code`` equal to its HTTP status (400, 401, 403, 404).

- ``POST /oauth/token``: OAuth 2.0 client credentials (RFC 6749 §4.4), the
  client authenticated with HTTP Basic or ``client_id``/``client_secret``
  form fields. Answers ``{"access_token", "token_type": "Bearer",
  "expires_in": 600}`` (plain RFC 6749 JSON, no envelope); errors are RFC 6749
  error objects (``invalid_client`` 401, ``unsupported_grant_type`` 400).
- ``GET /api/v1/qyxx?tyshxydm=C1,C2,...``: registrations of at most 20 codes
  (more, or a malformed code: 400); unknown codes are simply absent. Fields:
  ``tyshxydm qymc fddbr qylx clrq zczb djzt zs jyfw djjg`` (entity type and
  status as words, ``clrq`` ``YYYY-MM-DD``, ``zczb`` 万元 as a string; some
  records lack ``fddbr``/``jyfw`` or have a null ``zczb``). Dongguan never
  shares the legal representative's ID number.
- ``GET /api/v1/xzcf/{tyshxydm}``: administrative penalties of one entity,
  newest first (unknown code: empty list). Fields: ``cfjdsh dsrmc wfxw wfss
  cfyj cflb fkje msje cfrq gsjzq yzcd cfjg cfjgdm``; ``cflb`` comma-separated
  words (警告, 罚款, 没收违法所得, ...), ``yzcd`` 轻微/一般/严重, amounts in 万元
  as strings or null. Held for Dongguan's entities and for every 7th of the
  ``huizhou_usccs`` (penalties Dongguan imposed on Huizhou firms operating
  there; a mapping code -> name supplies their names). Repaired penalties are
  never shared (NDRC Order 36, art. 3).

Every ``/api`` call needs a valid bearer token (else 401) and
``X-Purpose-Of-Use`` (else 400); Dongguan shares with other cities only for
``SHARED_PURPOSES`` (else 403 ``purpose not shared``).

For tests, ``app.state`` exposes: ``tokens_issued`` (int), ``tokens``
(token -> expiry on ``time.monotonic``; delete one to revoke it), ``calls``
(a ``Counter`` of ``"qyxx"``/``"xzcf"`` calls that passed authentication),
``received`` (one dict per ``/api`` request: ``path``, ``params``, ``purpose``,
``on_behalf_of`` (decoded), ``hop``, ``request_id``) and ``fault``: ``None``,
``"busy"`` (200 with code 50001) or ``"wrong_shape"`` (200 with ``data`` of
the wrong type) for every ``/api`` answer; ``delay`` (seconds each answer
takes) and ``max_in_flight`` (most answers in progress at once).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from demo.population import Enterprise, Population, build_population, organ_uscc
from demo.token_endpoint import client_credentials_route
from core.codes import InvalidCode, validate_uscc

__all__ = ["SHARED_PURPOSES", "MAX_CODES", "TOKEN_LIFETIME", "create_dongguan_app"]

SHARED_PURPOSES = frozenset({
    "PUBLIC_DISCLOSURE", "LICENSING_REVIEW", "JOINT_PUNISHMENT", "PROCUREMENT_REVIEW",
    "SUPERVISION",
})
MAX_CODES = 20
TOKEN_LIFETIME = 600
PERSONS = 50
HUIZHOU_EVERY = 7  # every 7th Huizhou code has penalties in Dongguan

_ENTITY_TYPES = {
    "1100": "有限责任公司", "1200": "股份有限公司", "2100": "全民所有制企业",
    "3100": "集体所有制企业", "4100": "合伙企业", "4500": "个人独资企业",
    "5100": "外商投资企业", "9100": "个体工商户", "9500": "农民专业合作社",
}
_STATUSES = ("吊销", "注销", "迁出")
_TOWNS = ("南城街道鸿福路", "东城街道东纵大道", "松山湖园区工业北路", "长安镇长安中路",
          "虎门镇连升路", "塘厦镇林村社区", "寮步镇香市路")
_REGISTRAR = "东莞市市场监督管理局"


# Organ -> (its USCC, abbreviation used in decision numbers); the codes pass
# both checks (USCC and organization code) and are distinct.
_ORGANS = {
    name: (organ_uscc("441900", name), short) for name, short in (
        ("东莞市市场监督管理局", "东市监"), ("东莞市生态环境局", "东环"),
        ("东莞市应急管理局", "东应急"), ("东莞市交通运输局", "东交"),
        ("东莞市城市管理和综合执法局", "东城管"),
    )
}
# severity word -> (violation, organ, legal basis, penalty type words, fine in 万元 or None)
_PENALTIES = {
    "轻微": (
        ("未按规定明码标价", "东莞市市场监督管理局", "《明码标价和禁止价格欺诈规定》第二十一条", "警告", None),
        ("未按规定设置安全警示标志", "东莞市应急管理局", "《中华人民共和国安全生产法》第九十九条", "警告,罚款", (0.1, 0.3)),
    ),
    "一般": (
        ("销售不符合食品安全标准的食品", "东莞市市场监督管理局", "《中华人民共和国食品安全法》第一百二十四条", "罚款,没收违法所得", (5, 20)),
        ("超标排放大气污染物", "东莞市生态环境局", "《中华人民共和国大气污染防治法》第九十九条", "罚款", (10, 100)),
        ("道路运输车辆超限运输", "东莞市交通运输局", "《公路安全保护条例》第六十四条", "罚款", (1, 3)),
    ),
    "严重": (
        ("未取得排污许可证排放污染物", "东莞市生态环境局", "《中华人民共和国环境保护法》第六十条", "罚款,责令停产停业", (100, 500)),
        ("生产不合格产品情节严重", "东莞市市场监督管理局", "《中华人民共和国产品质量法》第四十九条", "罚款,没收违法所得,吊销许可证件", (50, 200)),
    ),
}
_PUBLICITY_YEARS = {"轻微": None, "一般": 1, "严重": 3}
# case tag -> (severity word, decided between this many days ago)
_CASES = {
    "penalty_minor": ("轻微", (1, 60)),
    "penalty_general_in_window": ("一般", (30, 300)),
    "penalty_general_expired": ("一般", (400, 700)),
    "penalty_serious_in_window": ("严重", (400, 900)),
    "penalty_serious_expired": ("严重", (1100, 1500)),
}
_RECENT, _OLD = (20, 300), (1100, 1500)


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _amount(rng: random.Random, bounds: tuple[float, float] | None) -> str | None:
    if bounds is None:
        return None
    low, high = (round(b * 100) for b in bounds)
    cents = rng.randrange(low, high + 1)
    return f"{cents // 100}.{cents % 100:02d}"


class _Data:
    """Dongguan's records: registrations by code, penalties by code (newest first)."""

    def __init__(self, population: Population, huizhou: Sequence[str] | Mapping[str, str]) -> None:
        self.today = population.today
        self.serial = 101
        self.registrations: dict[str, dict[str, Any]] = {}
        self.penalties: dict[str, list[dict[str, Any]]] = {}
        rng = population.rng("dongguan-api")
        for e in population.enterprises:
            self.registrations[e.uscc] = self._registration(rng, e)
            for case, (severity, days) in _CASES.items():
                if case in e.cases:
                    self._penalty(rng, e.uscc, e.name, severity, days)
        names = huizhou if isinstance(huizhou, Mapping) else {}
        for i, code in enumerate(huizhou):
            if i % HUIZHOU_EVERY:
                continue
            prng = random.Random(f"441900:huizhou:{code}")
            trade = prng.choice("鸿信达恒泰丰华润盛兴") + prng.choice("隆通宏远东升")
            name = names.get(code) or f"惠州市{trade}实业有限公司"
            for j in range(1 + (i // HUIZHOU_EVERY) % 2):
                days = _RECENT if (i // HUIZHOU_EVERY + j) % 2 == 0 else _OLD
                self._penalty(prng, code, name, prng.choice(("轻微", "一般", "严重")), days)
        for rows in self.penalties.values():
            rows.sort(key=lambda row: (row["cfrq"], row["cfjdsh"]), reverse=True)

    def _registration(self, rng: random.Random, e: Enterprise) -> dict[str, Any]:
        individual = e.entity_type == "9100"
        row: dict[str, Any] = {
            "tyshxydm": e.uscc,
            "qymc": e.name,
            "fddbr": e.legal_representative.name,
            "qylx": _ENTITY_TYPES[e.entity_type],
            "clrq": e.established_on.isoformat(),
            "zczb": None if individual else f"{e.registered_capital}.0000",
            "djzt": rng.choice(_STATUSES) if rng.random() < 0.03 else "存续",
            "zs": f"广东省东莞市{rng.choice(_TOWNS)}{rng.randrange(1, 300)}号",
            "jyfw": e.business_scope,
            "djjg": _REGISTRAR,
        }
        if individual:
            del row["fddbr"]  # 个体工商户 have an operator, not a legal representative
        if rng.random() < 0.05:
            del row["jyfw"]
        return row

    def _penalty(self, rng: random.Random, code: str, name: str, severity: str,
                 days: tuple[int, int]) -> None:
        violation, organ, basis, types, fine = rng.choice(_PENALTIES[severity])
        decided = self.today - timedelta(days=rng.randrange(*days))
        years = _PUBLICITY_YEARS[severity]
        self.serial += 1
        self.penalties.setdefault(code, []).append({
            "cfjdsh": f"{_ORGANS[organ][1]}罚字〔{decided.year}〕{self.serial}号",
            "dsrmc": name,
            "wfxw": violation,
            "wfss": f"经查，当事人{name}存在{violation}的违法行为。",
            "cfyj": basis,
            "cflb": types,
            "fkje": _amount(rng, fine),
            "msje": _amount(rng, (0.5, 5)) if "没收违法所得" in types else None,
            "cfrq": decided.isoformat(),
            "gsjzq": None if years is None else _years_later(decided, years).isoformat(),
            "yzcd": severity,
            "cfjg": organ,
            "cfjgdm": _ORGANS[organ][0],
        })


def _envelope(data: Any, code: int = 0, message: str = "ok", status: int = 200,
              headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "data": data}, status_code=status,
                        headers=headers)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return _envelope(None, status, message, status, headers)


def create_dongguan_app(
    *, clients: dict[str, str], huizhou_usccs: Sequence[str] = (), size: int = 300,
    today: date | None = None,
) -> Starlette:
    """The Dongguan API over ``build_population(size, 50, city="dongguan")``;
    ``clients`` maps client_id -> client_secret."""
    data = _Data(build_population(size, PERSONS, city="dongguan", today=today), huizhou_usccs)

    def mint(client_id: str) -> str:
        issued = secrets.token_urlsafe(32)  # opaque: Dongguan keeps what it issued
        app.state.tokens[issued] = time.monotonic() + TOKEN_LIFETIME
        app.state.tokens_issued += 1
        return issued

    def admit(request: Request, call: str) -> JSONResponse | None:
        """Record the request; an error answer when it may not be served."""
        headers = request.headers
        purpose = headers.get("x-purpose-of-use")
        on_behalf_of = headers.get("x-on-behalf-of")
        app.state.received.append({
            "path": request.url.path,
            "params": dict(request.query_params),
            "purpose": purpose,
            "on_behalf_of": None if on_behalf_of is None else unquote(on_behalf_of),
            "hop": headers.get("x-credit-gateway-hop"),
            "request_id": headers.get("x-request-id"),
        })
        scheme, _, value = headers.get("authorization", "").partition(" ")
        expiry = app.state.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if expiry is None or expiry <= time.monotonic():
            return _error(401, "invalid or expired access token",
                          {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        app.state.calls[call] += 1
        if not purpose:
            return _error(400, "X-Purpose-Of-Use required")
        if purpose not in SHARED_PURPOSES:
            return _error(403, "purpose not shared")
        return None

    async def answer(payload: Any) -> JSONResponse:
        state = app.state
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            await asyncio.sleep(state.delay)
        finally:
            state.in_flight -= 1
        if state.fault == "busy":
            return _envelope(None, 50001, "系统繁忙，请稍后再试")
        if state.fault == "wrong_shape":
            return _envelope({"records": payload})
        return _envelope(payload)

    async def registrations(request: Request) -> JSONResponse:
        if (refusal := admit(request, "qyxx")) is not None:
            return refusal
        codes = [c for c in request.query_params.get("tyshxydm", "").split(",") if c.strip()]
        if not codes:
            return _error(400, "tyshxydm required")
        if len(codes) > MAX_CODES:
            return _error(400, f"at most {MAX_CODES} codes per call")
        try:
            codes = [validate_uscc(c) for c in codes]
        except InvalidCode:
            return _error(400, "malformed tyshxydm")
        held = data.registrations
        return await answer([held[c] for c in dict.fromkeys(codes) if c in held])

    async def penalties(request: Request) -> JSONResponse:
        if (refusal := admit(request, "xzcf")) is not None:
            return refusal
        try:
            code = validate_uscc(request.path_params["tyshxydm"])
        except InvalidCode:
            return _error(400, "malformed tyshxydm")
        return await answer(data.penalties.get(code, []))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return _error(status, "not found" if status == 404 else "request failed")

    app = Starlette(
        routes=[
            client_credentials_route(clients, mint, TOKEN_LIFETIME),
            Route("/api/v1/qyxx", registrations, methods=["GET"]),
            Route("/api/v1/xzcf/{tyshxydm}", penalties, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.tokens = {}
    app.state.tokens_issued = 0
    app.state.calls = Counter()
    app.state.received = []
    app.state.fault = None
    app.state.delay = 0.0
    app.state.in_flight = app.state.max_in_flight = 0
    app.state.data = data
    return app
