"""The per-request context handed to every resolver as ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.loaders import Loaders
from gateway.settings import Settings
from gateway.sources import SourceRegistry


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking. Placeholder until authentication fills it from the token."""

    client_id: str
    organization: str


ANONYMOUS = Principal(client_id="anonymous", organization="unauthenticated")


@dataclass(slots=True)
class RequestContext:
    """Everything one request's resolvers share.

    ``sources`` are the process's connectors (for calls that are not
    batched, such as a name search); ``principal`` and ``purpose`` identify the caller and the declared
    purpose of use (placeholders until the authorization issue fills them);
    ``loaders`` are this request's DataLoaders; ``request_id`` ties logs and
    the audit trail to the response.
    """

    request_id: str
    settings: Settings
    sources: SourceRegistry
    loaders: Loaders
    principal: Principal = ANONYMOUS
    purpose: str | None = None
