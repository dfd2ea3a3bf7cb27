"""What metrics, JSON logging and the rate limiter cost, and two workers with Redis limits.

``python -m bench.operations_cost [--rounds N] [--seconds S] [--quick] [--output FILE]``
writes a markdown report to ``bench/results/operations-cost-<UTC date-time>.md``
(``--quick``: a smoke run, numbers not meaningful) and prints it.

1. Workload 1, one uvicorn worker, concurrency 1 and 32, interleaved rounds,
   four servers side by side: everything on (the packaged factory, as in
   production), metrics off (``without_metrics``), JSON logging off (the
   packaged factory, logging at WARNING: no access line) and the rate limiter
   off (``without_rate_limiter``). Each switches off one concern without
   touching the gateway's code; how, is the report's "Method".
2. Two workers at concurrency 32 (``serve --workers 2`` as uvicorn runs it):
   the demo configuration against a copy with ``[limits] storage_url`` on the
   Redis at 127.0.0.1:6379 (a key prefix of the run's own), checked to have
   counted every request there (its LPUSHes).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from gateway.server import FACTORY, create_app_from_env

REDIS = "127.0.0.1:6379"
REDIS_STORAGE_URL = f"async+redis://{REDIS}/0"
ON, METRICS, LOGGING, LIMITER = "everything on", "metrics off", "JSON logging off", "rate limiter off"
#: variant -> (uvicorn factory, root log level)
VARIANTS = {
    ON: (FACTORY, "INFO"),
    METRICS: ("bench.operations_cost:without_metrics", "INFO"),
    LOGGING: (FACTORY, "WARNING"),
    LIMITER: ("bench.operations_cost:without_rate_limiter", "INFO"),
}
EXTRA_PACKAGES = ("prometheus-client", "python-json-logger", "limits", "redis")
CONCERNS = {METRICS: "metrics", LOGGING: "JSON logging (the access line)",
            LIMITER: "rate limiter (in memory)"}


# -- the variants' factories (imported by uvicorn in the worker) -----------------------

def without_metrics():
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


# -- servers ----------------------------------------------------------------------------

@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` (what ``bench.__main__.Server`` passes on)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def log_config_file(level: str, log_file: Path) -> Path:
    """``uvicorn_log_config(level)`` as a JSON file, its handler writing to ``log_file``."""
    from gateway.logs import uvicorn_log_config

    config = uvicorn_log_config(level)
    config["filters"]["request"]["()"] = "gateway.logs.RequestContextFilter"
    config["formatters"]["json"]["()"] = "gateway.logs.GatewayJsonFormatter"
    config["handlers"]["stderr"] = {"class": "logging.FileHandler", "filename": str(log_file),
                                    "encoding": "utf-8", "formatter": "json",
                                    "filters": ["request"]}
    path = log_file.with_suffix(".logging.json")
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    return path


def start(name: str, factory: str, config: Path, workers: int, level: str, workdir: Path):
    """A ``bench.__main__.Server`` of ``factory``, logging at ``level`` to a file of its own;
    with several workers, in prometheus-client's multiprocess mode (as ``serve``)."""
    from bench.__main__ import Server

    slug = re.sub(r"\W+", "-", name)
    log_file = workdir / f"{slug}.log"
    env = {"UVICORN_LOG_CONFIG": str(log_config_file(level, log_file))}
    if workers > 1:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(workdir / f"{slug}-metrics")
        os.mkdir(env["PROMETHEUS_MULTIPROC_DIR"])
    with environment(**env):
        server = Server(factory, config, workers)
    server.log_file = log_file
    return server


def warm_up(server, bodies: list[str], headers: dict[str, str], seconds: float) -> None:
    """One request checked, then a short load (every worker's first requests)."""
    from bench.__main__ import warm
    from bench.load import run_load

    warm(f"{server.url}/graphql", bodies[0], headers)
    run_load(f"{server.url}/graphql", bodies, headers, 8, seconds)


def counted_requests(url: str) -> int:
    """The sum of ``credit_gateway_requests_total`` on ``url``'s ``/metrics``."""
    import httpx2
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx2.get(f"{url}/metrics", timeout=10).text
    return round(sum(sample.value for family in text_string_to_metric_families(text)
                     for sample in family.samples if sample.name == "credit_gateway_requests_total"))


def log_lines(log_file: Path) -> tuple[int, int, int]:
    """(lines, access lines, the rate limiter's warnings) in ``log_file`` (JSON lines)."""
    lines = access = limiter = 0
    if log_file.exists():
        with log_file.open(encoding="utf-8") as f:
            for line in f:
                logger = json.loads(line).get("logger")
                lines, access = lines + 1, access + (logger == "gateway.access")
                limiter += logger == "gateway.limits"
    return lines, access, limiter


