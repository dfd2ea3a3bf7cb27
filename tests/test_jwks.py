"""Where ``TokenVerifier``'s keys come from (gateway/jwks.py): a JWKS URL
fetched, cached, rotated and refreshed on a schedule with a bounded grace,
and a JWKS file re-read when it changes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import anyio
import httpx2
import pytest
from joserfc.jwk import RSAKey

from gateway.auth import AuthError, TokenVerifier
from tests.test_auth import (  # noqa: F401 (keys: a fixture)
    CLIENT, JWKS_URL, Keys, alg_none, auth_settings, hs256_with_public_key, keys, signed, token,
)

pytestmark = pytest.mark.anyio


# ---- JWKS URL: caching, rotation, bounded re-fetch ------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class JwksServer:
    """A MockTransport handler serving a mutable JWKS and counting fetches."""

    def __init__(self, *published: RSAKey) -> None:
        self.publish(*published)
        self.fetches = 0
        self.failure: httpx2.Response | Exception | None = None
        self.started = anyio.Event()  # set when a fetch begins
        self.gate: anyio.Event | None = None  # when set: fetches wait for it

    def hold(self) -> None:
        """Make the next fetches wait for ``release()``."""
        self.started, self.gate = anyio.Event(), anyio.Event()

    def release(self) -> None:
        assert self.gate is not None
        self.gate.set()

    def publish(self, *published: RSAKey) -> None:
        self.jwks = {"keys": [key.as_dict(private=False) for key in published]}

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        assert str(request.url) == JWKS_URL
        self.fetches += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        await anyio.sleep(0.01)  # let a burst of callers pile up behind the fetch
        if isinstance(self.failure, Exception):
            raise self.failure
        return self.failure or httpx2.Response(200, json=self.jwks)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(keys: Keys) -> JwksServer:
    return JwksServer(keys.signing)


@pytest.fixture
async def url_verifier(server: JwksServer, clock: Clock):
    verifier = TokenVerifier(
        auth_settings(jwks_url=JWKS_URL, jwks_min_refetch_seconds=60),
        transport=httpx2.MockTransport(server), clock=clock,
    )
    yield verifier
    await verifier.aclose()


async def verify_all(verifier: TokenVerifier, headers: list[str]) -> list[dict | AuthError]:
    results: list[dict | AuthError] = [None] * len(headers)  # type: ignore[list-item]

    async def one(i: int) -> None:
        try:
            results[i] = await verifier.verify(headers[i])
        except AuthError as exc:
            results[i] = exc

    async with anyio.create_task_group() as group:
        for i in range(len(headers)):
            group.start_soon(one, i)
    return results


async def test_url_keys_are_fetched_once_and_cached(url_verifier, server, keys) -> None:
    for _ in range(3):
        assert (await url_verifier.verify("Bearer " + token(keys.signing)))["client_id"] == CLIENT
    assert server.fetches == 1


async def test_hopeless_tokens_are_rejected_before_any_fetch(url_verifier, server, keys) -> None:
    for hopeless in (alg_none(keys), hs256_with_public_key(keys), "a.b.c",
                     signed(keys, {"alg": "RS256", "kid": "new", "typ": "JWT"})):
        with pytest.raises(AuthError):
            await url_verifier.verify("Bearer " + hopeless)
    assert server.fetches == 0


async def test_key_rotation_is_accepted_after_refetch(url_verifier, server, clock, keys) -> None:
    new = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True)
    await url_verifier.verify("Bearer " + token(keys.signing))
    server.publish(new)  # the issuer rotates: old key retired, new kid
    clock.now += 61
    assert (await url_verifier.verify("Bearer " + token(new)))["client_id"] == CLIENT
    assert server.fetches == 2
    with pytest.raises(AuthError, match="unknown key id"):  # the retired key is gone
        await url_verifier.verify("Bearer " + token(keys.signing))


async def test_rotation_within_the_refetch_interval_waits(url_verifier, server, clock, keys) -> None:
    new = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True)
    await url_verifier.verify("Bearer " + token(keys.signing))
    server.publish(keys.signing, new)
    clock.now += 30
    with pytest.raises(AuthError, match="unknown key id"):
        await url_verifier.verify("Bearer " + token(new))
    assert server.fetches == 1
    clock.now += 31
    assert (await url_verifier.verify("Bearer " + token(new)))["client_id"] == CLIENT
    assert server.fetches == 2


async def test_burst_of_unknown_kids_fetches_at_most_once(url_verifier, server, clock, keys) -> None:
    # a cold start: twenty concurrent requests share the first fetch
    results = await verify_all(url_verifier, ["Bearer " + token(keys.signing)] * 20)
    assert all(isinstance(r, dict) for r in results) and server.fetches == 1
    clock.now += 61
    strangers = [RSAKey.generate_key(2048, parameters={"kid": f"k{i}"}) for i in range(3)]
    results = await verify_all(url_verifier, ["Bearer " + token(strangers[i % 3]) for i in range(30)])
    assert all(isinstance(r, AuthError) and "unknown key id" in r.description for r in results)
    assert server.fetches == 2
    clock.now += 59
    with pytest.raises(AuthError, match="unknown key id"):
        await url_verifier.verify("Bearer " + token(strangers[0]))
    assert server.fetches == 2


@pytest.mark.parametrize("failure", [
    httpx2.Response(500, text="oops"),
    httpx2.Response(200, text="<html>not json</html>"),
    httpx2.Response(200, json={"keys": "none"}),
    httpx2.Response(302, headers={"Location": "https://elsewhere.example/jwks"}),
    httpx2.ConnectError("connection refused"),
], ids=["500", "bad JSON", "not a JWKS", "redirect", "unreachable"])
async def test_failing_jwks_url_is_a_401_not_a_crash(url_verifier, server, clock, keys, failure) -> None:
    server.failure = failure
    with pytest.raises(AuthError) as caught:
        await url_verifier.verify("Bearer " + token(keys.signing))
    assert (caught.value.status, caught.value.error) == (401, "invalid_token")
    assert "cannot be checked: the issuer's key set could not be fetched" in caught.value.description
    # the service recovers once the issuer does, without hammering it meanwhile
    server.failure = None
    with pytest.raises(AuthError):
        await url_verifier.verify("Bearer " + token(keys.signing))
    assert server.fetches == 1
    clock.now += 61
    assert (await url_verifier.verify("Bearer " + token(keys.signing)))["client_id"] == CLIENT


async def test_failed_refetch_keeps_the_previous_keys(url_verifier, server, clock, keys) -> None:
    await url_verifier.verify("Bearer " + token(keys.signing))
    server.failure = httpx2.Response(503)
    clock.now += 61
    with pytest.raises(AuthError, match="unknown key id 'stranger'"):
        await url_verifier.verify("Bearer " + token(keys.stranger))
    assert server.fetches == 2
    assert (await url_verifier.verify("Bearer " + token(keys.signing)))["client_id"] == CLIENT


# ---- JWKS URL: scheduled refresh, grace on failure ------------------------------------------


@pytest.fixture(scope="module")
def other() -> RSAKey:
    """A second key of the issuer's (same type and size as keys.signing)."""
    return RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True)


