"""What compiled execution (``gateway.compiled``) saves: ``python -m
bench.compiled_execution [--rounds N] [--requests N]``.

In process (no HTTP server, no load generator), the same gateway app twice
over the benchmark's demo databases, ``compiled_execution`` on and off; in
each of ``rounds`` interleaved rounds (on, off, then off, on: neither always
goes first) each app answers ``requests`` times workload 2 (``MANY``, 500
entities) and workload 1 (``ONE``). Measured per request: CPU time of the
process (``time.process_time``: the event loop and the sources' threads; a
shared machine's other work is not counted) and wall time; medians over
every request of every round. Both apps' answers are checked to be the same
bytes first. Writes ``bench/results/compiled-execution-<date>-<HHMM>.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import time
from datetime import datetime, timezone

import httpx2

from bench.__main__ import DATA, RESULTS, headers_for, versions
from bench.apps import bench_settings
from bench.workload import MANY, ONE
from demo.generate import create_demo_data
from demo.population import build_population
from gateway.app import create_app
from gateway.settings import load_settings

SIZE = 1100


async def _measure(apps: dict[bool, object], headers: dict[str, str], workloads: dict,
                   rounds: int, requests: int) -> dict:
    samples: dict = {}
    clients = {on: httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app),
                                      base_url="http://gw", timeout=120)
               for on, app in apps.items()}
    try:
        for name, body in workloads.items():  # warm, and the same answer from both
            answers = []
            for on in (True, False):
                response = await clients[on].post("/graphql", headers=headers, json=body)
                assert response.status_code == 200 and b'"errors"' not in response.content
                answers.append(response.content)
            assert answers[0] == answers[1], f"{name}: compiled execution answers differently"
        for index in range(rounds):
            order = (True, False) if index % 2 == 0 else (False, True)
            for name, body in workloads.items():
                for on in order:
                    for _ in range(requests):
                        cpu, wall = time.process_time(), time.perf_counter()
                        response = await clients[on].post("/graphql", headers=headers, json=body)
                        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                        assert response.status_code == 200
                        samples.setdefault((name, on), []).append((cpu * 1000, wall * 1000))
    finally:
        for client in clients.values():
            await client.aclose()
    return samples


async def run(config: object, rounds: int, requests: int) -> tuple[dict, tuple]:
    settings = bench_settings(load_settings(config, env={}))
    usccs = [e.uscc for e in build_population(SIZE, 500).enterprises][:500]
    workloads = {"W2 (500 entities)": {"query": MANY, "variables": {"u": usccs}},
                 "W1 (one entity)": {"query": ONE, "variables": {"u": usccs[0]}}}
    apps = {on: create_app(dataclasses.replace(settings, compiled_execution=on))
            for on in (True, False)}
    headers = headers_for(settings)
    async with apps[True].router.lifespan_context(apps[True]), \
            apps[False].router.lifespan_context(apps[False]):
        samples = await _measure(apps, headers, workloads, rounds, requests)
    return samples, os.getloadavg()


def report(samples: dict, rounds: int, requests: int, load: tuple, command: str) -> str:
    lines = [f"# Compiled execution of record subtrees, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
             "",
             f"Command: `{command}`. {os.cpu_count()} cores, shared with other sessions running "
             f"tests (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end), so "
             "CPU time is the number to read; wall time is shown for completeness. "
             f"{versions()}.",
             "",
             f"In process, demo size {SIZE}, the benchmark's client (SUPERVISION, every item), "
             f"{rounds} interleaved rounds of {requests} requests per app and workload; "
             "medians of every request. Both apps' answers checked byte-identical first.",
             "",
             "| workload | compiled | CPU ms / request | wall ms / request | requests |",
             "|---|---|---|---|---|"]
    for (name, on), values in samples.items():
        cpu = statistics.median(v[0] for v in values)
        wall = statistics.median(v[1] for v in values)
        lines.append(f"| {name} | {'on' if on else 'off'} | {cpu:.1f} | {wall:.1f} | {len(values)} |")
    lines.append("")
    for name in dict.fromkeys(n for n, _ in samples):
        on = statistics.median(v[0] for v in samples[(name, True)])
        off = statistics.median(v[0] for v in samples[(name, False)])
        lines.append(f"- {name}: CPU per request {off:.1f} → {on:.1f} ms ({on / off:.0%} of off).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args(argv)
    config = create_demo_data(DATA / f"size-{SIZE}", size=SIZE)
    samples, load = asyncio.run(run(config, args.rounds, args.requests))
    text = report(samples, args.rounds, args.requests, load,
                  "python -m bench.compiled_execution " + " ".join(argv or sys.argv[1:]))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"compiled-execution-{datetime.now(timezone.utc):%Y-%m-%d-%H%M}.md"
    path.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
