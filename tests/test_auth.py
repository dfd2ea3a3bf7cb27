"""Bearer-token authentication: which tokens ``TokenVerifier`` accepts, and why it refuses the rest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from demo.issuer import DEMO_AUDIENCE, DEMO_ISSUER, ensure_signing_key, issue_token
from gateway.auth import AuthError, TokenVerifier
from gateway.errors import ConfigurationError
from gateway.settings import AuthSettings

pytestmark = pytest.mark.anyio

CLIENT = "bank-icbc-huizhou"
JWKS_URL = "https://idp.example/jwks.json"


@dataclass(frozen=True)
class Keys:
    signing: RSAKey  # the issuer's key, published in jwks_path
    jwks_path: Path
    stranger: RSAKey  # a key the issuer never published

    @property
    def kid(self) -> str:
        return self.signing.kid


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    signing, jwks_path = ensure_signing_key(tmp_path_factory.mktemp("issuer"))
    stranger = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig", "kid": "stranger"})
    return Keys(signing, jwks_path, stranger)


def auth_settings(**overrides) -> AuthSettings:
    values = {"issuer": DEMO_ISSUER, "audience": DEMO_AUDIENCE, "clients_file": "clients.toml"}
    return AuthSettings(**{**values, **overrides})


@pytest.fixture
async def verifier(keys: Keys):
    verifier = TokenVerifier(auth_settings(jwks_file=str(keys.jwks_path)))
    yield verifier
    await verifier.aclose()


def token(key: RSAKey, **overrides) -> str:
    """A token from the demo issuer; an override of ``None`` removes the claim."""
    client_id = overrides.pop("client_id", CLIENT)  # the claim, keeping sub
    return issue_token(key, client_id=client_id, issuer=DEMO_ISSUER, audience=DEMO_AUDIENCE,
                       **{"sub": CLIENT, **overrides})


def b64(data: bytes | dict) -> str:
    if isinstance(data, dict):
        data = json.dumps(data).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides) -> dict:
    now = int(time.time())
    values = {"iss": DEMO_ISSUER, "sub": CLIENT, "client_id": CLIENT, "aud": DEMO_AUDIENCE,
              "iat": now, "exp": now + 600, "jti": "j-1"}
    return {**values, **overrides}


def signed(keys: Keys, header: dict) -> str:
    """Claims signed with the issuer's real key under a header of our choosing."""
    return jwt.encode(header, claims(), keys.signing, algorithms=[header["alg"]], default_type=None)


def alg_none(keys: Keys) -> str:
    return f"{b64({'alg': 'none', 'typ': 'at+jwt', 'kid': keys.kid})}.{b64(claims())}."


def hs256_with_public_key(keys: Keys) -> str:
    """The classic confusion attack: HMAC keyed with the bytes of the RSA public key."""
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': keys.kid})}.{b64(claims())}"
    secret = keys.signing.as_pem(private=False)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def tampered(keys: Keys) -> str:
    header, payload, signature = token(keys.signing).split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["client_id"] = "someone-else"
    return f"{header}.{b64(forged)}.{signature}"


def bearer(make: Callable[[Keys], str]) -> Callable[[Keys], str]:
    return lambda keys: "Bearer " + make(keys)


NOW = int(time.time())

ACCEPTED = {
    "valid": bearer(lambda k: token(k.signing)),
    "aud list containing ours": bearer(lambda k: token(k.signing, aud=["urn:other", DEMO_AUDIENCE])),
    "typ application/at+jwt": bearer(lambda k: signed(k, {"alg": "RS256", "kid": k.kid, "typ": "application/at+jwt"})),
    "no kid, single-key JWKS": bearer(lambda k: signed(k, {"alg": "RS256", "typ": "at+jwt"})),
    "iat 10 s ahead (clock skew)": bearer(lambda k: token(k.signing, now=int(time.time()) + 10)),
    "lower-case scheme": lambda k: "bearer " + token(k.signing),
}

