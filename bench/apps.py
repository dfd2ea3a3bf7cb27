"""ASGI factories for the benchmark servers (``uvicorn --factory``)."""

from __future__ import annotations

import os

from gateway.app import create_app
from gateway.settings import load_settings


def gateway_app():
    return create_app(load_settings(os.environ["BENCH_CONFIG"]))