@pytest.fixture
async def refreshing(server: JwksServer, clock: Clock):
    """A JWKS URL verifier refreshing every 10 s, re-fetching for unknown kids every 60 s."""
    verifier = TokenVerifier(
        auth_settings(jwks_url=JWKS_URL, jwks_refresh_seconds=10, jwks_min_refetch_seconds=60),
        transport=httpx2.MockTransport(server), clock=clock,
    )
    yield verifier
    await verifier.aclose()


async def test_key_removed_from_the_url_is_refused_after_the_refresh_interval(
    refreshing, server, clock, keys, other
) -> None:
    server.publish(keys.signing, other)
    assert (await refreshing.verify("Bearer " + token(keys.signing)))["client_id"] == CLIENT
    server.publish(other)  # the issuer withdraws the key
    clock.now += 9.9
    assert (await refreshing.verify("Bearer " + token(keys.signing)))["client_id"] == CLIENT
    assert server.fetches == 1
    clock.now += 0.1
    with pytest.raises(AuthError, match="unknown key id"):
        await refreshing.verify("Bearer " + token(keys.signing))
    assert server.fetches == 2  # the scheduled refresh; the unknown kid is not fetched again so soon
    assert (await refreshing.verify("Bearer " + token(other)))["client_id"] == CLIENT
    assert server.fetches == 2


