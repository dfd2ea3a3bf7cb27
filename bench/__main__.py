"""The benchmark suite: ``python -m bench`` (``--quick`` for a smoke run).

Starts the gateway and its two ceilings as uvicorn servers over the same
demo databases (``bench/ceiling.py``, the true ceiling: the connectors'
statements through the driver, JSON by hand; ``bench/sqlalchemy_ceiling.py``:
the connectors themselves, no GraphQL), drives them with a load
generator in another process (wrk when installed: ``apt-get install wrk``),
runs every workload in interleaved rounds and writes a markdown report with
the machine, versions, date, medians and ceiling ratios to ``bench/results/``.
The gateway is the packaged factory, with rate limits far above the load
(``bench/apps.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import httpx2

from bench.apps import (GATEWAY_FACTORY, WITHOUT_AUDIT, WITHOUT_POLICY_AND_AUDIT,
                        bench_environment,
                        bench_settings)
from bench.load import cpu_seconds, run_load
from bench.workload import CLIENT, MANY, ONE
from demo.generate import create_demo_data
from demo.issuer import ensure_signing_key, issue_token
from demo.population import build_population
from gateway.app import create_app
from gateway.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent
#: The ceilings every workload compares the gateway with: the true one
#: first, the ratios are to it.
CEILINGS = {"ceiling": "bench.ceiling:create_ceiling_app",
            "sqlalchemy ceiling": "bench.sqlalchemy_ceiling:create_sqlalchemy_ceiling_app"}
DATA = ROOT / ".data"
RESULTS = ROOT / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``uvicorn --factory`` in a subprocess over ``config``."""

    def __init__(self, factory: str, config: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "BENCH_CONFIG": str(config), **bench_environment(str(config))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(workers), "--log-level", "warning",
             "--no-access-log"],
            env=env, cwd=ROOT.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{factory} did not start: {self.process.stderr.read().decode()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    time.sleep(0.5 if workers > 1 else 0.1)
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{factory} did not start within 60 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _cpu_seconds(pid: int) -> float | None:
    """``bench.load.cpu_seconds``, or ``None`` where ``/proc`` does not tell."""
    try:
        return cpu_seconds(pid)
    except OSError:
        return None


def headers_for(settings: Settings) -> dict[str, str]:
    key, _ = ensure_signing_key(Path(settings.auth.jwks_file).parent)
    token = issue_token(key, client_id=CLIENT[0], issuer=settings.auth.issuer,
                        audience=settings.auth.audience, lifetime_seconds=24 * 3600)
    return {"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": CLIENT[1]}


def warm(url: str, body: str, headers: dict[str, str]) -> None:
    response = httpx2.post(url, content=body, headers={**headers, "Content-Type": "application/json"},
                           timeout=60)
    response.raise_for_status()
    assert "errors" not in response.json(), response.text[:500]


def single_entity(config: Path, usccs: list[str], rounds: int, seconds: float,
                  workers: list[int], connections: list[int]) -> dict:
    """Workload 1 (and 5): gateway vs its ceilings, interleaved, medians."""
    settings = load_settings(config, env={})
    headers = headers_for(settings)
    gateway_bodies = [json.dumps({"query": ONE, "variables": {"u": u}}) for u in usccs]
    ceiling_bodies = [json.dumps({"uscc": u}) for u in usccs]
    results: dict = {}
    for n in workers:
        gateway = Server(GATEWAY_FACTORY, config, n)
        ceilings = {name: Server(factory, config, n) for name, factory in CEILINGS.items()}
        try:
            warm(f"{gateway.url}/graphql", gateway_bodies[0], headers)
            for ceiling in ceilings.values():
                warm(f"{ceiling.url}/entity", ceiling_bodies[0], {})
            for _ in range(rounds):
                for c in connections:
                    for name, url, bodies, hdrs in (
                        ("gateway", f"{gateway.url}/graphql", gateway_bodies, headers),
                        *((name, f"{ceiling.url}/entity", ceiling_bodies, {})
                          for name, ceiling in ceilings.items()),
                    ):
                        r = run_load(url, bodies, hdrs, c, seconds)
                        results.setdefault((name, n, c), []).append(r)
        finally:
            gateway.stop()
            for ceiling in ceilings.values():
                ceiling.stop()
    return results


def median_of(runs, attr):
    return statistics.median(getattr(r, attr) for r in runs)


def statements_sent(registry) -> dict[str, int]:
    """Statements each SQL source has sent so far (``SqlConnector.statements_sent``)."""
    return {source_id: connector.statements_sent
            for source_id, connector in registry.connectors.items()
            if hasattr(connector, "statements_sent")}


def statements_since(registry, before: dict[str, int]) -> dict[str, int]:
    """Statements per source sent since the ``statements_sent`` snapshot ``before``."""
    return {source_id: n - before[source_id] for source_id, n in
            sorted(statements_sent(registry).items()) if n > before[source_id]}


async def in_process(settings: Settings, query: str, variables: dict, times: int) -> tuple[list[float], dict]:
    """Timings of ``query`` in process, and statements per source of the last run."""
    from gateway.sources import SourceRegistry

    registry = SourceRegistry.from_settings(settings)
    app = create_app(settings, registry)
    headers = headers_for(settings)
    timings = []
    async with app.router.lifespan_context(app):
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app),
                                      base_url="http://gw", timeout=120) as client:
            for i in range(times + 1):
                before = statements_sent(registry)
                started = time.perf_counter()
                response = await client.post("/graphql", headers=headers,
                                             json={"query": query, "variables": variables})
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200 and "errors" not in response.json()
                counts = statements_since(registry, before)
                if i:
                    timings.append(elapsed)
    return timings, counts


