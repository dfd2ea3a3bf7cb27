"""Bearer-token authentication: which tokens ``TokenVerifier`` accepts, and why it
refuses the rest (where its keys come from: tests/test_jwks.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from demo.issuer import DEMO_AUDIENCE, DEMO_ISSUER, ensure_signing_key, issue_token
from gateway.auth import AuthError, TokenVerifier
from core.errors import ConfigurationError
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


# ---- the demo issuer --------------------------------------------------------------------------


def test_demo_signing_key_is_made_once_and_private(tmp_path: Path) -> None:
    key, jwks_path = ensure_signing_key(tmp_path)
    again, _ = ensure_signing_key(tmp_path)
    assert key.kid == again.kid and key.is_private
    assert (tmp_path / "signing-key.json").stat().st_mode & 0o777 == 0o600
    published = json.loads(jwks_path.read_text())["keys"]
    assert [k["kid"] for k in published] == [key.kid] and "d" not in published[0]


# ---- verified once per token -------------------------------------------------------------------


class WallClock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


def counting(verifier: TokenVerifier, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens whose signature ``verifier`` checks, in order."""
    checked: list[str] = []
    original = verifier._validator.authenticate_token

    def authenticate_token(token_string: str):
        checked.append(token_string)
        return original(token_string)

    monkeypatch.setattr(verifier._validator, "authenticate_token", authenticate_token)
    return checked


async def test_a_token_is_verified_once(verifier: TokenVerifier, keys: Keys, monkeypatch) -> None:
    checked = counting(verifier, monkeypatch)
    t = token(keys.signing)
    first = await verifier.verify(f"Bearer {t}")
    first["client_id"] = "changed by the caller"  # a copy: the remembered claims stay
    again = await verifier.verify(f"Bearer  {t} ")
    assert again["client_id"] == CLIENT and checked == [t]
    other = token(keys.signing)
    await verifier.verify(f"Bearer {other}")
    assert checked == [t, other]


@pytest.mark.parametrize("make", [
    lambda k: token(k.signing, aud="https://someone-else.example"),
    lambda k: token(k.signing, iss="https://impostor.example"),
    lambda k: token(k.stranger),
    tampered,
], ids=["audience", "issuer", "unpublished key", "signature"])
async def test_a_refused_token_is_never_remembered(verifier: TokenVerifier, keys: Keys, make,
                                                   monkeypatch) -> None:
    checked = counting(verifier, monkeypatch)
    t = make(keys)
    for _ in range(2):
        with pytest.raises(AuthError):
            await verifier.verify(f"Bearer {t}")
    assert checked == [t, t]


async def test_a_remembered_token_is_refused_once_expired(keys: Keys, monkeypatch) -> None:
    from gateway.auth import LEEWAY_SECONDS

    wall = WallClock()
    verifier = TokenVerifier(auth_settings(jwks_file=str(keys.jwks_path)), wall_clock=wall)
    checked = counting(verifier, monkeypatch)
    t = token(keys.signing, now=int(wall.now), lifetime_seconds=60)
    await verifier.verify(f"Bearer {t}")
    wall.now += 59
    await verifier.verify(f"Bearer {t}")
    assert checked == [t]
    wall.now += 1  # at exp: verified again, accepted within the leeway
    await verifier.verify(f"Bearer {t}")
    assert checked == [t, t]
    wall.now += LEEWAY_SECONDS + 1
    with pytest.raises(AuthError, match="token has expired"):
        await verifier.verify(f"Bearer {t}")
    with pytest.raises(AuthError, match="token has expired"):
        await verifier.verify(f"Bearer {t}")
    assert checked == [t, t, t, t]


async def test_at_most_cache_size_tokens_are_remembered(keys: Keys, monkeypatch) -> None:
    verifier = TokenVerifier(auth_settings(jwks_file=str(keys.jwks_path)), cache_size=2)
    checked = counting(verifier, monkeypatch)
    a, b, c = (token(keys.signing) for _ in range(3))
    for t in (a, b, a, c):  # c pushes out the least recently used: b
        await verifier.verify(f"Bearer {t}")
    assert len(verifier._verified) == 2
    await verifier.verify(f"Bearer {a}")
    await verifier.verify(f"Bearer {c}")
    assert checked == [a, b, c]
    await verifier.verify(f"Bearer {b}")
    assert checked == [a, b, c, b]


async def test_a_new_key_set_forgets_every_remembered_token(keys: Keys, tmp_path: Path,
                                                            monkeypatch) -> None:
    from gateway.jwks import JWKS_FILE_CHECK_SECONDS

    jwks = tmp_path / "jwks.json"
    jwks.write_text(keys.jwks_path.read_text())
    monotonic = WallClock()
    verifier = TokenVerifier(auth_settings(jwks_file=str(jwks)), clock=monotonic)
    checked = counting(verifier, monkeypatch)
    t = token(keys.signing)
    await verifier.verify(f"Bearer {t}")
    await verifier.verify(f"Bearer {t}")
    assert checked == [t]
    # The issuer's key is removed from the file: refused from the next look at it.
    jwks.write_text(json.dumps({"keys": [keys.stranger.as_dict(private=False)]}))
    monotonic.now += JWKS_FILE_CHECK_SECONDS
    with pytest.raises(AuthError, match="unknown key id"):
        await verifier.verify(f"Bearer {t}")
    assert checked == [t, t] and not verifier._verified
