"""PartnerClient against a real HTTP partner on loopback (uvicorn in a thread).

The partner's behaviour is set per test on ``Partner``; it counts issued
tokens, requests and the requests in flight at once.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from connectors.partner_http import PartnerClient, RequestRefused
from gateway.errors import PartnerRefused
from gateway.errors import (
    BadSourceData, CircuitOpen, SourceError, SourceTimeout, SourceUnavailable,
)
from gateway.settings import SourceSettings
from tests.connectors.http_server import LiveServer

pytestmark = pytest.mark.anyio

CLIENT_ID, CLIENT_SECRET = "huizhou-gateway", "s3cret-Value-42"
LIMIT = 100_000  # max_response_bytes in these tests


class Partner:
    """A partner city's token endpoint (/token) and API (/api/...), test-controlled."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.status = 503  # for mode "status"; the first ``fail_first`` hits in "flaky"
        self.fail_first = 0
        self.retry_after: str | None = None
        self.delay = 0.0  # mode "slow"
        self.token_mode = "ok"
        self.token_fail_first = 0
        self.token_delay = 0.0
        self.expires_in: int | None = 3600
        self.tokens_issued = 0
        self.token_requests = 0
        self.hits = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.valid: set[str] = set()

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/token", self.token, methods=["POST"]),
            Route("/api", self.api, methods=["GET", "POST"]),
            Route("/api/{rest:path}", self.api, methods=["GET", "POST"]),
        ])

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        form = dict(parse_qsl((await request.body()).decode()))
        if request.headers.get("authorization") != expected or self.token_mode == "invalid_client":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if self.token_mode == "flaky" and self.token_requests <= self.token_fail_first:
            return Response("busy", status_code=503, media_type="text/plain")
        if self.token_mode == "html":
            return HTMLResponse("<html><body>Login</body></html>")
        await asyncio.sleep(self.token_delay)
        self.tokens_issued += 1
        token = f"token-{self.tokens_issued}"
        self.valid.add(token)
        answer = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return JSONResponse(answer)

    async def api(self, request: Request) -> Response:
        self.hits += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.valid:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        mode = self.mode
        if mode == "slow":
            await asyncio.sleep(self.delay)
        elif mode == "flaky" and self.hits <= self.fail_first:
            return self._status()
        elif mode == "status":
            return self._status()
        elif mode == "html":
            return HTMLResponse("<html><body>502 Bad Gateway (token=abc)</body></html>")
        elif mode == "malformed":
            return Response(b'{"records": [1, 2', media_type="application/json")
        elif mode == "huge":  # streamed, no Content-Length
            async def chunks() -> AsyncIterator[bytes]:
                yield b'{"pad": "'
                for _ in range(200):
                    yield b"x" * 65536
                yield b'"}'
            return StreamingResponse(chunks(), media_type="application/json")
        elif mode == "huge-length":
            return Response(b'"' + b"x" * (2 * LIMIT) + b'"', media_type="application/json")
        elif mode == "401-once" and token == "token-1":
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        elif mode == "401-always":
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        elif mode == "no-content":
            return Response(status_code=204)
        body = orjson.loads(await request.body()) if request.method == "POST" else None
        return JSONResponse({
            "path": request.url.path, "method": request.method,
            "params": dict(request.query_params), "body": body, "hit": self.hits,
        })

    def _status(self) -> Response:
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        return Response("<html>upstream error</html>", status_code=self.status,
                        media_type="text/html", headers=headers)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def partner() -> Partner:
    return Partner()


@pytest.fixture
def server(partner: Partner) -> Iterator[LiveServer]:
    with LiveServer(partner.app()) as live:
        yield live


def source(server: LiveServer, **overrides: object) -> SourceSettings:
    settings = SourceSettings(
        id="sz-test", connector="shenzhen", url=f"{server.url}/api",
        department="深圳市公共信用中心", city="深圳", token_url=f"{server.url}/token",
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, timeout_seconds=5.0, retries=2,
        backoff_seconds=0.01, breaker_failures=5, breaker_reset_seconds=30.0,
        max_concurrency=8, max_response_bytes=LIMIT,
    )
    return dataclasses.replace(settings, **overrides)


@asynccontextmanager
async def client_for(server: LiveServer, clock=time.monotonic, **overrides: object):
    client = PartnerClient(source(server, **overrides), clock=clock)
    try:
        yield client
    finally:
        await client.aclose()


