"""The benchmark's gateway servers and settings.

The gateway is served from the packaged factory, ``gateway.server:create_app_from_env``
(``uvicorn --factory``, the configuration named by ``$CREDIT_GATEWAY_CONFIG``),
exactly as ``credit-gateway serve --workers N`` serves it; only the variants
without policy and audit, and without audit, below are the benchmark's own.

The rate limiter runs in every benchmark (it counts every request, in each
worker's memory), with limits far above any load the machine can make
(``BENCH_LIMITS``), so that the benchmarks measure the gateway, not refusals:
given to the servers as environment overrides (``bench_environment``) and to
the in-process runs as settings (``bench_settings``).
"""

from __future__ import annotations

import dataclasses
import os

from gateway.server import create_app_from_env
from gateway.settings import ENV_CONFIG_PATH, Settings

GATEWAY_FACTORY = "gateway.server:create_app_from_env"
WITHOUT_POLICY_AND_AUDIT = "bench.apps:gateway_app_without_policy_and_audit"
WITHOUT_AUDIT = "bench.apps:gateway_app_without_audit"
# A one-second window keeps the moving window's list of timestamps short.
BENCH_LIMITS = {"default_rate": "1000000/second", "default_cost": "1000000000/second"}


def bench_settings(settings: Settings) -> Settings:
    """``settings`` with the benchmark's rate limits for every client."""
    return dataclasses.replace(settings, limits=dataclasses.replace(settings.limits,
                                                                    **BENCH_LIMITS))


def bench_environment(config: str) -> dict[str, str]:
    """The environment variables making a server of ``config`` the benchmark's."""
    return {ENV_CONFIG_PATH: config,
            **{f"CREDIT_GATEWAY_LIMITS_{key.upper()}": value
               for key, value in BENCH_LIMITS.items()}}


def gateway_app():
    """The gateway of ``$BENCH_CONFIG`` with the benchmark's rate limits: the
    factory the peer harness (``../shared/peer/harness.py``) starts, which
    sets only ``BENCH_CONFIG``. The same app as ``GATEWAY_FACTORY``'s."""
    from gateway.app import create_app
    from gateway.settings import load_settings

    return create_app(bench_settings(load_settings(os.environ["BENCH_CONFIG"])))


def gateway_app_without_policy_and_audit():
    """Benchmark only (workload 4): the gateway with its schema's admission,
    purpose-policy and audit-trail extensions left out (strawberry's parser
    and validation caches instead), to show what they cost. Never served
    otherwise: the real app cannot be configured this way."""
    from strawberry.extensions import ParserCache, ValidationCache

    return _gateway_app_with_extensions([ParserCache, ValidationCache])


def gateway_app_without_audit():
    """Benchmark only (workload 4): the gateway with admission and the purpose
    policy but without the audit trail's extension (no record is written), to
    tell the policy's cost from the audit's. Never served otherwise."""
    from gateway.admission import AdmittedDocument
    from gateway.enforcement import PurposePolicy

    return _gateway_app_with_extensions([AdmittedDocument, PurposePolicy])


def _gateway_app_with_extensions(extensions: list) -> object:
    from strawberry.schema.config import StrawberryConfig

    import gateway.app
    from core.scalars import SCALAR_MAP
    from gateway.compiled import CompiledExecutor
    from gateway.schema import GatewaySchema
    from resolvers.query import Query

    gateway.app.schema = GatewaySchema(
        query=Query,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        execution_context_class=CompiledExecutor,
        extensions=extensions,
    )
    return create_app_from_env()
