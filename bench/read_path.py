"""What the read path costs a whole request: workload 1 (one entity, six
sources) and workload 2 (500 entities) in process, with the SQL sources'
batch statements through SQLAlchemy's execution, through the driver on the
SQLite threads, and through the driver on the event loop (the default),
interleaved.

``python -m bench.read_path [--rounds 6] [--requests 300] [--size 2000] [--output FILE]``
serves the demo data (SQLite files, as ``python -m bench``) with the gateway
app in this process (ASGI, no HTTP server, policy and audit on); per round
and read path, ``--requests`` workload-1 requests one after another
(concurrency 1), the same number as 32 concurrent streams, and 3 workload-2
requests. It reports the process's CPU time per request (``time.process_time``:
every thread of this process) and wall time, medians over rounds, to
``bench/results/read-path-<UTC date-time>.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx2

import connectors.sql
from bench.__main__ import DATA, RESULTS, headers_for
from bench.apps import bench_settings
from bench.workload import MANY, ONE
from demo.generate import create_demo_data
from demo.population import build_population
from gateway.app import create_app
from gateway.settings import load_settings
from gateway.sources import SourceRegistry

PATHS = ("SQLAlchemy execution", "driver, on the threads", "driver, on the event loop")


def use(registry: SourceRegistry, path: str) -> None:
    """Switch every SQL source of ``registry`` to the read path ``path``."""
    for connector in registry.connectors.values():
        if isinstance(connector, connectors.sql.SqlConnector):
            connector.direct = path != PATHS[0]
            connector.inline = path == PATHS[2]


async def timed(client, requests: list[dict], headers: dict, concurrency: int) -> tuple[float, float]:
    """CPU and wall seconds per request for ``requests`` in ``concurrency`` streams."""
    queue = list(reversed(requests))

    async def stream() -> None:
        while queue:
            response = await client.post("/graphql", headers=headers, json=queue.pop())
            assert response.status_code == 200 and "errors" not in response.json(), response.text[:300]

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(stream() for _ in range(concurrency)))
    return ((time.process_time() - cpu) / len(requests),
            (time.perf_counter() - wall) / len(requests))


async def run(args, config: Path) -> dict:
    settings = bench_settings(load_settings(config, env={}))
    usccs = [e.uscc for e in build_population(args.size, 500).enterprises]
    registry = SourceRegistry.from_settings(settings)
    app = create_app(settings, registry)
    headers = headers_for(settings)
    one = [{"query": ONE, "variables": {"u": usccs[i % len(usccs)]}} for i in range(args.requests)]
    width = min(500, len(usccs))
    many = [{"query": MANY, "variables": {"u": [usccs[(k * 500 + i) % len(usccs)]
                                                for i in range(width)]}} for k in range(3)]
    results: dict = {}
    async with app.router.lifespan_context(app):
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app),
                                      base_url="http://gw", timeout=300) as client:
            for path in PATHS:  # warm every path: statements rendered, plans cached
                use(registry, path)
                await timed(client, one[:30], headers, 1)
                await timed(client, many[:1], headers, 1)
            for r in range(args.rounds):
                order = PATHS if r % 2 == 0 else tuple(reversed(PATHS))
                for path in order:
                    use(registry, path)
                    for name, requests, concurrency in (("workload 1, c=1", one, 1),
                                                        ("workload 1, c=32", one, 32),
                                                        ("workload 2 (500 entities)", many, 1)):
                        results.setdefault((name, path), []).append(
                            await timed(client, requests, headers, concurrency))
                print(f"round {r + 1}/{args.rounds} done", flush=True)
    use(registry, PATHS[2])
    return results


def report(results: dict, args, command: str, load_before, load_after, seconds: float) -> str:
    lines = [
        f"# The read path in whole requests ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
        f"Command: `{command}` ({seconds:.0f} s). Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs. Load average before / after: "
        f"{' '.join(f'{x:.2f}' for x in load_before)} / {' '.join(f'{x:.2f}' for x in load_after)}. "
        "**The machine was shared** with other workers running test suites: wall times move "
        "with their load; CPU time (`time.process_time`, all of this process's threads) much less.",
        "",
        f"Method: the gateway app in process over the demo data ({args.size} enterprises, "
        "SQLite files), through httpx's ASGI transport (no HTTP server: the CPU is the "
        "gateway's and the load generator's, which is the same for every path), policy, "
        f"audit, metrics and limits on. {args.rounds} rounds; in each, the three read paths in "
        f"alternating order, each running {args.requests} workload-1 requests (the `bench` "
        "query, one entity, 14 statements on six sources) one after another and as 32 "
        "concurrent streams, and 3 workload-2 requests (500 entities). Figures: medians over "
        "the rounds of the per-request means. The SQLite sources' batch statements run on the "
        "event loop only in the third path.",
        "",
        "| workload | " + " | ".join(f"{p}: CPU ms / wall ms" for p in PATHS) + " | CPU saved, third vs first |",
        "|---|" + "---|" * (len(PATHS) + 1),
    ]
    names = dict.fromkeys(name for name, _ in results)
    for name in names:
        cells, cpus = [], []
        for path in PATHS:
            runs = results[name, path]
            cpu = statistics.median(c for c, _ in runs) * 1000
            wall = statistics.median(w for _, w in runs) * 1000
            cpus.append(cpu)
            cells.append(f"{cpu:.2f} / {wall:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {1 - cpus[-1] / cpus[0]:.0%} |")
    lines += ["", "Every round (CPU ms per request):", ""]
    for (name, path), runs in results.items():
        lines.append(f"- {name}, {path}: " + ", ".join(f"{c * 1000:.2f}" for c, _ in runs))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    command = "python -m bench.read_path " + " ".join(sys.argv[1:] if argv is None else argv)
    load_before, started = os.getloadavg(), time.perf_counter()
    config = create_demo_data(DATA / f"size-{args.size}", size=args.size)
    results = asyncio.run(run(args, config))
    text = report(results, args, command.strip(), load_before, os.getloadavg(),
                  time.perf_counter() - started)
    output = args.output or RESULTS / f"read-path-{datetime.now(timezone.utc):%Y-%m-%d-%H%M}.md"
    output.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
