"""Who is calling and why: the bearer token's client and the declared purpose.

``identify`` runs before any GraphQL work. It raises ``RequestRejected``:
401 for a missing or bad token (with ``WWW-Authenticate``), 403 for a client
that is not registered, 400 for a missing or unknown purpose (listing the
valid codes), 403 for a purpose the client was not granted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import AuthError, TokenVerifier
from gateway.catalog import Catalog
from gateway.clients import Client
from core.text import visible

PURPOSE_HEADER = "X-Purpose-Of-Use"
log = logging.getLogger("gateway.security")


@dataclass(frozen=True, slots=True)
class Caller:
    client: Client
    purpose: str
    claims: Mapping[str, Any]


class RequestRejected(Exception):
    """The request is refused before execution; ``response()`` says why."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None, client_id: str | None = None,
                 **extensions: Any) -> None:
        super().__init__(message)
        self.client_id = client_id  # when the token was valid
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extensions = extensions

    def response(self, media_type: str = "application/json") -> Response:
        body = {"errors": [{"message": self.message,
                            "extensions": {"code": self.code, **self.extensions}}]}
        return Response(orjson.dumps(body), status_code=self.status, headers=self.headers,
                        media_type=media_type)


ECHOED_LENGTH = 40  # characters of a client's value repeated in an error or a log line


def echoed(value: str) -> str:
    """A value the client sent, fit to repeat back: visible characters, truncated."""
    shown = visible(value)
    return shown if len(shown) <= ECHOED_LENGTH else shown[:ECHOED_LENGTH] + "…"


class CallerIdentifier:
    """Authenticates a request and checks its declared purpose."""

    def __init__(self, verifier: TokenVerifier, clients: Mapping[str, Client],
                 catalog: Catalog) -> None:
        self.verifier = verifier
        self.clients = clients
        self.catalog = catalog

    async def identify(self, request: Request) -> Caller:
        try:
            claims = await self.verifier.verify(request.headers.get("Authorization"))
        except AuthError as exc:
            log.warning("rejected token: %s", exc.description)
            raise RequestRejected(exc.status, "UNAUTHENTICATED", exc.description,
                                  exc.headers()) from None
        client = self.clients.get(claims["client_id"])
        if client is None:
            client_id = echoed(str(claims["client_id"]))
            log.warning("rejected unregistered client %r", client_id)
            raise RequestRejected(403, "CLIENT_NOT_REGISTERED",
                                  f"client {client_id!r} is not registered", client_id=client_id)
        purpose = (request.headers.get(PURPOSE_HEADER) or "").strip()
        valid = sorted(self.catalog.purposes)
        if not purpose:
            raise RequestRejected(400, "PURPOSE_REQUIRED",
                                  f"declare the purpose of use in the {PURPOSE_HEADER} header, "
                                  f"one of {', '.join(valid)}",
                                  client_id=client.id, validPurposes=valid)
        if purpose not in self.catalog.purposes:
            raise RequestRejected(400, "UNKNOWN_PURPOSE",
                                  f"unknown purpose of use {echoed(purpose)!r}; valid purposes: "
                                  f"{', '.join(valid)}", client_id=client.id, validPurposes=valid)
        if purpose not in client.purposes:
            log.warning("client %s declared ungranted purpose %s", client.id, purpose)
            raise RequestRejected(403, "PURPOSE_NOT_GRANTED",
                                  f"client {client.id!r} is not granted purpose {purpose}",
                                  client_id=client.id, grantedPurposes=sorted(client.purposes))
        return Caller(client, purpose, claims)