REJECTED = {  # name: (Authorization header, error, description substring)
    "no header": (lambda k: None, None, "authentication required"),
    "empty header": (lambda k: "", None, "authentication required"),
    "Basic scheme": (lambda k: "Basic abc", None, "scheme 'Basic' is not supported"),
    "Bearer without token": (lambda k: "Bearer", "invalid_token", "has no bearer token"),
    "Bearer a.b": (lambda k: "Bearer a.b", "invalid_token", "not a signed JWT"),
    "JWE-shaped": (lambda k: "Bearer a.b.c.d.e", "invalid_token", "not a signed JWT"),
    "header not JSON": (lambda k: "Bearer abc.def.ghi", "invalid_token", "not a base64url-encoded JSON object"),
    "header a JSON list": (lambda k: f"Bearer {b64(b'[1]')}.{b64(claims())}.", "invalid_token",
                           "not a base64url-encoded JSON object"),
    "header without alg": (lambda k: f"Bearer {b64({'typ': 'at+jwt'})}.{b64(claims())}.", "invalid_token",
                           "has no alg"),
    "kid not a string": (bearer(lambda k: f"{b64({'alg': 'RS256', 'typ': 'at+jwt', 'kid': 7})}.{b64(claims())}.x"),
                         "invalid_token", "kid is not a string"),
    "too large": (lambda k: "Bearer " + "a" * 20_000, "invalid_token", "too large"),
    "alg none": (bearer(alg_none), "invalid_token", "algorithm 'none' is not accepted"),
    "HS256 keyed with the RSA public key": (bearer(hs256_with_public_key), "invalid_token",
                                           "algorithm 'HS256' is not accepted"),
    "expired": (bearer(lambda k: token(k.signing, now=NOW - 7200)), "invalid_token", "token has expired"),
    "nbf in the future": (bearer(lambda k: token(k.signing, nbf=int(time.time()) + 3600)), "invalid_token",
                          "not yet valid"),
    "iat in the future": (bearer(lambda k: token(k.signing, now=int(time.time()) + 3600)), "invalid_token",
                          "issued in the future"),
    "exp not a number": (bearer(lambda k: token(k.signing, exp="tomorrow")), "invalid_token",
                         "token claim exp is invalid"),
    "wrong aud": (bearer(lambda k: token(k.signing, aud="urn:other")), "invalid_token",
                  f"token audience is not {DEMO_AUDIENCE}"),
    "aud list without ours": (bearer(lambda k: token(k.signing, aud=["urn:a", "urn:b"])), "invalid_token",
                              f"token audience is not {DEMO_AUDIENCE}"),
    "wrong iss": (bearer(lambda k: token(k.signing, iss="https://evil.example/")), "invalid_token",
                  f"token issuer is not {DEMO_ISSUER}"),
    "client_id not a string": (bearer(lambda k: token(k.signing, client_id=42)), "invalid_token",
                               "token claim client_id is invalid"),
    "typ JWT": (bearer(lambda k: signed(k, {"alg": "RS256", "kid": k.kid, "typ": "JWT"})), "invalid_token",
                "token type (typ header) is 'JWT', not at+jwt"),
    "no typ": (bearer(lambda k: signed(k, {"alg": "RS256", "kid": k.kid})), "invalid_token",
               "token type (typ header) is missing"),
    "unknown kid": (bearer(lambda k: token(k.stranger)), "invalid_token",
                    "token signed with unknown key id 'stranger'"),
    "tampered payload": (bearer(tampered), "invalid_token", "token signature is invalid"),
    "signature of another token": (
        bearer(lambda k: ".".join(token(k.signing).split(".")[:2] + token(k.signing, sub="x").split(".")[2:])),
        "invalid_token", "token signature is invalid"),
    **{
        f"missing {claim}": (bearer(lambda k, claim=claim: token(k.signing, **{claim: None})), "invalid_token",
                             f"token lacks required claim(s): {claim}")
        for claim in ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
    },
}