def count_fields(value) -> int:
    """Fields resolved in a response value (every key of every object)."""
    if isinstance(value, dict):
        return len(value) + sum(count_fields(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_fields(v) for v in value)
    return 0


async def source_time(settings: Settings, usccs: list[str], times: int) -> float:
    """Median time the sources alone take for the query's record types over
    ``usccs`` (the ceiling's calls, batched like the loaders)."""
    from bench.sqlalchemy_ceiling import CALL
    from bench.workload import FIELDS
    from connectors import RECORD_TYPES
    from gateway.sources import SourceRegistry

    registry = SourceRegistry.from_settings(settings)
    batch = settings.max_batch_keys
    timings = []
    try:
        for _ in range(times + 1):
            started = time.perf_counter()
            calls = []
            for record_type, _ in FIELDS.values():
                sources = ([registry.local(record_type)] if not RECORD_TYPES[record_type].many
                           else registry.serving(record_type))
                for source in sources:
                    calls += [source.load(record_type, usccs[i:i + batch], CALL)
                              for i in range(0, len(usccs), batch)]
            await asyncio.gather(*calls)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        await registry.aclose()
    return statistics.median(timings[1:])


def many_entities(config: Path, usccs: list[str], rounds: int) -> dict:
    """Workload 2: 500 and 1,000 entities in one request; the gateway's time
    above the sources' own time, per resolved field."""
    settings = bench_settings(load_settings(config, env={}))
    rows = {}
    for n in (500, 1000):
        variables = {"u": usccs[:n]}
        timings, counts = asyncio.run(in_process(settings, MANY, variables, rounds))
        tracemalloc.start()
        asyncio.run(in_process(settings, MANY, variables, 1))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        sources_ms = asyncio.run(source_time(settings, usccs[:n], rounds))
        fields = asyncio.run(response_fields(settings, MANY, variables))
        per_field_us = (statistics.median(timings) - sources_ms) * 1000 / fields
        rows[n] = (statistics.median(timings), peak / 2**20, counts, sources_ms, fields,
                   per_field_us)
    return rows


async def response_fields(settings: Settings, query: str, variables: dict) -> int:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app),
                                      base_url="http://gw", timeout=120) as client:
            response = await client.post("/graphql", headers=headers_for(settings),
                                         json={"query": query, "variables": variables})
    return count_fields(response.json()["data"])


async def ceiling_in_process(factory: str, settings: Settings, uscc: str,
                             times: int) -> list[float]:
    """Timings of the answer for ``uscc`` of the ceiling ``factory``
    (``module:function``), in process."""
    module, function = factory.split(":")
    app = getattr(importlib.import_module(module), function)(settings)
    timings = []
    async with app.router.lifespan_context(app):
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app),
                                      base_url="http://ceiling", timeout=120) as client:
            for i in range(times + 1):
                started = time.perf_counter()
                response = await client.post("/entity", json={"uscc": uscc})
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                if i:
                    timings.append(elapsed)
    return timings