def interleaved(servers: dict, bodies, headers, rounds: int, seconds: float,
                connections: list[int]) -> dict:
    """``(name, concurrency) -> [LoadResult per round]``, the order rotated each round."""
    from bench.load import run_load

    names, runs = list(servers), {}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for c in connections:
            for name in order:
                runs.setdefault((name, c), []).append(
                    run_load(f"{servers[name].url}/graphql", bodies, headers, c, seconds))
    return runs


def measure(specs: dict, config_of: dict, workers: int, bodies, headers, rounds, seconds,
            connections, warm_seconds, workdir) -> tuple[dict, dict]:
    """Start every server of ``specs`` (name -> (factory, level)), run the rounds,
    then read each one's metrics (one worker) and log lines; stop them."""
    servers, checks = {}, {}
    try:
        for name, (factory, level) in specs.items():
            servers[name] = start(name, factory, config_of[name], workers, level, workdir)
        for server in servers.values():
            warm_up(server, bodies, headers, warm_seconds)
        runs = interleaved(servers, bodies, headers, rounds, seconds, connections)
        for name, server in servers.items():
            counted = counted_requests(server.url) if workers == 1 else None
            checks[name] = (counted, *log_lines(server.log_file))
    finally:
        for server in servers.values():
            server.stop()
    return runs, checks


# -- Redis --------------------------------------------------------------------------------