async def test_one_refresh_in_flight_and_the_others_use_the_cached_keys(
    refreshing, server, clock, keys, other
) -> None:
    await refreshing.verify("Bearer " + token(keys.signing))
    server.publish(keys.signing, other)
    server.hold()
    clock.now += 10
    results: dict[str, dict] = {}

    async def verify(name: str, key: RSAKey) -> None:
        results[name] = await refreshing.verify("Bearer " + token(key))

    with anyio.fail_after(5):  # a regression would wait for the held fetch forever
        async with anyio.create_task_group() as group:
            group.start_soon(verify, "refreshing", other)  # due: this one fetches
            await server.started.wait()
            group.start_soon(verify, "unknown kid", other)  # waits for the fetch in flight
            await anyio.wait_all_tasks_blocked()
            for _ in range(5):  # known keys do not wait: the cached set is within its grace
                assert (await refreshing.verify("Bearer " + token(keys.signing)))["client_id"] == CLIENT
            assert not results and server.fetches == 2
            server.release()
    assert set(results) == {"refreshing", "unknown kid"} and server.fetches == 2


async def test_unknown_kid_refetch_stays_rate_limited_alongside_the_schedule(
    server, clock, keys
) -> None:
    verifier = TokenVerifier(
        auth_settings(jwks_url=JWKS_URL, jwks_refresh_seconds=100, jwks_min_refetch_seconds=60),
        transport=httpx2.MockTransport(server), clock=clock,
    )
    stranger = "Bearer " + token(keys.stranger)
    fetches = []
    for advance, header in [(0, "Bearer " + token(keys.signing)), (1, stranger), (60, stranger), (1, stranger),
                            (98, "Bearer " + token(keys.signing)), (1, "Bearer " + token(keys.signing)),
                            (1, stranger), (30, stranger)]:
        clock.now += advance
        try:
            await verifier.verify(header)
        except AuthError as exc:
            assert "unknown key id 'stranger'" in exc.description
        fetches.append(server.fetches)
    # 1000: first fetch; 1061: for the unknown kid (and the schedule restarts from it);
    # 1161: scheduled, and it counts against the unknown-kid limit at 1162 and 1192
    assert fetches == [1, 1, 2, 2, 2, 3, 3, 3]
    await verifier.aclose()


@pytest.mark.parametrize("failure", [
    httpx2.ConnectError("connection refused"),
    httpx2.Response(200, text="<html>not json</html>"),
    httpx2.Response(200, json={"keys": [{"kty": "RSA", "n": "x"}]}),
], ids=["unreachable", "bad JSON", "invalid key"])
async def test_failed_refresh_keeps_the_last_keys_for_a_bounded_grace(
    refreshing, server, clock, keys, caplog, failure
) -> None:
    caplog.set_level("WARNING", logger="gateway.auth")
    await refreshing.verify("Bearer " + token(keys.signing))  # fetched at 1000: trusted until 1030
    server.failure = failure
    outcomes = []
    for at in (1015, 1020, 1025, 1029.9, 1031, 1040.9):
        clock.now = at
        try:
            await refreshing.verify("Bearer " + token(keys.signing))
            outcomes.append(("accepted", server.fetches))
        except AuthError as exc:
            assert (exc.status, exc.error) == (401, "invalid_token")
            assert "cannot be checked: the issuer's key set could not be fetched" in exc.description
            outcomes.append(("refused", server.fetches))
    # retried 10 s (the shorter of the two intervals) after each failure, but no later than when
    # the set is 3 refresh intervals old: then, with the issuer still failing, it is dropped
    assert outcomes == [("accepted", 2), ("accepted", 2), ("accepted", 3), ("accepted", 3),
                        ("refused", 4), ("refused", 4)]
    levels = [(r.levelname, "keeping the previous keys" in r.message, "dropped" in r.message)
              for r in caplog.records if r.name == "gateway.auth"]
    assert levels == [("WARNING", True, False), ("WARNING", True, False), ("ERROR", False, True)]
    server.failure = None  # the issuer recovers: the next scheduled attempt picks it up
    clock.now = 1041
    assert (await refreshing.verify("Bearer " + token(keys.signing)))["client_id"] == CLIENT
    assert server.fetches == 5


async def test_an_empty_jwks_from_the_url_trusts_no_key(refreshing, server, clock, keys) -> None:
    await refreshing.verify("Bearer " + token(keys.signing))
    server.publish()
    clock.now += 10
    with pytest.raises(AuthError, match="the issuer's key set has no keys"):
        await refreshing.verify("Bearer " + token(keys.signing))


# ---- JWKS file: re-read when it changes ------------------------------------------------------


