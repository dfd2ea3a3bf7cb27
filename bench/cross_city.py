"""Latency of a cross-city query: both partners healthy, one hanging, one
with its circuit open.

Huizhou's gateway runs in process (ASGI); Shenzhen (a second gateway over its
own demo data) and Dongguan (the REST simulator) run under uvicorn on
loopback, as in the demo. Each scenario sends the same query for one Huizhou,
one Shenzhen and one Dongguan enterprise, sequentially, and reports the
median and 99th percentile.

    .venv/bin/python -m bench.cross_city [--requests 100] [--timeout 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from demo.dongguan import create_dongguan_app
from demo.federation import PARTNER_CLIENT_ID, gateway_with_token_endpoint, partner_sources_text
from demo.generate import create_demo_data
from demo.issuer import ensure_signing_key, issue_token
from demo.population import build_population
from gateway.app import create_app
from gateway.settings import load_settings

QUERY = """query($u: [USCC!]!) { entities(usccs: $u) { uscc
  registration { name provenance { city } } penalties { decisionNumber severity provenance { city } }
  dishonestDebtorRecords { caseCode } } }"""
SECRET = "bench-partner-secret-0123456789abcdef"


class Served:
    """An ASGI app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, app, lifespan: str = "off") -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error",
                                lifespan=lifespan)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


async def hang(request):
    await asyncio.sleep(3600)
    return JSONResponse({})


async def measure(settings, codes, requests: int, warm: int = 3) -> list[float]:
    app = create_app(settings)
    key, _ = ensure_signing_key(Path(settings.auth.jwks_file).parent)
    token = issue_token(key, client_id="hz-market-app", issuer=settings.auth.issuer,
                        audience=settings.auth.audience)
    headers = {"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": "SUPERVISION"}
    timings = []
    async with app.router.lifespan_context(app):
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app),
                                      base_url="http://gw", timeout=60) as client:
            for i in range(warm + requests):
                started = time.perf_counter()
                response = await client.post("/graphql", headers=headers, json={
                    "query": QUERY, "variables": {"u": codes}})
                assert response.status_code == 200, response.text
                if i >= warm:
                    timings.append((time.perf_counter() - started) * 1000)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=1.0, help="partner timeout (s)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        huizhou_config = create_demo_data(tmp / "huizhou", size=2000)
        shenzhen_config = create_demo_data(tmp / "shenzhen", size=500, persons=100,
                                           city="shenzhen")
        clients = {PARTNER_CLIENT_ID: SECRET}
        huizhou = build_population(2000, 500)
        shenzhen = Served(gateway_with_token_endpoint(load_settings(shenzhen_config, env={}),
                                                      clients), lifespan="on")
        dongguan = Served(create_dongguan_app(
            clients=clients, huizhou_usccs={e.uscc: e.name for e in huizhou.enterprises}))
        hanging = Served(Starlette(routes=[Route("/{p:path}", hang, methods=["GET", "POST"])]))
        codes = [huizhou.showcase["penalty_general_in_window"].uscc,
                 build_population(500, 100, city="shenzhen").showcase["clean"].uscc,
                 build_population(300, 50, city="dongguan").showcase["clean"].uscc]

        def federated(dongguan_url: str, **changes):
            path = huizhou_config.with_name(f"bench-{time.monotonic_ns()}.toml")
            path.write_text(huizhou_config.read_text(encoding="utf-8") + "\n" + partner_sources_text(
                shenzhen.url, dongguan_url, SECRET, timeout_seconds=args.timeout),
                encoding="utf-8")
            settings = load_settings(path, env={})
            return dataclasses.replace(settings, sources=tuple(
                dataclasses.replace(s, **changes) if s.id == "dg-gateway" else s
                for s in settings.sources))

        scenarios = {
            "Huizhou only (no partner sources)": (load_settings(huizhou_config, env={}), codes[:1]),
            "both partners healthy": (federated(dongguan.url), codes),
            f"Dongguan hanging (timeout {args.timeout:g} s)": (
                federated(hanging.url, retries=0, breaker_failures=0), codes),
            "Dongguan circuit open": (
                federated("http://127.0.0.1:9", retries=0, breaker_failures=1,
                          breaker_reset_seconds=3600), codes),
        }
        rows = []
        for name, (settings, keys) in scenarios.items():
            n = max(10, args.requests // 10) if "hanging" in name else args.requests
            timings = asyncio.run(measure(settings, keys, n))
            p99 = statistics.quantiles(timings, n=100)[98] if len(timings) >= 2 else timings[0]
            rows.append((name, n, statistics.median(timings), p99))
        for served in (shenzhen, dongguan, hanging):
            served.stop()

    print(f"# Cross-city query latency, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print(f"Machine: {platform.machine()}, Python {platform.python_version()}; Huizhou in "
          f"process, partners under uvicorn on loopback; one request at a time; partner "
          f"timeout {args.timeout:g} s.\n")
    print("| scenario | requests | median (ms) | p99 (ms) |")
    print("|---|---|---|---|")
    for name, n, median, p99 in rows:
        print(f"| {name} | {n} | {median:.1f} | {p99:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
