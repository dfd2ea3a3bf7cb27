"""PartnerClient against a real HTTP partner on loopback: retries, the
deadline, the circuit breaker, the concurrency limit and bad answers."""

from __future__ import annotations

import asyncio
import random
import socket
import time

import pytest

from connectors.partner_http import RequestRefused
from core.errors import (
    BadSourceData, CircuitOpen, PartnerRefused, SourceTimeout, SourceUnavailable,
)
from tests.connectors.partner_server import (  # noqa: F401 (fixtures)
    LIMIT, FakeClock, assert_client_safe, client_for, partner, server,
)

pytestmark = pytest.mark.anyio


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
    async with client_for(server, timeout_seconds=30.0, backoff_seconds=0.0) as client:
        started = time.monotonic()
        await client.post_json("graphql", {"query": "{ x }"}, idempotent=False)
        assert time.monotonic() - started >= 0.9
    assert partner.hits == 2


async def test_429_retry_after_past_the_deadline_fails_at_once(server, partner):
    partner.mode, partner.status, partner.retry_after = "status", 429, "60"
    async with client_for(server, timeout_seconds=20.0) as client:
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match="rate-limiting"):
            await client.get_json("a")
        # at once: not after waiting for the deadline (a SourceTimeout) or the 60 s
        assert time.monotonic() - started < 20.0 / 2
    assert partner.hits == 1


async def test_backoff_never_sleeps_past_the_deadline(server, partner, monkeypatch):
    monkeypatch.setattr(random, "uniform", lambda a, b: b)  # the longest jittered wait
    partner.mode, partner.status = "status", 503
    async with client_for(server, timeout_seconds=20.0, backoff_seconds=60.0, retries=5) as client:
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match="HTTP 503"):
            await client.get_json("a")
        # gave up instead of sleeping 60 s (or until the deadline: a SourceTimeout)
        assert time.monotonic() - started < 20.0 / 2
    assert partner.hits == 1


async def test_hanging_partner_times_out_within_the_deadline(server, partner):
    async with client_for(server, timeout_seconds=3.0, retries=2) as client:
        await client.get_json("a")  # the token, and a connection: the attempts reach the partner
        partner.mode, partner.delay = "slow", 60.0  # answers long after the test (released then)
        started = time.monotonic()
        with pytest.raises(SourceTimeout, match="within 3 s") as caught:
            await client.get_json("a")
        # the deadline, not the partner's 60 s nor three attempts of 3 s each
        assert time.monotonic() - started < 3.0 + 3.0
    assert 1 <= partner.hits - 1 <= 3  # each attempt got a share of the budget
    assert_client_safe(caught.value, partner)


async def test_waiting_for_a_slot_counts_against_the_deadline(server, partner):
    # One slot, a 3 s deadline, answers taking 1.8 s: the first call is answered with
    # 1.2 s to spare (plenty, even on a loaded machine: token and connection are ready);
    # the second waits 1.8 s for the slot, and the 1.2 s left cannot cover its answer.
    # Were the wait not counted, it would be answered. No request is abandoned while
    # another is in flight, so the partner sees the client's limit exactly.
    async with client_for(server, timeout_seconds=3.0, retries=0, max_concurrency=1) as client:
        await client.get_json("a")  # the token, and a connection to reuse
        partner.mode, partner.delay = "slow", 1.8
        first, second = await asyncio.gather(
            *(client.get_json("a") for _ in range(2)), return_exceptions=True
        )
    assert isinstance(first, dict) and first["hit"] == 2
    assert isinstance(second, SourceTimeout)
    assert partner.max_in_flight == 1


async def test_unreachable_partner_is_unavailable(server, partner):
    # A port bound but never listening: connection refused, retried, then unavailable.
    # Held for the whole test, so no other server (another test run's) can take it.
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{dead.getsockname()[1]}/api"
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
    # The first requests wait until three are in flight (as many as the client may
    # send at once, however slow the machine); each then takes 0.15 s more, time in
    # which a fourth would arrive if the client let it.
    partner.mode, partner.delay, partner.gate = "slow", 0.15, 3
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
