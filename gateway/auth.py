"""Bearer-token authentication: who is calling.

Clients send an OAuth 2.0 access token in the JWT profile of RFC 9068::

    Authorization: Bearer <header>.<payload>.<signature>

``TokenVerifier.verify`` returns the token's claims once its signature
verifies against the issuer's keys (a JWKS file, re-read when it changes, or
a JWKS URL, fetched and refreshed: see ``TokenVerifier``) and authlib's
RFC 9068 resource-server validator accepts its claims. Every failure, whatever its cause, is an ``AuthError``
(HTTP 401) whose description tells the client what is wrong. A token that
verified is remembered until its ``exp`` (``TokenVerifier``: verified once
per token, not once per request).
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any

import httpx2
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from authlib.oauth2.rfc9068.claims import JWTAccessTokenClaims, JWTAccessTokenClaimsValidator
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExceededSizeError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyCurveError,
    InvalidKeyIdError,
    JoseError,
    KeyParameterError,
    MissingClaimError,
    MissingKeyError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from joserfc.util import json_b64decode

from core.errors import ConfigurationError
from gateway.jwks import IssuerKeys
from gateway.settings import AuthSettings

logger = logging.getLogger(__name__)

REALM = "credit-gateway"
#: RFC 9068 §4: the ``typ`` header of a JWT access token (compared case-insensitively).
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")
#: Clock skew tolerated between the issuer and the gateway for ``exp``, ``nbf`` and ``iat``.
LEEWAY_SECONDS = 30
#: Longest token accepted; joserfc's own size limits apply within it.
MAX_TOKEN_LENGTH = 16_384
#: Verified tokens remembered (``TokenVerifier``); beyond, the least recently used is forgotten.
TOKEN_CACHE_SIZE = 10_000

_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# RFC 6750 §3: error_description is restricted to %x20-21 / %x23-5B / %x5D-7E.
_NOT_HEADER_SAFE = re.compile(r'[^\x20-\x21\x23-\x5b\x5d-\x7e]')


class AuthError(Exception):
    """The caller is not authenticated: answer with ``status`` and ``headers()``.

    ``error`` is an RFC 6750 error code (``"invalid_token"``), or ``None``
    when the request carried no bearer credentials at all (RFC 6750 §3.1:
    then no error code is sent). ``description`` is written for the client.
    """

    def __init__(self, status: int, error: str | None, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def headers(self) -> dict[str, str]:
        """The ``WWW-Authenticate`` challenge for the response."""
        params = [f'realm="{REALM}"']
        if self.error:
            description = _NOT_HEADER_SAFE.sub("?", self.description.replace('"', "'"))
            params += [f'error="{self.error}"', f'error_description="{description}"']
        return {"WWW-Authenticate": "Bearer " + ", ".join(params)}


def _invalid(description: str) -> AuthError:
    return AuthError(401, "invalid_token", description)


def _show(value: object, limit: int = 64) -> str:
    """A client-supplied value, quoted and shortened, for a description."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _ClaimsRegistry(JWTAccessTokenClaimsValidator):
    def validate_client_id(self, value: object) -> None:
        # the gateway looks the caller up by client_id: it must be a string
        if not isinstance(value, str):
            raise InvalidClaimError("client_id", "Claim 'client_id' must be a string")
        self.check_value("client_id", value)


class _AccessTokenClaims(JWTAccessTokenClaims):
    registry_cls = _ClaimsRegistry
    #: The wall clock (epoch seconds) ``exp``, ``nbf`` and ``iat`` are checked against.
    wall_clock: Callable[[], float] = time.time

    def validate(self, now: int | None = None, leeway: int = LEEWAY_SECONDS) -> None:
        super().validate(now=int(self.wall_clock()) if now is None else now, leeway=leeway)


