"""What metrics, JSON logging and the rate limiter cost, and two workers with Redis limits.

``python -m bench.operations_cost [--rounds N] [--seconds S] [--quick] [--output FILE]``
writes a markdown report to ``bench/results/operations-cost-<UTC date-time>.md`` and
prints it (``--quick``: a smoke run). 1. Workload 1, one uvicorn worker, concurrency 1
and 32, in rounds: everything on (the packaged factory), metrics off (``without_metrics``),
JSON logging off (logging at WARNING) and the rate limiter off (``without_rate_limiter``),
each switching off one concern without touching the gateway (how: the report's
"Method"). 2. Two workers at concurrency 32, ``[limits] storage_url`` on Redis against
in memory.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import os
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from bench.load import cpu_seconds
from gateway.server import FACTORY, create_app_from_env

REDIS = "127.0.0.1:6379"
REDIS_STORAGE_URL = f"async+redis://{REDIS}/0"
ON, METRICS, LOGGING, LIMITER = "everything on", "metrics off", "JSON logging off", "rate limiter off"
AGAIN = "everything on again"  # a second, identical server: the noise floor
VARIANTS = {ON: (FACTORY, "INFO"), METRICS: ("bench.operations_cost:without_metrics", "INFO"),
            LOGGING: (FACTORY, "WARNING"),  # variant -> (uvicorn factory, root log level)
            LIMITER: ("bench.operations_cost:without_rate_limiter", "INFO"), AGAIN: (FACTORY, "INFO")}
EXTRA_PACKAGES = ("prometheus-client", "python-json-logger", "limits", "redis")
CONCERNS = {METRICS: "metrics", LOGGING: "JSON logging (the access line)",
            LIMITER: "rate limiter (in memory)", AGAIN: "nothing (A/A: the noise floor)"}


def without_metrics():  # the variants' factories: imported by uvicorn in the worker
    """Benchmark only: the packaged app with nothing recorded in Prometheus."""
    from gateway import metrics, tracing

    def request_done(info, started):  # the access line still gets its latency
        info.latency_ms = round((time.perf_counter() - started) * 1000, 3)

    def timed_batch(batch, source_id, record_type):  # the span alone
        async def traced(keys):
            with tracing.source_span(source_id, record_type, len(keys)):
                return await batch(keys)
        return traced

    def source_call(source_id, record_type, keys):
        return tracing.source_span(source_id, record_type, keys)

    async def audit_append(append, kind):
        with tracing.span("audit.append", {"audit.kind": kind}):
            return await append

    metrics.request_done, metrics.timed_batch = request_done, timed_batch
    metrics.source_call, metrics.audit_append = source_call, audit_append
    return create_app_from_env()


def without_rate_limiter():
    """Benchmark only: the packaged app, its endpoint without a rate limiter."""
    from gateway.http import GraphQLEndpoint

    app = create_app_from_env()
    endpoints = [route.endpoint for route in app.routes
                 if isinstance(getattr(route, "endpoint", None), GraphQLEndpoint)]
    assert len(endpoints) == 1, endpoints
    endpoints[0].limiter = None
    return app


def log_config_file(level: str, log_file: Path) -> Path:
    """``uvicorn_log_config(level)`` as a JSON file, its handler writing to ``log_file``."""
    from gateway.logs import uvicorn_log_config

    config = uvicorn_log_config(level)
    config["filters"]["request"]["()"] = "gateway.logs.RequestContextFilter"
    config["formatters"]["json"]["()"] = "gateway.logs.GatewayJsonFormatter"
    config["handlers"]["stderr"] = {"class": "logging.FileHandler", "filename": str(log_file),
                                    "formatter": "json", "filters": ["request"], "encoding": "utf-8"}
    path = log_file.with_suffix(".logging.json")
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    return path


def start(name: str, factory: str, level: str, config: Path, workers: int, workdir: Path):
    """A ``bench.__main__.Server`` of ``factory`` logging at ``level`` to a file of ``name``'s;
    with several workers in prometheus-client's multiprocess mode (as ``serve``)."""
    from bench.__main__ import Server
    from gateway.settings import load_settings

    saved = os.environ.copy()
    log_file = workdir / (re.sub(r"\W+", "-", name) + ".log")  # appended to, round after round
    os.environ["UVICORN_LOG_CONFIG"] = str(log_config_file(level, log_file))
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # (Server passes os.environ on)
    if workers > 1:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(dir=workdir)
    try:
        server = Server(factory, config, workers)
        server.audit_db = load_settings(config, env={}).audit.url.split(":///", 1)[1]
        server.log_file = log_file
        return server
    finally:
        os.environ.clear()
        os.environ.update(saved)