def fan_out(config: Path, uscc: str, rounds: int, delay_ms: float = 20.0) -> dict:
    """Workload 3: every source delayed by ``delay_ms``, gateway and ceilings,
    in process: median request time with and without the delay."""
    settings = bench_settings(load_settings(config, env={}))
    delayed = dataclasses.replace(settings, sources=tuple(
        dataclasses.replace(s, simulated_latency_ms=delay_ms) for s in settings.sources))
    times = max(10, rounds * 10)
    medians: dict = {}
    for _ in range(rounds):  # interleaved rounds
        for name, with_settings in (("delayed", delayed), ("plain", settings)):
            gateway, _ = asyncio.run(in_process(with_settings, ONE, {"u": uscc}, times))
            medians.setdefault(("gateway", name), []).extend(gateway)
            for ceiling, factory in CEILINGS.items():
                medians.setdefault((ceiling, name), []).extend(
                    asyncio.run(ceiling_in_process(factory, with_settings, uscc, times)))
    return {key: statistics.median(values) for key, values in medians.items()}


def versions() -> str:
    names = ["strawberry-graphql", "graphql-core", "starlette", "uvicorn", "sqlalchemy",
             "aiosqlite", "orjson", "httpx2"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the gateway's benchmark suite")
    parser.add_argument("--quick", action="store_true", help="tiny inputs: a smoke run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per load run")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    quick = args.quick
    rounds, seconds = (1, 1.0) if quick else (args.rounds, args.seconds)
    small_size = 1100 if quick else 2000
    started = time.perf_counter()

    small = create_demo_data(DATA / f"size-{small_size}", size=small_size)
    usccs = [e.uscc for e in build_population(small_size, 500).enterprises]
    lines = [f"# Benchmarks, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
             + (" (quick smoke run: tiny inputs, numbers not meaningful)" if quick else ""), ""]
    lines.append(f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
                 f"{platform.system()} {platform.release()}; Python {platform.python_version()}; "
                 f"{versions()}. Load: {'wrk' if shutil.which('wrk') else 'python closed loop'} "
                 f"in its own process; {rounds} interleaved rounds of {seconds:g} s, medians.")
    lines.append("")

    workers = [1] if quick else [1, 2]
    one = single_entity(small, usccs[:200], rounds, seconds, workers, [1, 32])
    lines += ["## 1. One entity's full record (14 fields from six sources)", "",
              "The ceiling is the true one (`bench/ceiling.py`: the connectors' statements "
              "through the driver, JSON by hand); the SQLAlchemy ceiling runs the connectors "
              "themselves without GraphQL (`bench/sqlalchemy_ceiling.py`). Neither applies "
              "the catalog's row rules, token, policy or audit.", "",
              "| workers | concurrency | system | req/s | gateway / it | p50 / p99 (ms) |",
              "|---|---|---|---|---|---|"]
    for n in workers:
        for c in (1, 32):
            gateway_rps = median_of(one[("gateway", n, c)], "rps")
            for name in ("gateway", *CEILINGS):
                runs = one[(name, n, c)]
                lines.append(f"| {n} | {c} | {name} | {median_of(runs, 'rps'):.0f} "
                             f"| {gateway_rps / median_of(runs, 'rps'):.0%} "
                             f"| {median_of(runs, 'p50_ms'):.1f} / {median_of(runs, 'p99_ms'):.1f} |")
    lines.append("")

    many = many_entities(small, usccs, rounds)
    lines += ["## 2. Many entities in one request", "",
              "| entities | latency (ms) | peak Python memory (MiB) | statements per source |",
              "|---|---|---|---|"]
    for n, (latency, peak, counts, *_) in many.items():
        per = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        lines.append(f"| {n} | {latency:.0f} | {peak:.1f} | {per} |")
    lines += ["", "| entities | gateway (ms) | the sources alone (ms) | fields resolved "
              "| gateway time per field above the sources (µs) |", "|---|---|---|---|---|"]
    for n, (latency, _, _, sources_ms, fields, per_field) in many.items():
        lines.append(f"| {n} | {latency:.0f} | {sources_ms:.0f} | {fields:,} | {per_field:.1f} |")
    lines.append("")

    fan = fan_out(small, usccs[0], rounds)
    lines += ["## 3. Fan-out: every source delayed by 20 ms", "",
              "In process (no HTTP server), one entity's full record, medians.", "",
              "| | sources delayed 20 ms (ms) | above the delay (ms) | no delay (ms) "
              "| the delay added (ms) |", "|---|---|---|---|---|"]
    for name in ("gateway", *CEILINGS):
        delayed, plain = fan[(name, "delayed")], fan[(name, "plain")]
        lines.append(f"| {name} | {delayed:.1f} | {delayed - 20:.1f} | {plain:.1f} "
                     f"| {delayed - plain:.1f} |")
    above = (fan[("gateway", "delayed")] - 20) - (fan[("ceiling", "delayed")] - 20)
    added = fan[("gateway", "delayed")] - fan[("gateway", "plain")]
    lines += ["", f"The gateway's time above the delay, beyond the true ceiling's: **{above:.1f} ms**. "
              f"Delaying each of the six sources by 20 ms added {added:.1f} ms to the gateway's "
              "request (20 if they overlap fully, 120 if they ran one after another).", ""]

    settings = load_settings(small, env={})
    headers = headers_for(settings)
    bodies = [json.dumps({"query": ONE, "variables": {"u": u}}) for u in usccs[:200]]
    variants = {"policy and audit": GATEWAY_FACTORY, "policy, no audit": WITHOUT_AUDIT,
                "neither": WITHOUT_POLICY_AND_AUDIT}
    servers = {name: Server(factory, small) for name, factory in variants.items()}
    policy_runs: dict[str, list] = {}
    cpu_per_request: dict[str, list] = {}
    try:
        for server in servers.values():
            warm(f"{server.url}/graphql", bodies[0], headers)
        for _ in range(rounds):
            for name, server in servers.items():
                before = _cpu_seconds(server.process.pid)
                run = run_load(f"{server.url}/graphql", bodies, headers, 32, seconds)
                after = _cpu_seconds(server.process.pid)
                policy_runs.setdefault(name, []).append(run)
                if before is not None and after is not None:
                    cpu_per_request.setdefault(name, []).append(
                        (after - before) * 1000 / (run.rps * seconds))
    finally:
        for server in servers.values():
            server.stop()
    rps = {name: median_of(runs, "rps") for name, runs in policy_runs.items()}
    lines += ["## 4. Policy and audit on versus off (workload 1, concurrency 32, 1 worker)", "",
              "| extensions | req/s | p50 / p99 (ms) | server CPU per request (ms) |",
              "|---|---|---|---|",
              *(f"| {name} | {rps[name]:.0f} | {median_of(runs, 'p50_ms'):.1f} / "
                f"{median_of(runs, 'p99_ms'):.1f} | "
                + (f"{statistics.median(cpu_per_request[name]):.2f}"
                   if name in cpu_per_request else "—") + " |"
                for name, runs in policy_runs.items()),
              "", f"Their cost: {(1 - rps['policy and audit'] / rps['neither']):.1%} of "
              f"throughput; admission and the policy alone: "
              f"{(1 - rps['policy, no audit'] / rps['neither']):.1%}. (The variants exist "
              "only in `bench/apps.py`; the gateway itself cannot run without them.)", ""]

    lines += ["## 5. Data-set size", ""]
    if quick:
        lines += ["Skipped in the quick run.", ""]
    else:
        large = create_demo_data(DATA / "size-100000", size=100_000)
        large_usccs = [e.uscc for e in build_population(100_000, 500).enterprises][:200]
        big = single_entity(large, large_usccs, rounds, seconds, [1], [1])
        small_p50 = median_of(one[("gateway", 1, 1)], "p50_ms")
        large_p50 = median_of(big[("gateway", 1, 1)], "p50_ms")
        lines += ["| enterprises | gateway p50 (ms), concurrency 1 |", "|---|---|",
                  f"| {small_size:,} | {small_p50:.1f} |", f"| 100,000 | {large_p50:.1f} |",
                  "", f"Change: {(large_p50 / small_p50 - 1):+.0%}.", ""]

    lines += ["## 6. Cross-city", ""]
    if quick:
        lines += ["Skipped in the quick run.", ""]
    else:
        out = subprocess.run([sys.executable, "-m", "bench.cross_city", "--requests", "50"],
                             capture_output=True, text=True, cwd=ROOT.parent, check=True).stdout
        lines += [line for line in out.splitlines() if line.startswith("|")] + [""]

    lines.append(f"Suite time: {time.perf_counter() - started:.0f} s.")
    report = "\n".join(lines) + "\n"
    output = args.output or RESULTS / (
        f"bench-{datetime.now(timezone.utc):%Y-%m-%d-%H%M}{'-quick' if quick else ''}.md")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report, encoding="utf-8")
    print(report)
    print(f"written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