class _AccessTokenValidator(JWTBearerTokenValidator):
    """authlib's RFC 9068 validator with the gateway's key set and algorithm allow-list.

    ``authenticate_token`` is overridden only because authlib's decodes
    without an allow-list; ``validate_token`` (claims, ``typ``) is authlib's.
    Both raise authlib's ``InvalidTokenError`` chained to the joserfc error.
    """

    def __init__(self, settings: AuthSettings, keys: IssuerKeys,
                 wall_clock: Callable[[], float]) -> None:
        super().__init__(issuer=settings.issuer, resource_server=settings.audience, realm=REALM)
        self.algorithms = list(settings.algorithms)
        self.issuer_keys = keys
        self.wall_clock = wall_clock

    def get_jwks(self) -> KeySet:
        return self.issuer_keys.keys

    def authenticate_token(self, token_string: str) -> _AccessTokenClaims:
        try:
            token = jwt.decode(token_string, self.get_jwks(), algorithms=self.algorithms)
        except JoseError as exc:
            raise InvalidTokenError(realm=self.realm) from exc
        options = {  # RFC 9068 §2.2: the claims every access token carries
            "iss": {"essential": True, "value": self.issuer},
            "exp": {"essential": True},
            "aud": {"essential": True, "value": self.resource_server},
            "sub": {"essential": True},
            "client_id": {"essential": True},
            "iat": {"essential": True},
            "jti": {"essential": True},
        }
        claims = _AccessTokenClaims(token.claims, token.header, options)
        claims.wall_clock = self.wall_clock
        return claims


class TokenVerifier:
    """Verifies bearer access tokens against ``AuthSettings``, with the
    issuer's keys as ``gateway.jwks.IssuerKeys`` keeps them (file or URL,
    refreshed lazily by the verifications themselves).

    A token is verified once: its claims are remembered, keyed by the exact
    token text, for at most ``cache_size`` tokens (the least recently used
    forgotten first), and a request with the same token gets them without a
    signature check until the ``wall_clock`` passes the token's ``exp``; then
    the entry is dropped and the token verified again (refused, once past
    ``exp`` and the leeway). Only tokens that verified are remembered; a
    refusal is decided anew every time. The issuer's keys are brought up to
    date (``IssuerKeys.ready``) for every request, remembered token or not,
    and every remembered token is forgotten whenever the key set is replaced
    (a changed JWKS file, every JWKS URL fetch, a set dropped): a token signed
    with a key the issuer no longer publishes is refused from then on, as
    without the cache. Nothing else a verification reads changes with time.

    ``transport``, ``clock`` (monotonic seconds, the key refreshes) and
    ``wall_clock`` (epoch seconds, the tokens' times) are for tests.
    Raises ``ConfigurationError`` for unusable settings or JWKS file.
    """

    def __init__(
        self,
        settings: AuthSettings,
        transport: httpx2.AsyncBaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        cache_size: int = TOKEN_CACHE_SIZE,
    ) -> None:
        _check_algorithms(settings.algorithms)
        self._settings = settings
        self._keys = IssuerKeys(settings, transport, clock=clock)
        self._validator = _AccessTokenValidator(settings, self._keys, wall_clock)
        self._wall_clock = wall_clock
        self._cache_size = cache_size
        # token -> (its exp, its kid, its claims), least recently used first
        self._verified: OrderedDict[str, tuple[float, str | None, dict[str, Any]]] = OrderedDict()
        self._verified_with = self._keys.keys  # the key set the remembered tokens verified with

    async def verify(self, authorization: str | None) -> dict[str, Any]:
        """The claims of the valid token in ``authorization`` (the header value).

        Raises ``AuthError`` (401) for a missing or malformed header and for
        any token that is not acceptable.
        """
        token = _bearer_token(authorization)
        remembered = self._verified.get(token)
        if remembered is not None:
            exp, kid, claims = remembered
            await self._keys.ready(kid)
            self._forget_if_keys_changed()
            if token in self._verified and self._wall_clock() < exp:
                self._verified.move_to_end(token)
                return dict(claims)
            self._verified.pop(token, None)
        header = _peek_header(token, self._settings.algorithms)
        await self._keys.ready(header.get("kid"))
        # no await from here on: the key set cannot change under the check
        try:
            claims = self._validator.authenticate_token(token)
            self._validator.validate_token(claims, None, None)
        except InvalidTokenError as exc:
            raise _invalid(self._describe(exc, header)) from exc
        except (JoseError, ValueError, TypeError, RecursionError) as exc:  # defensive: never a 500
            logger.warning("unexpected error validating a token: %r", exc)
            raise _invalid("token is malformed") from exc
        self._remember(token, header.get("kid"), dict(claims))
        return dict(claims)

    def _forget_if_keys_changed(self) -> None:
        if self._keys.keys is not self._verified_with:
            self._verified.clear()
            self._verified_with = self._keys.keys

    def _remember(self, token: str, kid: str | None, claims: dict[str, Any]) -> None:
        """Remember the claims of ``token``, just verified with the current key set."""
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)) or self._cache_size <= 0:
            return  # an exp that is no number (verified all the same) is never trusted here
        self._forget_if_keys_changed()
        self._verified[token] = (exp, kid, claims)
        self._verified.move_to_end(token)
        while len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)

    async def aclose(self) -> None:
        """Close the HTTP client used for the JWKS URL."""
        await self._keys.aclose()

    def _describe(self, exc: InvalidTokenError, header: dict[str, Any]) -> str:
        """What is wrong with the token, from the joserfc error behind ``exc``."""
        cause = exc.__cause__
        alg, kid = header["alg"], header.get("kid")
        if isinstance(cause, ExpiredTokenError):
            return "token has expired"
        if isinstance(cause, MissingClaimError):
            return f"token lacks required claim(s): {cause.claim.replace(',', ', ')}"
        if isinstance(cause, InvalidClaimError):
            if cause.claim == "aud":
                return f"token audience is not {self._settings.audience}"
            if cause.claim == "iss":
                return f"token issuer is not {self._settings.issuer}"
            if cause.claim == "typ":
                return "token type (typ header) is not at+jwt"
            default = InvalidClaimError.description.format(cause.claim)
            text = cause.description
            detail = "" if text == default else ": " + text[:1].lower() + text[1:]
            return f"token claim {cause.claim} is invalid{detail}"
        if isinstance(cause, UnsupportedAlgorithmError):
            return f"algorithm {_show(alg)} is not accepted"
        known = self._keys.kids
        if isinstance(cause, (InvalidKeyIdError, MissingKeyError)) and kid not in known:
            if not self._keys.loaded:
                return f"token key id {_show(kid)} cannot be checked: the issuer's key set could not be fetched"
            if not known:
                return "token cannot be verified: the issuer's key set has no keys"
            if kid is None:
                return "token has no key id (kid) and the issuer has several keys"
            return f"token signed with unknown key id {_show(kid)}"
        if isinstance(cause, (InvalidKeyIdError, KeyParameterError, InvalidKeyCurveError)):
            return f"key {_show(kid)} cannot verify {_show(alg)} signatures"
        if isinstance(cause, BadSignatureError):
            return "token signature is invalid"
        if isinstance(cause, ExceededSizeError):
            return "token is too large"
        if isinstance(cause, JoseError):
            return f"token is malformed: {cause.description or cause.error}"
        return exc.get_error_description()