def warm_up(server, bodies: list[str], headers: dict[str, str], seconds: float) -> None:
    """One request checked, then a short load (every worker's first requests)."""
    from bench.__main__ import warm
    from bench.load import run_load

    warm(f"{server.url}/graphql", bodies[0], headers)
    run_load(f"{server.url}/graphql", bodies, headers, 8, seconds)


Run = collections.namedtuple("Run", "rps p50_ms p99_ms cpu_ms")


def audited(database: str) -> int:
    """The audit chain's head: how many records were ever appended (one per request)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return db.execute("SELECT seq FROM audit_head").fetchone()[0]


def load(server, bodies, headers, connections: int, seconds: float) -> Run:
    """A load run; the server's CPU time over the requests it served (audited: exact)."""
    from bench.load import run_load

    before = cpu_seconds(server.process.pid), audited(server.audit_db)
    result = run_load(f"{server.url}/graphql", bodies, headers, connections, seconds)
    used = cpu_seconds(server.process.pid) - before[0]
    served = audited(server.audit_db) - before[1]
    return Run(result.rps, result.p50_ms, result.p99_ms, used * 1000 / served)


COUNTERS = ("credit_gateway_requests_total", "credit_gateway_rate_limit_storage_errors_total")


def counted(url: str) -> collections.Counter:
    """``COUNTERS`` summed on ``url``'s ``/metrics`` (every worker's)."""
    import httpx2
    from prometheus_client.parser import text_string_to_metric_families

    samples = [sample for family in text_string_to_metric_families(httpx2.get(
        f"{url}/metrics", timeout=10).text) for sample in family.samples]
    return collections.Counter({name: round(sum(s.value for s in samples if s.name == name))
                                for name in COUNTERS})


def log_lines(log_file: Path) -> tuple[int, int, list[str]]:
    """(lines, access lines, the rate limiter's messages) in ``log_file`` (JSON lines)."""
    lines, access, limiter = 0, 0, []
    with log_file.open(encoding="utf-8") as f:
        for line in map(json.loads, f):
            lines, access = lines + 1, access + (line.get("logger") == "gateway.access")
            limiter += [line["message"]] if line.get("logger") == "gateway.limits" else []
    return lines, access, limiter


