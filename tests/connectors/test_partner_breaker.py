"""The partner's circuit breaker judges the partner, not the gateway's own
queue: a call that never got a concurrency slot is no failure of the partner."""

from __future__ import annotations

import pytest

from core.errors import SourceTimeout
from tests.connectors.partner_server import (  # noqa: F401 (fixtures)
    FakeClock, client_for, partner, server,
)

pytestmark = pytest.mark.anyio


async def test_a_call_that_timed_out_waiting_for_a_slot_does_not_open_the_breaker(server, partner):
    clock = FakeClock()
    async with client_for(server, clock=clock, timeout_seconds=0.2, retries=0,
                          max_concurrency=1, breaker_failures=1) as client:
        await client.get_json("a")  # the token is fetched, the partner answers
        await client._slots.acquire()  # every slot taken, as by a burst of other calls
        try:
            hits = partner.hits
            for _ in range(3):
                with pytest.raises(SourceTimeout):
                    await client.get_json("a")
            assert partner.hits == hits  # none of them reached the partner
            assert client.breaker.state == "closed"
        finally:
            client._slots.release()
        assert await client.get_json("a") is not None  # and the partner is still asked


async def test_a_partner_timing_out_still_opens_it(server, partner):
    clock = FakeClock()
    partner.mode, partner.delay = "slow", 60.0
    async with client_for(server, clock=clock, timeout_seconds=0.2, retries=0,
                          breaker_failures=1) as client:
        with pytest.raises(SourceTimeout):
            await client.get_json("a")
        assert client.breaker.state == "open"