def assert_client_safe(exc: SourceError, partner: Partner) -> None:
    text = str(exc)
    assert exc.source == "sz-test"
    assert "127.0.0.1" not in text and "http" not in text
    assert CLIENT_SECRET not in text and "token-" not in text and "<html" not in text


# -- plumbing and tokens ------------------------------------------------------------


async def test_get_and_post_json_reuse_one_token(server, partner):
    async with client_for(server) as client:
        got = await client.get_json("records", params={"code": "91441300MA4W"})
        assert got["path"] == "/api/records" and got["params"] == {"code": "91441300MA4W"}
        posted = await client.post_json("", {"query": "{ x }"})
        assert posted["path"] == "/api" and posted["body"] == {"query": "{ x }"}
        for _ in range(20):
            await client.get_json("/records")
    assert partner.tokens_issued == 1
    assert partner.hits == 22


async def test_204_is_none(server, partner):
    partner.mode = "no-content"
    async with client_for(server) as client:
        assert await client.get_json("x") is None


async def test_path_must_be_relative(server):
    async with client_for(server) as client:
        with pytest.raises(ValueError):
            await client.get_json("https://elsewhere.example/steal")


async def test_token_refreshed_shortly_before_expiry(server, partner):
    partner.expires_in = 100  # refreshed 10 s (10% of its lifetime) before it expires
    clock = FakeClock()
    async with client_for(server, clock=clock) as client:
        await client.get_json("a")
        clock.advance(85)
        await client.get_json("a")
        assert partner.tokens_issued == 1
        clock.advance(6)  # 91 s: within the last 10 s
        await client.get_json("a")
        assert partner.tokens_issued == 2
        await client.get_json("a")
        assert partner.tokens_issued == 2


async def test_long_lived_token_refreshed_30_seconds_before_expiry(server, partner):
    partner.expires_in = 3600
    clock = FakeClock()
    async with client_for(server, clock=clock) as client:
        await client.get_json("a")
        clock.advance(3569)
        await client.get_json("a")
        assert partner.tokens_issued == 1
        clock.advance(2)
        await client.get_json("a")
        assert partner.tokens_issued == 2


async def test_concurrent_first_calls_share_one_token_fetch(server, partner):
    partner.token_delay = 0.2
    async with client_for(server) as client:
        answers = await asyncio.gather(*(client.get_json("a") for _ in range(10)))
    assert len(answers) == 10
    assert partner.token_requests == 1 and partner.tokens_issued == 1


async def test_401_refreshes_the_token_once_and_retries(server, partner):
    partner.mode = "401-once"  # token-1 is refused, token-2 accepted
    async with client_for(server) as client:
        assert (await client.get_json("a"))["hit"] == 2
        await client.get_json("a")
    assert partner.tokens_issued == 2
    assert partner.hits == 3


async def test_401_after_refresh_is_an_error_not_a_loop(server, partner):
    partner.mode = "401-always"
    async with client_for(server, retries=5) as client:
        with pytest.raises(SourceUnavailable, match="refused the gateway's credentials") as caught:
            await client.post_json("graphql", {"query": "{ x }"}, idempotent=False)
    assert partner.tokens_issued == 2  # the first and one refresh
    assert partner.hits == 2
    assert_client_safe(caught.value, partner)


async def test_token_endpoint_refusing_the_credentials(server, partner):
    partner.token_mode = "invalid_client"
    async with client_for(server) as client:
        with pytest.raises(SourceUnavailable, match="refused the gateway's credentials") as caught:
            await client.get_json("a")
    assert partner.token_requests == 1 and partner.hits == 0
    assert_client_safe(caught.value, partner)


async def test_token_endpoint_503_is_retried(server, partner):
    partner.token_mode, partner.token_fail_first = "flaky", 2
    async with client_for(server) as client:
        await client.get_json("a")
    assert partner.token_requests == 3 and partner.tokens_issued == 1


async def test_token_endpoint_html_is_bad_data(server, partner):
    partner.token_mode = "html"
    async with client_for(server) as client:
        with pytest.raises(BadSourceData) as caught:
            await client.get_json("a")
    assert_client_safe(caught.value, partner)


