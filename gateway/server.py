"""Serving the gateway: the packaged ASGI factory and ``serve --workers N``.

``create_app_from_env`` is the factory uvicorn imports in every worker
(``uvicorn --factory gateway.server:create_app_from_env``, or ``credit-gateway
serve --workers N``): the gateway of the configuration file named by
``$CREDIT_GATEWAY_CONFIG``, with the environment's overrides.

``serve_workers`` runs N worker processes on one socket (uvicorn's
supervisor, which restarts a worker that dies). On SIGTERM (or SIGINT) the
supervisor passes SIGTERM to every worker; each stops accepting connections,
lets the requests in flight finish for at most ``graceful_seconds`` (uvicorn's
``timeout_graceful_shutdown``; those still running then are cancelled), then
runs the application's lifespan shutdown, which commits the audit records
still queued (``gateway.app``) before the process exits.

Nothing a request depends on is shared only in a process's memory: the audit
chain is in its database (the chain head row is locked while appending), the
rate limits are in ``[limits] storage_url`` (Redis; left empty, each process
counts alone, which ``serve`` warns about); the JWKS, the client registry,
the persisted operations and the parsed documents are caches each process
keeps for itself. With several workers, prometheus-client's multiprocess mode
needs ``PROMETHEUS_MULTIPROC_DIR``: ``metrics_multiprocess_dir`` makes a fresh
one for the workers (unless it is set) and removes it when they are gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from starlette.applications import Starlette

from core.errors import ConfigurationError
from gateway.settings import ENV_CONFIG_PATH, Settings, load_settings

FACTORY = "gateway.server:create_app_from_env"
PROMETHEUS_MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_GRACEFUL_SECONDS = 25.0  # within a Kubernetes pod's default grace period (30 s)

log = logging.getLogger("gateway.server")


def create_app_from_env() -> Starlette:
    """The gateway of ``$CREDIT_GATEWAY_CONFIG`` (overridden by the environment)."""
    path = os.environ.get(ENV_CONFIG_PATH)
    if not path:
        raise ConfigurationError(f"set {ENV_CONFIG_PATH} to the configuration file's path")
    from gateway.app import create_app

    return create_app(load_settings(path))


@contextlib.contextmanager
def metrics_multiprocess_dir(workers: int) -> Iterator[str | None]:
    """With several workers, a fresh temporary ``PROMETHEUS_MULTIPROC_DIR``
    (set in the environment the workers inherit, removed at exit), unless the
    operator set one (kept as it is). One worker: nothing."""
    if workers < 2:
        yield None
        return
    if os.environ.get(PROMETHEUS_MULTIPROC_DIR):
        yield os.environ[PROMETHEUS_MULTIPROC_DIR]
        return
    directory = tempfile.mkdtemp(prefix="credit-gateway-metrics-")
    os.environ[PROMETHEUS_MULTIPROC_DIR] = directory
    try:
        yield directory
    finally:
        os.environ.pop(PROMETHEUS_MULTIPROC_DIR, None)
        shutil.rmtree(directory, ignore_errors=True)


def warn_about_workers(settings: Settings, workers: int) -> None:
    """What several workers change for a configuration, logged."""
    if workers > 1 and not settings.limits.storage_url:
        log.warning("%d workers and no [limits] storage_url: each worker counts the rate "
                    "limits alone, so a client gets up to %d times its limits; set "
                    "storage_url to Redis to share them", workers, workers)


def serve_workers(config_path: Path, host: str, port: int, workers: int,
                  graceful_seconds: float = DEFAULT_GRACEFUL_SECONDS) -> int:
    """Serve ``config_path`` with ``workers`` processes until SIGTERM or SIGINT."""
    import uvicorn

    from gateway.app import create_app
    from gateway.logs import uvicorn_log_config

    config_path = Path(config_path).resolve()
    settings = load_settings(config_path)
    create_app(settings)  # a configuration error stops here, once, not in every worker
    warn_about_workers(settings, workers)
    os.environ[ENV_CONFIG_PATH] = str(config_path)
    with metrics_multiprocess_dir(workers):
        uvicorn.run(FACTORY, factory=True, host=host, port=port, workers=workers,
                    timeout_graceful_shutdown=graceful_seconds,
                    log_config=uvicorn_log_config(),  # a spawned worker inherits no logging
                    log_level="info", access_log=False)
    return 0