def write_jwks(path: Path, *published: RSAKey, atomic: bool = False) -> None:
    text = json.dumps({"keys": [key.as_dict(private=False) for key in published]})
    if atomic:  # how deployment tools replace files: a new inode renamed over the old
        (path.parent / "jwks.json.new").write_text(text)
        (path.parent / "jwks.json.new").replace(path)
    else:
        path.write_text(text)


@pytest.fixture
def jwks_path(tmp_path: Path, keys: Keys, other: RSAKey) -> Path:
    path = tmp_path / "jwks.json"
    write_jwks(path, keys.signing, other)
    return path


@pytest.fixture
def file_verifier(jwks_path: Path, clock: Clock) -> TokenVerifier:
    return TokenVerifier(auth_settings(jwks_file=str(jwks_path)), clock=clock)


async def accepted(verifier: TokenVerifier, key: RSAKey) -> bool:
    try:
        return (await verifier.verify("Bearer " + token(key)))["client_id"] == CLIENT
    except AuthError as exc:
        assert "unknown key id" in exc.description or "has no keys" in exc.description, exc.description
        return False


@pytest.mark.parametrize("atomic", [False, True], ids=["rewritten in place", "replaced by rename"])
async def test_key_removed_from_the_file_is_refused_once_it_changed(
    file_verifier, jwks_path, clock, keys, other, atomic
) -> None:
    assert await accepted(file_verifier, keys.signing) and await accepted(file_verifier, other)
    write_jwks(jwks_path, other, atomic=atomic)
    clock.now += 0.5  # the file is looked at no more than once a second
    assert await accepted(file_verifier, keys.signing)
    clock.now += 0.5
    assert not await accepted(file_verifier, keys.signing)
    assert await accepted(file_verifier, other)
    write_jwks(jwks_path, keys.signing, atomic=atomic)  # and keys come back the same way
    clock.now += 1
    assert await accepted(file_verifier, keys.signing) and not await accepted(file_verifier, other)


async def test_same_size_rewrite_on_coarse_timestamps_is_noticed(
    tmp_path, clock, keys, other, monkeypatch
) -> None:
    """A rewrite that keeps size and mtime (one timestamp tick) is caught while the file is recent."""
    import gateway.jwks

    coarse = lambda st: (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mtime_ns)  # noqa: E731
    monkeypatch.setattr(gateway.jwks, "_signature", coarse)
    path = tmp_path / "jwks.json"
    mtime_ns = time.time_ns() + 3600 * 10**9  # ahead of the clock counts as recent too: deterministic
    write_jwks(path, keys.signing)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    verifier = TokenVerifier(auth_settings(jwks_file=str(path)), clock=clock)
    size = path.stat().st_size
    write_jwks(path, other)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    assert path.stat().st_size == size  # the signature did not change
    clock.now += 1
    assert not await accepted(verifier, keys.signing) and await accepted(verifier, other)


@pytest.mark.parametrize("content", [
    "{not json", "", '{"kty": "RSA"}', '{"keys": [{"kty": "RSA", "n": "x"}]}', None,
], ids=["bad JSON", "empty file", "not a JWKS", "invalid key", "removed"])
async def test_unusable_file_keeps_the_last_good_keys(
    file_verifier, jwks_path, clock, keys, other, caplog, content
) -> None:
    caplog.set_level("INFO", logger="gateway.auth")
    if content is None:
        jwks_path.unlink()
    else:
        jwks_path.write_text(content)
    for _ in range(3):
        clock.now += 1
        assert await accepted(file_verifier, keys.signing) and await accepted(file_verifier, other)
    errors = [r for r in caplog.records if r.name == "gateway.auth" and r.levelname == "ERROR"]
    assert len(errors) == 1  # once per problem, not once per check
    assert f"jwks_file {jwks_path}" in errors[0].message and "keeping the last good keys" in errors[0].message
    write_jwks(jwks_path, other)  # fixed: read again
    clock.now += 1
    assert not await accepted(file_verifier, keys.signing) and await accepted(file_verifier, other)


async def test_a_file_with_no_keys_trusts_no_key(file_verifier, jwks_path, clock, keys) -> None:
    jwks_path.write_text('{"keys": []}')
    clock.now += 1
    with pytest.raises(AuthError, match="the issuer's key set has no keys"):
        await file_verifier.verify("Bearer " + token(keys.signing))