@pytest.mark.parametrize("make", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_accepted(verifier: TokenVerifier, keys: Keys, make) -> None:
    result = await verifier.verify(make(keys))
    assert result["client_id"] == CLIENT and result["iss"] == DEMO_ISSUER


async def test_returns_the_claims(verifier: TokenVerifier, keys: Keys) -> None:
    result = await verifier.verify("Bearer " + token(keys.signing, scope="credit:read", jti="abc"))
    assert result["client_id"] == result["sub"] == CLIENT
    assert (result["aud"], result["jti"], result["scope"]) == (DEMO_AUDIENCE, "abc", "credit:read")
    assert result["exp"] - result["iat"] == 3600


@pytest.mark.parametrize(("make", "error", "description"), REJECTED.values(), ids=REJECTED.keys())
async def test_rejected(verifier: TokenVerifier, keys: Keys, make, error, description) -> None:
    with pytest.raises(AuthError) as caught:
        await verifier.verify(make(keys))
    assert caught.value.status == 401
    assert caught.value.error == error
    assert description in caught.value.description


@pytest.mark.parametrize("with_alg", [True, False], ids=["jwk with alg", "jwk without alg"])
async def test_hs256_never_verifies_with_an_rsa_key_even_if_allowed(
    keys: Keys, tmp_path: Path, with_alg: bool
) -> None:
    """Even a configuration that allows HS256 cannot be tricked into HMAC with the RSA key."""
    jwk = keys.signing.as_dict(private=False)
    if not with_alg:
        del jwk["alg"]
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    verifier = TokenVerifier(auth_settings(jwks_file=str(tmp_path / "jwks.json"), algorithms=("RS256", "HS256")))
    with pytest.raises(AuthError) as caught:
        await verifier.verify("Bearer " + hs256_with_public_key(keys))
    assert caught.value.error == "invalid_token"
    assert f"key '{keys.kid}' cannot verify 'HS256' signatures" in caught.value.description
    assert (await verifier.verify("Bearer " + token(keys.signing)))["client_id"] == CLIENT


@pytest.mark.parametrize(("alg", "make_key"), [
    ("PS256", lambda: RSAKey.generate_key(2048)),
    ("ES256", lambda: ECKey.generate_key("P-256")),
    ("Ed25519", lambda: OKPKey.generate_key("Ed25519")),
])
async def test_configured_algorithms_are_accepted(tmp_path: Path, alg: str, make_key) -> None:
    """The allow-list, not joserfc's default ("recommended") list, decides."""
    key = make_key()
    key.ensure_kid()
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    verifier = TokenVerifier(auth_settings(jwks_file=str(tmp_path / "jwks.json"), algorithms=("RS256", alg)))
    access_token = jwt.encode({"alg": alg, "kid": key.kid, "typ": "at+jwt"}, claims(), key, algorithms=[alg])
    assert (await verifier.verify("Bearer " + access_token))["client_id"] == CLIENT


async def test_challenge_headers(verifier: TokenVerifier, keys: Keys) -> None:
    with pytest.raises(AuthError) as missing:
        await verifier.verify(None)
    assert missing.value.headers() == {"WWW-Authenticate": 'Bearer realm="credit-gateway"'}
    with pytest.raises(AuthError) as expired:
        await verifier.verify("Bearer " + token(keys.signing, now=NOW - 7200))
    assert expired.value.headers() == {"WWW-Authenticate": (
        'Bearer realm="credit-gateway", error="invalid_token", error_description="token has expired"'
    )}


async def test_challenge_header_never_carries_token_text_raw(verifier: TokenVerifier) -> None:
    kid = 'k"\r\nSet-Cookie: a=b\\ 中'
    bad = f"{b64({'alg': 'RS256', 'typ': 'at+jwt', 'kid': kid})}.{b64(claims())}.x"
    with pytest.raises(AuthError) as caught:
        await verifier.verify("Bearer " + bad)
    assert "unknown key id" in caught.value.description
    header = caught.value.headers()["WWW-Authenticate"]
    description = re.fullmatch(r'Bearer realm="credit-gateway", error="invalid_token", error_description="(.*)"',
                               header)
    assert description and re.fullmatch(r'[\x20-\x21\x23-\x5b\x5d-\x7e]*', description.group(1))


# ---- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist"),
    ("{not json", "jwks_file"),
    ('{"keys": []}', "non-empty list"),
    ('{"kty": "RSA"}', "not a JWKS"),
    ('{"keys": [{"kty": "RSA", "n": "x"}]}', "invalid key"),
])
def test_bad_jwks_file(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "jwks.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        TokenVerifier(auth_settings(jwks_file=str(path)))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"algorithms": ("RS256", "none")}, "'none' can never be accepted"),
    ({"algorithms": ("RS257",)}, "not a JWS algorithm"),
    ({"algorithms": ()}, "must not be empty"),
    ({}, "exactly one of jwks_file and jwks_url"),
    ({"jwks_file": "x.json", "jwks_url": JWKS_URL}, "exactly one of jwks_file and jwks_url"),
    ({"jwks_url": "http://idp.example/jwks.json"}, "must use https"),
    ({"jwks_url": JWKS_URL, "jwks_refresh_seconds": 0}, "jwks_refresh_seconds must be a positive number"),
    ({"jwks_url": JWKS_URL, "jwks_refresh_seconds": float("nan")}, "jwks_refresh_seconds must be a positive"),
])
def test_bad_settings(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TokenVerifier(auth_settings(**overrides))


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
    import gateway.auth

    coarse = lambda st: (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mtime_ns)  # noqa: E731
    monkeypatch.setattr(gateway.auth, "_signature", coarse)
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


# ---- the demo issuer --------------------------------------------------------------------------


def test_demo_signing_key_is_made_once_and_private(tmp_path: Path) -> None:
    key, jwks_path = ensure_signing_key(tmp_path)
    again, _ = ensure_signing_key(tmp_path)
    assert key.kid == again.kid and key.is_private
    assert (tmp_path / "signing-key.json").stat().st_mode & 0o777 == 0o600
    published = json.loads(jwks_path.read_text())["keys"]
    assert [k["kid"] for k in published] == [key.kid] and "d" not in published[0]
