"""A bank's portfolio: 500 financing profiles in one request, through the
bank portal's persisted operation, on the default demo data and on 100,000
enterprises.

``python -m bench.portfolio [--rounds N] [--output FILE]`` runs in process
(no HTTP server: the gateway's own work and the sources'), as the demo's
persisted-only bank ``bank-icbc-huizhou`` under ``FINANCING``, and reports
the median latency, the peak Python memory of one request (tracemalloc) and
the statements each source ran for it (a constant: one per record type per
batch of keys, whatever the portfolio's size or the data set's).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import httpx2

from bench.__main__ import DATA, RESULTS, statements_sent, statements_since
from demo.generate import create_demo_data
from demo.issuer import ensure_signing_key, issue_token
from demo.population import build_population
from gateway.app import create_app
from gateway.operations import read_operations
from gateway.settings import Settings, load_settings
from gateway.sources import SourceRegistry

BANK = ("bank-icbc-huizhou", "FINANCING")
PORTFOLIO = 500
SIZES = (2000, 100_000)


def portfolio_request(settings: Settings, usccs: list[str]) -> tuple[dict, dict[str, str]]:
    """The persisted-document request of the demo's ``BankPortfolio`` and its headers."""
    (operation,) = [o for o in read_operations(settings.operations_file).values()
                    if o.name == "BankPortfolio"]
    key, _ = ensure_signing_key(Path(settings.auth.jwks_file).parent)
    token = issue_token(key, client_id=BANK[0], issuer=settings.auth.issuer,
                        audience=settings.auth.audience, lifetime_seconds=3600)
    body = {"documentId": f"sha256:{operation.sha256}", "variables": {"usccs": usccs}}
    return body, {"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": BANK[1]}


async def measure(settings: Settings, usccs: list[str], rounds: int) -> dict:
    registry = SourceRegistry.from_settings(settings)
    app = create_app(settings, registry)
    body, headers = portfolio_request(settings, usccs)
    timings = []
    async with app.router.lifespan_context(app):
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app),
                                      base_url="http://gw", timeout=300) as client:
            for i in range(rounds + 1):
                before = statements_sent(registry)
                started = time.perf_counter()
                response = await client.post("/graphql", headers=headers, json=body)
                elapsed = (time.perf_counter() - started) * 1000
                answer = response.json()
                assert response.status_code == 200, response.text[:500]
                assert len(answer["data"]["financingProfiles"]) == len(usccs)
                statements = statements_since(registry, before)
                if i:  # the first round warms caches
                    timings.append(elapsed)
            tracemalloc.start()
            await client.post("/graphql", headers=headers, json=body)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    return {"median_ms": statistics.median(timings), "peak_mib": peak / 2**20,
            "statements": statements}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = {}
    for size in SIZES:
        config = create_demo_data(DATA / f"size-{size}", size=size)
        settings = load_settings(config, env={})
        population = build_population(size, 500)
        authorized = population.showcase["financing_authorized"].uscc
        usccs = [authorized] + [e.uscc for e in population.enterprises
                                if e.uscc != authorized][:PORTFOLIO - 1]
        rows[size] = asyncio.run(measure(settings, usccs, args.rounds))
    small, large = rows[SIZES[0]], rows[SIZES[1]]
    change = (large["median_ms"] / small["median_ms"] - 1) * 100
    lines = [f"# A bank's 500-enterprise portfolio, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
             "", f"In process, `BankPortfolio` by documentId as `{BANK[0]}` ({BANK[1]}); "
             f"median of {args.rounds} rounds after one warm-up.", "",
             "| enterprises in the data | latency (ms) | peak Python memory (MiB) | statements per source |",
             "|---|---|---|---|"]
    for size, row in rows.items():
        statements = ", ".join(f"{s} {n}" for s, n in row["statements"].items())
        lines.append(f"| {size:,} | {row['median_ms']:.0f} | {row['peak_mib']:.1f} | {statements} |")
    lines += ["", f"100,000 against {SIZES[0]:,}: {change:+.0f}% (target: at most +20%)."]
    report = "\n".join(lines) + "\n"
    output = args.output or RESULTS / f"portfolio-{datetime.now(timezone.utc):%Y-%m-%d-%H%M}.md"
    output.write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
