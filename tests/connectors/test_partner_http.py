"""PartnerClient against a real HTTP partner on loopback: tokens, paths and
what a call returns."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import BadSourceData, SourceUnavailable
from tests.connectors.partner_server import (  # noqa: F401 (fixtures)
    FakeClock, assert_client_safe, client_for, partner, server,
)

pytestmark = pytest.mark.anyio


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
