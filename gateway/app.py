"""The ASGI application: GraphQL at ``/graphql``, health at ``/healthz``."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from strawberry.asgi import GraphQL

from gateway.context import RequestContext
from gateway.errors import SourceError
from gateway.loaders import Loaders
from gateway.settings import Settings
from gateway.sources import SourceRegistry
from resolvers.schema import schema

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
HEALTH_CHECK_TIMEOUT_SECONDS = 2.0


def request_id_from(header: str | None) -> str:
    """The caller's request id if it is a plausible one, else a new one."""
    if header and _REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


class GatewayGraphQL(GraphQL):
    """Strawberry's ASGI view with the gateway's context and orjson encoding."""

    def __init__(self, registry: SourceRegistry, settings: Settings) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=False,
        )
        self.registry = registry
        self.settings = settings

    async def get_context(self, request: Request, response: Response) -> RequestContext:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        response.headers[REQUEST_ID_HEADER] = request_id
        return RequestContext(
            request_id=request_id,
            settings=self.settings,
            sources=self.registry,
            loaders=Loaders(self.registry, self.settings.max_batch_keys),
        )

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)


def create_app(settings: Settings, registry: SourceRegistry | None = None) -> Starlette:
    """The gateway for ``settings``; raises ``ConfigurationError`` if the sources
    cannot be set up. Connections are opened lazily and closed at shutdown."""
    registry = registry or SourceRegistry.from_settings(settings)

    async def healthz(request: Request) -> Response:
        async def status(connector) -> str:
            try:
                async with asyncio.timeout(HEALTH_CHECK_TIMEOUT_SECONDS):
                    await connector.check()
            except (SourceError, TimeoutError):
                return "unavailable"
            return "ok"

        ids = list(registry.connectors)
        states = await asyncio.gather(*(status(registry.connectors[i]) for i in ids))
        sources = dict(zip(ids, states))
        overall = "ok" if all(s == "ok" for s in states) else "degraded"
        return Response(
            orjson.dumps({"status": overall, "sources": sources}), media_type="application/json"
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await registry.aclose()

    graphql = GatewayGraphQL(registry, settings)
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
