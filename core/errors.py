"""The gateway's error hierarchy: what a client may see.

Every error a client receives is a ``ClientError``: it has a stable ``code``
and a message written for the client. Connectors convert driver and HTTP
failures into ``SourceError`` subclasses at their boundary; the original
exception is logged server-side and never reaches the client (no DSN, SQL
text or stack trace). Any other exception is masked as an internal error.
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """An error whose message and ``extensions`` are safe to show a client."""

    code = "BAD_REQUEST"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class InvalidInput(ClientError):
    """The request is well-formed GraphQL but asks for something not allowed."""

    code = "BAD_USER_INPUT"


class SourceError(ClientError):
    """A departmental database or partner endpoint failed; only its fields fail."""

    code = "SOURCE_ERROR"

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message, source=source)
        self.source = source


class SourceUnavailable(SourceError):
    """The source could not be reached or refused the request."""

    code = "SOURCE_UNAVAILABLE"


class SourceTimeout(SourceError):
    """The source did not answer within its configured timeout."""

    code = "SOURCE_TIMEOUT"


class CircuitOpen(SourceError):
    """Recent failures opened the source's circuit breaker: it is not called."""

    code = "CIRCUIT_OPEN"


class PartnerRefused(SourceError):
    """A partner city's own policy refused to share for this purpose; the
    gateway never widens what a partner returns."""

    code = "PARTNER_REFUSED"


class BadSourceData(SourceError):
    """The source answered with data the gateway cannot interpret."""

    code = "BAD_UPSTREAM_RESPONSE"


class ConfigurationError(Exception):
    """The gateway cannot start: the message names the setting at fault."""


class ForbiddenForPurpose(ClientError):
    """The declared purpose of use may not see this field."""

    code = "FORBIDDEN_FOR_PURPOSE"

    def __init__(self, message: str, purpose: str, **extensions: Any) -> None:
        super().__init__(message, purpose=purpose, **extensions)