def _bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header value."""
    if authorization is None or not authorization.strip():
        raise AuthError(401, None, "authentication required: send 'Authorization: Bearer <access token>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        # RFC 6750 §3.1: an unsupported scheme is no bearer credential: no error code
        raise AuthError(401, None, f"authentication scheme {_show(scheme, 24)} is not supported: use Bearer")
    token = token.strip()
    if not token:
        raise _invalid("Authorization header has no bearer token")
    return token


def _peek_header(token: str, algorithms: Collection[str]) -> dict[str, Any]:
    """The JOSE header of a compact JWS, checked before any key is looked up.

    Rejects early (and without a JWKS fetch) what can never be accepted:
    anything but a compact JWS, an algorithm not in ``algorithms`` and a
    ``typ`` other than ``at+jwt``. The signature is not checked here.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise _invalid("token is too large")
    if not _COMPACT_JWS.fullmatch(token):
        raise _invalid("token is malformed: not a signed JWT (three base64url parts separated by dots)")
    segment = token.partition(".")[0]
    if len(segment) > JWSRegistry.max_header_length:
        raise _invalid("token is malformed: its header is too large")
    try:
        header = json_b64decode(segment.encode("ascii"))
    except (ValueError, RecursionError):
        header = None
    if not isinstance(header, dict):
        raise _invalid("token is malformed: its header is not a base64url-encoded JSON object")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise _invalid("token is malformed: its header has no alg")
    if alg not in algorithms:
        raise _invalid(f"algorithm {_show(alg)} is not accepted")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
        shown = "missing" if typ is None else _show(typ)
        raise _invalid(f"token type (typ header) is {shown}, not at+jwt: not an RFC 9068 access token")
    if "kid" in header and not isinstance(header["kid"], str):
        raise _invalid("token is malformed: its kid is not a string")
    return header


def _check_algorithms(algorithms: Collection[str]) -> None:
    if not algorithms:
        raise ConfigurationError("[auth]: algorithms must not be empty")
    for alg in algorithms:
        if alg.lower() == "none":
            raise ConfigurationError("[auth]: algorithm 'none' can never be accepted")
        if alg not in JWSRegistry.algorithms:
            raise ConfigurationError(
                f"[auth]: algorithm {alg!r} is not a JWS algorithm; known: {sorted(JWSRegistry.algorithms)}"
            )
