"""What the audit write costs per request.

Runs the gateway in process over the demo data (ASGI, no network) and times
the same one-entity query with the audit trail on (the real store: SQLite, or
PostgreSQL with --postgres) and off (appends replaced by a no-op), in
interleaved rounds; prints medians as a markdown table.

    .venv/bin/python -m bench.audit_cost [--requests 400] [--rounds 5] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx2

from demo.generate import create_demo_data
from demo.issuer import DEMO_AUDIENCE, DEMO_ISSUER, ensure_signing_key, issue_token
from demo.population import build_population
from gateway.app import create_app
from gateway.settings import load_settings

QUERY = """query($u: USCC!) { entity(uscc: $u) { registration { name status }
  penalties { decisionNumber severity } taxRatings { year grade } } }"""


async def run(settings, audit_on: bool, usccs: list[str], concurrency: int,
              query: str = QUERY, warmup: int = 1) -> tuple[float, float, float]:
    """(median latency in ms, requests per second, this process's CPU ms per
    request) for len(usccs) requests of ``query`` (its variable ``$u``), after
    ``warmup`` requests of the first of them (caches, connections)."""
    app = create_app(settings)
    key, _ = ensure_signing_key(Path(settings.auth.jwks_file).parent)
    token = issue_token(key, client_id="hz-market-app", issuer=DEMO_ISSUER, audience=DEMO_AUDIENCE)
    headers = {"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": "SUPERVISION"}
    latencies: list[float] = []
    async with app.router.lifespan_context(app):
        if not audit_on:
            recorder = app.routes[0].app.recorder

            async def skip(entry):
                return None

            recorder.store.append = skip
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://gw") as client:
            semaphore = asyncio.Semaphore(concurrency)

            async def one(uscc: str) -> None:
                async with semaphore:
                    started = time.perf_counter()
                    response = await client.post(
                        "/graphql", json={"query": query, "variables": {"u": uscc}},
                        headers=headers)
                    latencies.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, response.text

            for _ in range(warmup):
                await one(usccs[0])
            latencies.clear()
            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(one(u) for u in usccs))
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return statistics.median(latencies), len(usccs) / elapsed, cpu * 1000 / len(usccs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", help="audit database URL (default: SQLite in a temp dir)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        config = create_demo_data(Path(tmp) / "demo", size=2000)
        settings = load_settings(config, env={})
        if args.postgres:
            settings = dataclasses.replace(
                settings, audit=dataclasses.replace(settings.audit, url=args.postgres))
        usccs = [e.uscc for e in build_population(2000, 500).enterprises][: args.requests]
        results: dict[tuple[bool, int], list[tuple[float, float]]] = {}
        for _ in range(args.rounds):
            for concurrency in (1, 32):
                for audit_on in (False, True):
                    results.setdefault((audit_on, concurrency), []).append(
                        asyncio.run(run(settings, audit_on, usccs, concurrency)))

    store = "PostgreSQL" if args.postgres else "SQLite (WAL)"
    print(f"# Audit write cost, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print(f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
          f"Python {platform.python_version()} on {platform.system()}; audit store: {store}; "
          f"{args.requests} requests per run, {args.rounds} interleaved rounds, medians.\n")
    print("| concurrency | audit | median latency (ms) | throughput (req/s) |")
    print("|---|---|---|---|")
    for concurrency in (1, 32):
        for audit_on in (False, True):
            runs = results[(audit_on, concurrency)]
            print(f"| {concurrency} | {'on' if audit_on else 'off'} "
                  f"| {statistics.median(r[0] for r in runs):.2f} "
                  f"| {statistics.median(r[1] for r in runs):.0f} |")
    for concurrency in (1, 32):
        off = statistics.median(r[1] for r in results[(False, concurrency)])
        on = statistics.median(r[1] for r in results[(True, concurrency)])
        print(f"\nConcurrency {concurrency}: the audit write costs "
              f"{(1 / on - 1 / off) * 1e6:.0f} µs per request ({(1 - on / off) * 100:.1f}% of throughput).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