# -- retries and the deadline ------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_retries_with_backoff_then_success(server, partner, monkeypatch, status):
    draws: list[tuple[float, float]] = []
    monkeypatch.setattr(random, "uniform", lambda a, b: draws.append((a, b)) or b)
    partner.mode, partner.status, partner.fail_first = "flaky", status, 2
    async with client_for(server, retries=2, backoff_seconds=0.05) as client:
        assert (await client.get_json("a"))["hit"] == 3
    assert draws == [(0, 0.05), (0, 0.1)]  # full jitter over backoff * 2**n


async def test_retries_exhausted(server, partner):
    partner.mode, partner.status = "status", 503
    async with client_for(server, retries=2) as client:
        with pytest.raises(SourceUnavailable, match=r"unavailable \(HTTP 503\)") as caught:
            await client.get_json("a")
    assert partner.hits == 3
    assert_client_safe(caught.value, partner)


async def test_non_idempotent_post_is_not_retried_on_503(server, partner):
    partner.mode, partner.status = "status", 503
    async with client_for(server, retries=2) as client:
        with pytest.raises(SourceUnavailable):
            await client.post_json("submit", {"a": 1}, idempotent=False)
    assert partner.hits == 1


async def test_500_is_not_retried(server, partner):
    partner.mode, partner.status = "status", 500
    async with client_for(server, retries=2) as client:
        with pytest.raises(SourceUnavailable, match=r"HTTP 500"):
            await client.get_json("a")
    assert partner.hits == 1


async def test_429_honours_a_small_retry_after(server, partner):
    partner.mode, partner.status, partner.fail_first, partner.retry_after = "flaky", 429, 1, "1"
    async with client_for(server, timeout_seconds=3.0, backoff_seconds=0.0) as client:
        started = time.monotonic()
        await client.post_json("graphql", {"query": "{ x }"}, idempotent=False)
        assert time.monotonic() - started >= 0.9
    assert partner.hits == 2


async def test_429_retry_after_past_the_deadline_fails_at_once(server, partner):
    partner.mode, partner.status, partner.retry_after = "status", 429, "30"
    async with client_for(server, timeout_seconds=2.0) as client:
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match="rate-limiting"):
            await client.get_json("a")
        assert time.monotonic() - started < 1.0
    assert partner.hits == 1


async def test_backoff_never_sleeps_past_the_deadline(server, partner, monkeypatch):
    monkeypatch.setattr(random, "uniform", lambda a, b: b)  # the longest jittered wait
    partner.mode, partner.status = "status", 503
    async with client_for(server, timeout_seconds=0.5, backoff_seconds=1.0, retries=5) as client:
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match="HTTP 503"):
            await client.get_json("a")
        assert time.monotonic() - started < 0.5  # gave up instead of sleeping 1 s
    assert partner.hits == 1


async def test_hanging_partner_times_out_within_the_deadline(server, partner):
    partner.mode, partner.delay = "slow", 3.0
    async with client_for(server, timeout_seconds=0.5, retries=2) as client:
        started = time.monotonic()
        with pytest.raises(SourceTimeout, match="within 0.5 s") as caught:
            await client.get_json("a")
        assert time.monotonic() - started < 0.5 + 0.5
    assert 1 <= partner.hits <= 3  # each attempt got a share of the budget
    assert_client_safe(caught.value, partner)


async def test_waiting_for_a_slot_counts_against_the_deadline(server, partner):
    partner.mode, partner.delay = "slow", 0.4
    async with client_for(server, timeout_seconds=0.6, retries=0, max_concurrency=1) as client:
        outcomes = await asyncio.gather(
            *(client.get_json("a") for _ in range(3)), return_exceptions=True
        )
    assert any(isinstance(o, SourceTimeout) for o in outcomes)
    assert partner.max_in_flight == 1


async def test_unreachable_partner_is_unavailable(server, partner):
    # A port nobody listens on: connection refused, retried, then unavailable.
    with LiveServer(Starlette()) as other:
        dead_url = f"{other.url}/api"
    async with client_for(server, url=dead_url) as client:
        with pytest.raises(SourceUnavailable, match="is unavailable") as caught:
            await client.get_json("a")
    assert_client_safe(caught.value, partner)


# -- circuit breaker ----------------------------------------------------------------


