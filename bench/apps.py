"""ASGI factories for the benchmark servers (``uvicorn --factory``)."""

from __future__ import annotations

import os

from gateway.app import create_app
from gateway.settings import load_settings


def gateway_app():
    return create_app(load_settings(os.environ["BENCH_CONFIG"]))


def gateway_app_without_policy_and_audit():
    """Benchmark only (workload 4): the gateway with its schema's purpose-policy
    and audit-trail extensions left out, to show what they cost. Never served
    otherwise: the real app cannot be configured this way."""
    from strawberry.extensions import ParserCache, ValidationCache
    from strawberry.schema.config import StrawberryConfig

    import gateway.app
    from resolvers.query import Query
    from core.scalars import SCALAR_MAP
    from gateway.schema import GatewaySchema

    gateway.app.schema = GatewaySchema(
        query=Query,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        extensions=[ParserCache, ValidationCache],
    )
    return create_app(load_settings(os.environ["BENCH_CONFIG"]))