def measure(specs: dict, configs: dict, workers: int, bodies, headers, rounds: int,
            seconds: float, connections: list[int], warm_seconds: float, workdir: Path):
    """Rounds of fresh servers of ``specs`` (name -> (factory, log level)), each loaded at
    each concurrency in a rotated order: ``{(name, concurrency): [Run per round]}`` and
    ``{name: (requests counted in /metrics, log lines, access lines, the limiter's lines)}``."""
    names, runs, logs = list(specs), {}, {}
    totals = {name: collections.Counter() for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        servers = {}
        try:
            for name in order:
                servers[name] = start(name, *specs[name], configs[name], workers, workdir)
            for server in servers.values():
                warm_up(server, bodies, headers, warm_seconds)
            for c in connections:
                for name in order:
                    runs.setdefault((name, c), []).append(
                        load(servers[name], bodies, headers, c, seconds))
            for name, server in servers.items():
                totals[name] += counted(server.url)
                logs[name] = server.log_file
        finally:
            for server in servers.values():
                server.stop()
    return runs, {name: (*(totals[name][c] for c in COUNTERS), *log_lines(logs[name]))
                  for name in names}


def redis_config(config: Path, workdir: Path, prefix: str) -> Path:
    """``config`` with ``[limits]`` on Redis under ``prefix``, checked to differ in nothing else."""
    from gateway.settings import load_settings

    text = re.sub(r'^(\w+_file|graphiql_assets|directory) = "(?!/)([^"]+)"',
                  lambda m: f'{m[1]} = "{(config.parent / m[2]).resolve()}"',
                  config.read_text(encoding="utf-8"), flags=re.M)
    if not re.search(r"^graphiql_assets =", text, re.M):  # its default: beside the file
        text = text.replace("[gateway]\n", "[gateway]\ngraphiql_assets = "
                            f'"{config.parent.resolve() / "graphiql-assets"}"\n', 1)
    text += f'\n[limits]\nstorage_url = "{REDIS_STORAGE_URL}"\nkey_prefix = "{prefix}"\n'
    path = workdir / "gateway-redis.toml"
    path.write_text(text, encoding="utf-8")
    plain, shared = load_settings(config, env={}), load_settings(path, env={})
    assert shared.limits.storage_url == REDIS_STORAGE_URL and shared.limits.key_prefix == prefix
    assert dataclasses.replace(shared, limits=plain.limits) == plain, "the copy differs"
    return path


def redis_calls(prefix: str) -> tuple[dict[str, int], str]:
    """(every command's calls so far, all clients', the server's version); ``prefix``'s keys deleted."""
    import redis

    client = redis.Redis.from_url(f"redis://{REDIS}/0", socket_connect_timeout=2)
    try:
        if keys := list(client.scan_iter(match=f"{prefix}:*")):
            client.delete(*keys)
        calls = {name.removeprefix("cmdstat_"): stats["calls"]
                 for name, stats in client.info("commandstats").items()}
        return calls, client.info("server")["redis_version"]
    finally:
        client.close()


def wait_for_quiet(limit: float, max_seconds: float) -> str:
    """Wait until the 1-minute load average is below ``limit`` (at most ``max_seconds``)."""
    started, first = time.monotonic(), os.getloadavg()[0]
    while os.getloadavg()[0] >= limit and time.monotonic() - started < max_seconds:
        time.sleep(10)
    now, waited = os.getloadavg()[0], time.monotonic() - started
    return (f"load average (1 min) {first:.2f} at start, {now:.2f} after waiting {waited:.0f} s"
            + (": **measured anyway, on a busy machine**" if now >= limit else ""))


def cost_cell(runs_on: list, runs_off: list, attr: str) -> str:
    """A concern's share, per round (paired), of the throughput (``1 - on/off`` of the
    req/s) or of the CPU per request (``1 - off/on``): the median (the range)."""
    pairs = [(getattr(on, attr), getattr(off, attr)) for on, off in zip(runs_on, runs_off)]
    costs = [1 - on / off if attr == "rps" else 1 - off / on for on, off in pairs]
    middle = f"{statistics.median(costs):+.1%}"
    return f"{middle} ({min(costs):+.1%} to {max(costs):+.1%})" if len(costs) > 1 else middle


def load_cells(runs) -> str:
    from bench.__main__ import median_of

    return (f"{median_of(runs, 'rps'):.0f} | {median_of(runs, 'p50_ms'):.1f} / "
            f"{median_of(runs, 'p99_ms'):.1f} | {median_of(runs, 'cpu_ms'):.2f}")


def main(argv: list[str] | None = None) -> int:
    from bench.__main__ import DATA, RESULTS, headers_for, versions
    from bench.workload import ONE
    from demo.generate import create_demo_data
    from demo.population import build_population
    from gateway.settings import load_settings

    parser = argparse.ArgumentParser(description="what metrics, logs and rate limits cost")
    parser.add_argument("--quick", action="store_true", help="tiny inputs: a smoke run")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0, help="per load run")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    rounds, seconds, warm_seconds = (1, 1.0, 0.5) if args.quick else (args.rounds, args.seconds, 1.5)
    load = "not waited for (quick run)" if args.quick else wait_for_quiet(1.5, 600)
    started = time.perf_counter()
    stamp = datetime.now(timezone.utc)

    config = create_demo_data(DATA / "size-2000", size=2000)
    usccs = [e.uscc for e in build_population(2000, 500).enterprises][:200]
    headers = headers_for(load_settings(config, env={}))
    bodies = [json.dumps({"query": ONE, "variables": {"u": u}}) for u in usccs]
    prefix = f"bench-operations-cost-{os.getpid()}-{stamp:%Y%m%d%H%M%S}"
    workdir = Path(tempfile.mkdtemp(prefix="operations-cost-"))
    try:
        one, one_checks = measure(VARIANTS, dict.fromkeys(VARIANTS, config), 1, bodies, headers,
                                  rounds, seconds, [1, 32], warm_seconds, workdir)
        shared = redis_config(config, workdir, prefix)
        two_specs = {"in memory": (FACTORY, "INFO"), "Redis": (FACTORY, "INFO")}
        before, redis_version = redis_calls(prefix)
        two, two_checks = measure(two_specs, {"in memory": config, "Redis": shared}, 2, bodies,
                                  headers, rounds, seconds, [32], warm_seconds, workdir)
    finally:
        after, _ = redis_calls(prefix)
        shutil.rmtree(workdir, ignore_errors=True)
    calls = {name: after[name] - before.get(name, 0) for name in ("evalsha", "lpush")
             if name in after}
    _, unchecked, _, served, messages = two_checks["Redis"]
    if calls.get("lpush", 0) < 0.9 * (served - unchecked):  # one LPUSH per request counted
        raise RuntimeError(f"the limits were not kept in Redis: {calls}, {served} requests")

    tool = "wrk" if shutil.which("wrk") else "the Python closed-loop generator (bench/load.py)"
    versions_text = ", ".join([versions(), *(f"{n} {metadata.version(n)}" for n in EXTRA_PACKAGES)])
    lines = [f"# What metrics, logging and the rate limiter cost, {stamp:%Y-%m-%d %H:%M} UTC"
             + (" (quick smoke run: tiny inputs, numbers not meaningful)" if args.quick else ""),
             "", "`" + " ".join(["python -m bench.operations_cost", *(argv or sys.argv[1:])]) + "`",
             "", f"Machine: {os.uname().machine}, {os.cpu_count()} cores, {os.uname().sysname} "
             f"{os.uname().release}, {load}. Python {sys.version.split()[0]}; {versions_text}; "
             f"Redis {redis_version}. Load: {tool} in its own process, sharing the cores with "
             f"the servers; {rounds} rounds of {seconds:g} s per run, medians.", "",
             "## Method", "",
             "Workload 1 (one entity's full record, 14 fields from six sources: `bench/workload.py` "
             "`ONE`, 200 enterprises cycled) on the bench's 2,000-enterprise demo data, served by "
             "`uvicorn --factory` (`bench/__main__.py` `Server`) with the demo configuration and "
             "the bench's rate limits (`bench/apps.py` `BENCH_LIMITS`: nothing is refused). Each "
             f"round starts fresh servers of every variant (warmed up by {warm_seconds:g} s of "
             "load), runs each once per concurrency in an order rotated from round to round, and "
             "stops them (two identical servers kept for a whole run differed by 9% in a check).",
             "",
             f"* **{ON}**: the packaged factory `{FACTORY}` as in production: Prometheus "
             "metrics, JSON log lines at INFO (an access line per request), rate limiter in memory.",
             f"* **{METRICS}**: `bench.operations_cost:without_metrics`: before the app is built, "
             "`gateway.metrics.request_done`, `timed_batch`, `source_call` and `audit_append` are "
             "replaced by functions recording nothing in Prometheus (they still set the access "
             "line's latency and open the tracing spans, no-ops with tracing off); `answered` "
             "and `executed` stay: the access line needs the outcome they classify.",
             f"* **{LOGGING}**: the packaged factory, the same log configuration at WARNING: "
             "the access line (and any other INFO line) is neither formatted nor written.",
             f"* **{LIMITER}**: `bench.operations_cost:without_rate_limiter`: the packaged app, "
             "its GraphQL endpoint's `limiter` set to `None` (the endpoint's path without limits).",
             f"* **{AGAIN}**: a second server exactly like the first: what it \"costs\" is the "
             "noise floor of the comparison on this machine.", "", "Logging is `gateway.logs.uvicorn_log_config()` (what `credit-gateway serve` "
             "gives uvicorn) through `UVICORN_LOG_CONFIG`, its handler a `FileHandler` on a "
             "temporary file instead of standard error (which the bench's servers do not read): a "
             "JSON line formatted, scrubbed, written and flushed per request. A concern's cost, "
             "per round (paired) against everything on: its share of the throughput, `1 - on / "
             "off` of the req/s, and of the server's CPU time per request (utime + stime from "
             "`/proc` over the run / the requests it served, counted in the audit trail's head), "
             "`1 - off / on`; the median over the rounds (the range).", "",
             "## 1. Workload 1, one worker", "",
             "| variant | concurrency | req/s | p50 / p99 (ms) | server CPU per request (ms) |",
             "|---|---|---|---|---|"]
    for c in (1, 32):
        lines += [f"| {name} | {c} | {load_cells(one[(name, c)])} |" for name in VARIANTS]
    lines += ["", "| concern | its share of throughput at concurrency 1 | at 32 "
              "| its share of CPU per request at 1 | at 32 |", "|---|---|---|---|---|"]
    for name, concern in CONCERNS.items():
        lines.append(f"| {concern} | " + " | ".join(
            cost_cell(one[(ON, c)], one[(name, c)], attr)
            for attr in ("rps", "cpu_ms") for c in (1, 32)) + " |")
    lines += ["", "What the servers did (all rounds, warm-ups included): requests counted in "
              "`/metrics` (`credit_gateway_requests_total`), log lines, access lines.", "",
              "| variant | requests counted | log lines | access lines |", "|---|---|---|---|",
              *(f"| {name} | {requests:,} | {total:,} | {access:,} |"
                for name, (requests, _, total, access, _) in one_checks.items()),
              "", "## 2. Two workers, rate limits in Redis against in memory (concurrency 32)", "",
              "`serve --workers 2` as uvicorn runs it: the packaged factory, 2 workers, the same "
              "JSON logging at INFO, a fresh `PROMETHEUS_MULTIPROC_DIR` per server, fresh "
              "servers each round as above. `Redis`: a copy of the demo configuration with "
              f"`[limits] storage_url = \"{REDIS_STORAGE_URL}\"` and a key prefix of the run's "
              "own (checked to differ in nothing else); `in memory`: the demo configuration "
              "(each worker counts alone).", "",
              "| limits | req/s | p50 / p99 (ms) | CPU per request, both workers (ms) | access "
              "lines | served unchecked (storage errors) |", "|---|---|---|---|---|---|",
              *(f"| {name} | {load_cells(two[(name, 32)])} | {two_checks[name][3]:,} | "
                f"{two_checks[name][1]:,} |" for name in two_specs),
              "", "Redis against memory: "
              f"{cost_cell(two[('Redis', 32)], two[('in memory', 32)], 'rps')} of the throughput, "
              f"{cost_cell(two[('Redis', 32)], two[('in memory', 32)], 'cpu_ms')} of the workers' "
              "CPU per request (not Redis' own). Redis counted: it ran "
              f"{calls.get('evalsha', 0):,} scripts and {calls.get('lpush', 0):,} LPUSHes (one per "
              f"request in the moving window; all its clients') in the two-worker runs, for "
              f"{served:,} access lines of the Redis servers; the keys under the run's prefix were "
              "deleted after. " + (f"Their limiter logged {len(messages)} line(s), the first: "
                                   f"\"{messages[0]}\"" if messages else "Their limiter logged "
                                   "nothing (no storage failure)") + ".", "",
              f"Run time: {time.perf_counter() - started:.0f} s."]
    report = "\n".join(lines) + "\n"
    output = args.output or RESULTS / (
        f"operations-cost-{stamp:%Y-%m-%d-%H%M}{'-quick' if args.quick else ''}.md")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report, encoding="utf-8")
    print(report)
    print(f"written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