async def test_breaker_opens_fails_fast_half_opens_and_closes(server, partner):
    partner.mode, partner.status = "status", 500
    clock = FakeClock()
    async with client_for(server, clock=clock, breaker_failures=3,
                          breaker_reset_seconds=30.0) as client:
        for _ in range(3):
            with pytest.raises(SourceUnavailable):
                await client.get_json("a")
        assert partner.hits == 3 and client.breaker.state == "open"
        for _ in range(5):
            with pytest.raises(CircuitOpen) as caught:
                await client.get_json("a")
        assert partner.hits == 3  # no network while open
        assert_client_safe(caught.value, partner)

        clock.advance(31)
        assert client.breaker.state == "half-open"
        partner.mode = "ok"
        await client.get_json("a")  # the trial succeeds ...
        assert client.breaker.state == "closed"  # ... and closes the circuit
        await client.get_json("a")
        assert partner.hits == 5


async def test_failed_trial_reopens_the_breaker(server, partner):
    partner.mode = "malformed"  # bad data counts as a failure too
    clock = FakeClock()
    async with client_for(server, clock=clock, breaker_failures=2) as client:
        for _ in range(2):
            with pytest.raises(BadSourceData):
                await client.get_json("a")
        clock.advance(31)
        with pytest.raises(BadSourceData):
            await client.get_json("a")  # the trial fails ...
        with pytest.raises(CircuitOpen):
            await client.get_json("a")  # ... and the circuit is open again
        assert partner.hits == 3


async def test_half_open_lets_one_trial_through(server, partner):
    partner.mode, partner.status = "status", 500
    clock = FakeClock()
    async with client_for(server, clock=clock, breaker_failures=1) as client:
        with pytest.raises(SourceUnavailable):
            await client.get_json("a")
        clock.advance(31)
        partner.mode, partner.delay = "slow", 0.2
        outcomes = await asyncio.gather(
            *(client.get_json("a") for _ in range(4)), return_exceptions=True
        )
    assert sum(isinstance(o, CircuitOpen) for o in outcomes) == 3
    assert sum(isinstance(o, dict) for o in outcomes) == 1
    assert partner.hits == 2


async def test_refused_requests_do_not_open_the_breaker(server, partner):
    partner.mode, partner.status = "status", 404
    async with client_for(server, breaker_failures=2) as client:
        for _ in range(4):
            with pytest.raises(RequestRefused, match=r"refused the request \(HTTP 404\)"):
                await client.get_json("a")
        assert client.breaker.state == "closed"
    assert partner.hits == 4


# -- concurrency -------------------------------------------------------------------


async def test_at_most_max_concurrency_requests_in_flight(server, partner):
    partner.mode, partner.delay = "slow", 0.15
    async with client_for(server, max_concurrency=3) as client:
        await asyncio.gather(*(client.get_json("a") for _ in range(10)))
    assert partner.max_in_flight == 3
    assert partner.hits == 10


# -- bad answers --------------------------------------------------------------------


@pytest.mark.parametrize("mode, message", [
    ("html", "text/html content, not JSON"),
    ("malformed", "malformed JSON"),
    ("huge", f"more than {LIMIT} bytes"),
    ("huge-length", f"more than {LIMIT} bytes"),
])
async def test_bad_answers_are_bad_source_data(server, partner, mode, message):
    partner.mode = mode
    async with client_for(server) as client:
        with pytest.raises(BadSourceData, match=message) as caught:
            await client.get_json("a")
    assert partner.hits == 1  # not retried
    assert_client_safe(caught.value, partner)


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_other_4xx_is_a_refusal(server, partner, status):
    partner.mode, partner.status = "status", status
    async with client_for(server) as client:
        with pytest.raises(RequestRefused, match=f"HTTP {status}") as caught:
            await client.get_json("a")
    assert isinstance(caught.value, SourceUnavailable) and caught.value.status == status
    assert caught.value.extensions["code"] == "SOURCE_UNAVAILABLE"
    assert partner.hits == 1
    assert_client_safe(caught.value, partner)


async def test_403_is_the_partner_refusing_for_the_purpose(server, partner):
    partner.mode, partner.status = "status", 403
    async with client_for(server) as client:
        with pytest.raises(PartnerRefused, match="does not share this data") as caught:
            await client.get_json("a")
        assert client.breaker.state == "closed"
    assert caught.value.extensions["code"] == "PARTNER_REFUSED"
    assert partner.hits == 1
    assert_client_safe(caught.value, partner)


async def test_bad_data_helper(server):
    async with client_for(server) as client:
        error = client.bad_data("source sz-test answered a record without a code")
    assert isinstance(error, BadSourceData)
    assert error.source == "sz-test" and error.extensions["code"] == "BAD_UPSTREAM_RESPONSE"
