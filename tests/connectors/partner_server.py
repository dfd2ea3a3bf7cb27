"""A controllable HTTP partner on loopback for the PartnerClient tests: it
issues tokens and counts tokens, requests and the requests in flight at once.

Nothing here depends on how fast the machine is: a test that needs requests
to overlap says how many (``gate``) instead of hoping a delay is long enough,
and slow answers end early when the server stops (``release``), so no request
is still running, or cancelled, at teardown."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
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

from connectors.partner_http import PartnerClient
from core.errors import SourceError
from core.config import SourceSettings
from tests.connectors.http_server import LiveServer

CLIENT_ID, CLIENT_SECRET = "huizhou-gateway", "s3cret-Value-42"
LIMIT = 100_000  # max_response_bytes in these tests
GATE_SECONDS = 30.0  # the longest a request waits at the gate


class Partner:
    """A partner city's token endpoint (/token) and API (/api/...), test-controlled."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.status = 503  # for mode "status"; the first ``fail_first`` hits in "flaky"
        self.fail_first = 0
        self.retry_after: str | None = None
        self.delay = 0.0  # mode "slow": seconds each answer takes ...
        self.gate = 0  # ... after the first ones waited until this many were in flight at once
        self.released = False  # set by ``release``: slow answers end now
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
        await self._pause(self.token_delay)
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
            await self._meet()
            await self._pause(self.delay)
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

    async def _meet(self) -> None:
        """Until ``gate`` requests have been in flight at once (never, for a client
        that does not send them together: then for at most ``GATE_SECONDS``)."""
        deadline = time.monotonic() + GATE_SECONDS
        while (self.max_in_flight < self.gate and not self.released
               and time.monotonic() < deadline):
            await asyncio.sleep(0.001)

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or until ``release``."""
        end = time.monotonic() + seconds
        while not self.released and (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))

    def release(self) -> None:
        """End every slow answer and gate now (before the server stops)."""
        self.released = True

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
        try:
            yield live
        finally:
            partner.release()


def source(server: LiveServer, **overrides: object) -> SourceSettings:
    settings = SourceSettings(
        id="sz-test", connector="shenzhen", url=f"{server.url}/api",
        department="深圳市公共信用中心", city="深圳", token_url=f"{server.url}/token",
        # A deadline no loaded machine reaches: tests of the deadline set their own.
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, timeout_seconds=30.0, retries=2,
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