def redis_config(config: Path, workdir: Path, prefix: str) -> Path:
    """A copy of ``config`` (its relative paths made absolute) with ``[limits]``
    on Redis under ``prefix``; checked to differ in nothing else."""
    from gateway.settings import load_settings

    text = re.sub(r'^(\w+_file|graphiql_assets) = "(?!/)([^"]+)"',
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
    """(calls per command so far, all of the server's clients, scripts' calls
    included; the server's version); the keys under ``prefix`` are deleted."""
    import redis

    client = redis.Redis.from_url(f"redis://{REDIS}/0", socket_connect_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        calls = {name.removeprefix("cmdstat_"): stats["calls"]
                 for name, stats in client.info("commandstats").items()}
        return calls, client.info("server")["redis_version"]
    finally:
        client.close()


# -- the report ---------------------------------------------------------------------------

def wait_for_quiet(limit: float, max_seconds: float) -> str:
    """Wait until the 1-minute load average is below ``limit`` (at most ``max_seconds``)."""
    started, first = time.monotonic(), os.getloadavg()[0]
    while os.getloadavg()[0] >= limit and time.monotonic() - started < max_seconds:
        time.sleep(10)
    now, waited = os.getloadavg()[0], time.monotonic() - started
    if now >= limit:
        return (f"load average (1 min) {first:.2f} at start, still {now:.2f} after "
                f"{waited:.0f} s of waiting: **measured anyway, on a busy machine**")
    return f"load average (1 min) {first:.2f} at start, {now:.2f} when measuring began " \
           f"(waited {waited:.0f} s for it to fall below {limit})"


def cost_cell(runs_on: list, runs_off: list) -> str:
    """A concern's cost, ``1 - on/off`` per round (paired): the median (the range)."""
    costs = [1 - on.rps / off.rps for on, off in zip(runs_on, runs_off)]
    middle = f"{statistics.median(costs):+.1%}"
    return f"{middle} ({min(costs):+.1%} to {max(costs):+.1%})" if len(costs) > 1 else middle


def load_cells(runs) -> str:
    from bench.__main__ import median_of

    return (f"{median_of(runs, 'rps'):.0f} | {median_of(runs, 'p50_ms'):.1f} / "
            f"{median_of(runs, 'p99_ms'):.1f}")


def main(argv: list[str] | None = None) -> int:
    from bench.__main__ import DATA, RESULTS, headers_for, versions
    from bench.workload import ONE
    from demo.generate import create_demo_data
    from demo.population import build_population
    from gateway.settings import load_settings

    parser = argparse.ArgumentParser(description="what metrics, logs and rate limits cost")
    parser.add_argument("--quick", action="store_true", help="tiny inputs: a smoke run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="per load run")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    rounds, seconds, warm_seconds = (1, 1.0, 0.5) if args.quick else (args.rounds, args.seconds, 2.0)
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
    served, warnings = two_checks["Redis"][2], two_checks["Redis"][3]
    if calls.get("lpush", 0) < 0.9 * served or warnings:  # one LPUSH per request counted
        raise RuntimeError(f"the limits were not kept in Redis: {calls}, {served} requests, "
                           f"{warnings} warning(s) of the limiter")

    tool = "wrk" if shutil.which("wrk") else "the Python closed-loop generator (bench/load.py)"
    lines = [f"# What metrics, logging and the rate limiter cost, {stamp:%Y-%m-%d %H:%M} UTC"
             + (" (quick smoke run: tiny inputs, numbers not meaningful)" if args.quick else ""),
             "", "`" + " ".join(["python -m bench.operations_cost", *(argv or sys.argv[1:])]) + "`",
             "", f"Machine: {os.uname().machine}, {os.cpu_count()} cores, {os.uname().sysname} "
             f"{os.uname().release}; Python {sys.version.split()[0]}; {versions()}, "
             f"{', '.join(f'{n} {metadata.version(n)}' for n in EXTRA_PACKAGES)}; Redis {redis_version}. Load: {tool} in its own process, on "
             f"the same cores as the servers; {rounds} interleaved rounds of {seconds:g} s per "
             f"run (after a {warm_seconds:g} s warm-up per server), medians. Machine: {load}.", "",
             "## Method", "",
             "Workload 1 (one entity's full record, 14 fields from six sources, `bench/workload.py` "
             "`ONE`, 200 enterprises cycled) on the bench's 2,000-enterprise demo data; every "
             "server is `uvicorn --factory` (`bench/__main__.py` `Server`) with the demo "
             "configuration and the bench's rate limits (`bench/apps.py` `BENCH_LIMITS`, far above "
             "the load: nothing is refused). The variants run side by side; each round runs each "
             "of them once per concurrency, their order rotated from round to round.", "",
             f"* **{ON}**: the packaged factory `{FACTORY}` as in production: Prometheus "
             "metrics, JSON log lines at INFO (one access line per request) and the rate limiter "
             "in memory.",
             f"* **{METRICS}**: `bench.operations_cost:without_metrics`: before the app is built, "
             "`gateway.metrics.request_done`, `timed_batch`, `source_call` and `audit_append` are "
             "replaced by functions that record nothing in Prometheus (they still set the access "
             "line's latency and open the tracing spans, no-ops with tracing off); `answered` "
             "and `executed` stay, since the access line needs the outcome they classify.",
             f"* **{LOGGING}**: the packaged factory with the same log configuration at WARNING: "
             "the access line is neither formatted nor written (other INFO lines neither).",
             f"* **{LIMITER}**: `bench.operations_cost:without_rate_limiter`: the packaged app "
             "with its GraphQL endpoint's `limiter` set to `None`, the endpoint's own path "
             "without rate limits.", "",
             "Logging is `gateway.logs.uvicorn_log_config()`, what `credit-gateway serve` gives "
             "uvicorn, passed through `UVICORN_LOG_CONFIG`, its handler a `FileHandler` on a "
             "temporary file instead of standard error (the bench's servers do not read their "
             "standard error): one JSON line formatted, scrubbed, written and flushed per "
             "request, as to a container's log. A concern's cost is `1 - on / off` (req/s with "
             "everything on against req/s with it off, the share of throughput it takes) per "
             "round, paired; the table gives the median over the rounds and their range.", "",
             "## 1. Workload 1, one worker", "",
             "| variant | concurrency | req/s | p50 / p99 (ms) |", "|---|---|---|---|"]
    for c in (1, 32):
        lines += [f"| {name} | {c} | {load_cells(one[(name, c)])} |" for name in VARIANTS]
    lines += ["", "| concern | its cost at concurrency 1 | at concurrency 32 |", "|---|---|---|"]
    for name, concern in CONCERNS.items():
        lines.append(f"| {concern} | {cost_cell(one[(ON, 1)], one[(name, 1)])} | "
                     f"{cost_cell(one[(ON, 32)], one[(name, 32)])} |")
    lines += ["", "What each server did (warm-up included): requests counted in `/metrics` "
              "(`credit_gateway_requests_total`), lines in its log, access lines among them.", "",
              "| variant | requests counted | log lines | access lines |", "|---|---|---|---|",
              *(f"| {name} | {counted:,} | {total:,} | {access:,} |"
                for name, (counted, total, access, _) in one_checks.items()),
              "", "## 2. Two workers, rate limits in Redis against in memory (concurrency 32)", "",
              "`serve --workers 2` as uvicorn runs it: the packaged factory, 2 workers, the same "
              "JSON logging at INFO, a fresh `PROMETHEUS_MULTIPROC_DIR` per server. `Redis`: a "
              f"copy of the demo configuration with `[limits] storage_url = \"{REDIS_STORAGE_URL}\"` "
              "and a key prefix of the run's own (checked to differ in nothing else); "
              "`in memory`: the demo configuration (each worker counts alone).", "",
              "| limits | req/s | p50 / p99 (ms) | log lines | access lines |", "|---|---|---|---|---|",
              *(f"| {name} | {load_cells(two[(name, 32)])} | {two_checks[name][1]:,} | "
                f"{two_checks[name][2]:,} |" for name in two_specs),
              "", f"Redis' cost against memory: {cost_cell(two[('Redis', 32)], two[('in memory', 32)])} "
              f"of throughput. Redis counted: it ran {calls.get('evalsha', 0):,} scripts and "
              f"{calls.get('lpush', 0):,} LPUSHes (one per request in the moving window) during "
              f"the two-worker runs, for {served:,} access lines of the Redis server, and the "
              "limiter logged no storage failure; the keys under the run's prefix were deleted "
              "after (the server's counters include any other client it had meanwhile).", "",
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
