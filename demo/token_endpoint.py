"""The demo's OAuth 2.0 token endpoint for partner gateways (RFC 6749 §4.4).

``token_route`` answers ``POST /oauth/token`` with the client-credentials
grant: the client authenticates with HTTP Basic (``client_secret_basic``) or
with ``client_id``/``client_secret`` form fields (``client_secret_post``),
never both, and gets an RFC 9068 access token minted by
``demo.issuer.issue_token``::

    {"access_token": "...", "token_type": "Bearer", "expires_in": 600}

Errors follow RFC 6749 §5.2: a missing or wrong client is 401
``invalid_client``; another grant type is 400 ``unsupported_grant_type``; a
malformed request is 400 ``invalid_request``. Answers are never cached.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Mapping, MutableMapping
from urllib.parse import parse_qs, unquote_plus

from joserfc.jwk import RSAKey
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from demo.issuer import issue_token

TOKEN_PATH = "/oauth/token"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_BODY_BYTES = 8192


class TokenError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def response(self) -> JSONResponse:
        headers = dict(NO_STORE)
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="token"'
        return JSONResponse({"error": self.error, "error_description": self.description},
                            status_code=self.status, headers=headers)


def token_route(
    signing_key: RSAKey, *, issuer: str, audience: str, clients: Mapping[str, str],
    lifetime_seconds: int = 600, counter: MutableMapping[str, int] | None = None,
) -> Route:
    """The token endpoint of a partner gateway: RFC 9068 access tokens
    signed with ``signing_key``. ``clients`` maps client ids to their
    secrets; ``counter`` (e.g. a ``collections.Counter``), when given, counts
    the tokens issued per client id."""
    return client_credentials_route(
        clients,
        lambda client_id: issue_token(signing_key, client_id=client_id, issuer=issuer,
                                      audience=audience, lifetime_seconds=lifetime_seconds),
        lifetime_seconds, counter,
    )


def client_credentials_route(
    clients: Mapping[str, str], mint: Callable[[str], str], lifetime_seconds: int,
    counter: MutableMapping[str, int] | None = None,
) -> Route:
    """The token endpoint, for any kind of token: ``mint(client_id)`` makes
    one for an authenticated client (a signed JWT, or an opaque token the
    issuer keeps)."""

    async def token(request: Request) -> JSONResponse:
        try:
            form = await _form(request)
            client_id = _authenticate(request, form, clients)
            if "grant_type" not in form:
                raise TokenError(400, "invalid_request", "grant_type is required")
            if form["grant_type"] != "client_credentials":
                raise TokenError(400, "unsupported_grant_type",
                                 "only the client_credentials grant is supported")
        except TokenError as exc:
            return exc.response()
        access_token = mint(client_id)
        if counter is not None:
            counter[client_id] = counter.get(client_id, 0) + 1
        return JSONResponse(
            {"access_token": access_token, "token_type": "Bearer", "expires_in": lifetime_seconds},
            headers=NO_STORE,
        )

    return Route(TOKEN_PATH, token, methods=["POST"])


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded body; a parameter given twice is invalid (RFC 6749 §3.2)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise TokenError(400, "invalid_request", "send application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise TokenError(400, "invalid_request", "request too large")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise TokenError(400, "invalid_request", "the body is not UTF-8") from None
    if any(len(values) > 1 for values in parsed.values()):
        raise TokenError(400, "invalid_request", "a parameter is repeated")
    return {name: values[0] for name, values in parsed.items()}


def _authenticate(request: Request, form: dict[str, str], clients: Mapping[str, str]) -> str:
    """The authenticated client id, or ``TokenError`` 401 ``invalid_client``."""
    header = request.headers.get("authorization")
    if header is not None:
        if "client_secret" in form:
            raise TokenError(400, "invalid_request", "use one client authentication method")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise TokenError(401, "invalid_client", "client authentication failed")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise TokenError(401, "invalid_client", "client authentication failed") from None
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep:
            raise TokenError(401, "invalid_client", "client authentication failed")
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)  # RFC 6749 §2.3.1
        if form.get("client_id", client_id) != client_id:
            raise TokenError(400, "invalid_request", "client_id does not match the credentials")
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    expected = clients.get(client_id)
    # compare_digest: no early exit on the first differing character.
    matches = hmac.compare_digest(secret.encode(), (expected or "\0").encode())
    if expected is None or not client_id or not matches:
        raise TokenError(401, "invalid_client", "client authentication failed")
    return client_id
