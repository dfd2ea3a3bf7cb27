"""The ASGI application: GraphQL at ``/graphql``, health at ``/healthz``,
Prometheus metrics at ``/metrics`` (``gateway.metrics``), the audit log's
checkpoints and proofs under ``/audit/`` and, for a witness, ``/witness/``
(``gateway.log_endpoints``)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import clock, health, metrics, tracing
from gateway.auth import TokenVerifier
from connectors.base import HOP_HEADER, ON_BEHALF_OF_HEADER, SourceCall
from gateway.audit import AuditStore
from gateway.audit.publisher import CheckpointPublisher
from gateway.admission import Admission, Admitted
from gateway.caller import Caller, CallerIdentifier
from gateway.catalog import load_catalog
from gateway.clients import load_clients
from gateway.context import RequestContext, Services
from gateway.enforcement import PlanCache
from gateway.limits import RateLimiter
from gateway.loaders import Loaders
from gateway.log_endpoints import log_routes
from gateway.operations import Operation, OperationStore
from gateway.purpose_schema import purpose_schemas
from gateway.recording import AuditRecorder
from gateway.settings import Settings
from gateway.sources import SourceRegistry
from core.text import visible
from gateway import graphiql
from gateway.http import GraphQLEndpoint, error_response, http_error, internal_error
from gateway.schema import build_policy, graphql_schema, schema, source_field_names

HEALTH_CHECK_TIMEOUT_SECONDS = 2.0
WORKER_PID_HEADER = "X-Worker-Pid"  # on /livez: which process answered (several workers)
log = logging.getLogger("gateway.app")


def context_factory(services: Services) -> Any:
    """The function building each request's ``RequestContext`` (see
    ``gateway.http``): the admitted operation's enforcement plan first (once
    per text, operation and purpose), then the loaders made from it;
    ``persisted`` is the persisted operation the request runs, if any."""

    def make_context(request: Request, caller: Caller, request_id: str, response: Response,
                     admitted: Admitted, started: float,
                     persisted: Operation | None = None) -> RequestContext:
        decision = services.policy.decisions[caller.purpose]
        today = clock.china_today()
        with tracing.span("graphql.plan"):
            plan = None if admitted.errors else services.plans.plan(services.schema, admitted,
                                                                    decision)
        selected = frozenset(plan.selected) if plan is not None else frozenset()
        return RequestContext(
            services=services,
            request_id=request_id,
            client=caller.client,
            purpose=caller.purpose,
            decision=decision,
            today=today,
            loaders=Loaders(
                services.sources, services.settings.max_batch_keys, decision, today,
                SourceCall(request_id, caller.client.id, caller.client.organization,
                           caller.purpose, selected, decision.reads),
                with_partners=HOP_HEADER not in request.headers,
            ),
            response=response,
            started=started,
            admitted=admitted,
            plan=plan,
            on_behalf_of=visible(unquote(request.headers.get(ON_BEHALF_OF_HEADER, "")))[:200]
            or None,
            persisted=persisted,
        )

    return make_context


async def livez(request: Request) -> Response:
    """``health.livez``, with the id of the process that answered (``X-Worker-Pid``)."""
    response = await health.livez(request)
    response.headers[WORKER_PID_HEADER] = str(os.getpid())
    return response


_heap_frozen = False


def freeze_startup_heap() -> None:
    """Once per process, after the first start-up: collect, then move every
    object alive (schema, policy, connectors, imported modules) into the
    permanent generation. They live as long as the process, and full
    collections no longer walk them: one paused a request for about 70 ms
    before, about 3 ms after (the p99 of a lone client)."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()


def create_app(settings: Settings, registry: SourceRegistry | None = None) -> Starlette:
    """The gateway for ``settings``; raises ``ConfigurationError`` if the policy,
    clients, persisted operations, keys or sources cannot be set up.
    Connections open lazily and close at shutdown."""
    catalog = load_catalog(settings.policy_file or None)
    policy = build_policy(catalog)
    clients = load_clients(settings.auth.clients_file, catalog.purposes)
    operations = OperationStore(settings.operations_file, clients, graphql_schema()) \
        if settings.operations_file else None
    persisted_only = sorted(c.id for c in clients.values() if c.persisted_only)
    if persisted_only and operations is None:
        log.warning("client(s) %s may run only persisted operations, and no operations_file "
                    "is configured: they can run nothing", ", ".join(persisted_only))
    verifier = TokenVerifier(settings.auth)
    registry = registry or SourceRegistry.from_settings(settings)
    tracing.configure(settings.telemetry)
    store = AuditStore(settings.audit.url)
    recorder = AuditRecorder(store, settings.audit.subject_key.encode(), catalog)
    limiter = RateLimiter(settings.limits, clients, recorder)

    readyz = health.readiness(registry, store, HEALTH_CHECK_TIMEOUT_SECONDS)
    publisher = CheckpointPublisher(store, settings.transparency) \
        if settings.transparency is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.migrate()
        await limiter.start()  # the rate limits' storage connected before the first request
        freeze_startup_heap()
        publishing = asyncio.create_task(publisher.run()) if publisher is not None else None
        try:
            yield
        finally:
            try:
                if publishing is not None:
                    publishing.cancel()
                    await asyncio.gather(publishing, return_exceptions=True)
                await registry.aclose()
                await verifier.aclose()
                await limiter.aclose()
            finally:
                # Last, whatever failed before: commits the audit records still
                # queued (the requests let finish on SIGTERM) before the process ends.
                await store.aclose()
                tracing.flush()

    services = Services(settings, registry, policy, recorder, PlanCache(), graphql_schema(),
                        purpose_schemas(policy), operations)
    ide = graphiql.Assets(settings.graphiql_assets) if settings.graphiql else None
    if ide is not None and ide.problem is not None:
        log.warning("GraphiQL is on, without its files (%s: %s): its page says how to get them "
                    "(`credit-gateway graphiql-assets`)", settings.graphiql_assets, ide.problem)
    graphql = GraphQLEndpoint(
        schema, Admission(services.schema, settings, source_field_names()),
        CallerIdentifier(verifier, clients, catalog),
        recorder, context_factory(services),
        introspection_for=lambda caller: settings.introspection or caller.client.introspection,
        graphiql_html=graphiql.page_html(ide, [(p.code, p.name) for p in catalog.purposes.values()])
        if ide is not None else None,
        operations=operations,
        limiter=limiter,
    )
    return Starlette(
        routes=[
            Route("/graphql", graphql),  # every method: the endpoint answers 405 itself
            *([Route("/graphql/assets/{name:path}", graphiql.assets_endpoint(ide, error_response),
                     methods=["GET", "HEAD"])] if ide is not None else []),
            Route("/livez", livez, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/healthz", readyz, methods=["GET"]),
            Route("/metrics", metrics.endpoint(registry.connectors.values), methods=["GET"]),
            *log_routes(settings, store),
        ],
        lifespan=lifespan,
        # Unknown paths, other methods, a crash outside the endpoint: coded JSON too.
        exception_handlers={HTTPException: http_error, 500: internal_error},
    )
