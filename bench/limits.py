"""What admission (gateway/admission.py) costs, and what an abusive request costs.

``python -m bench.limits [--output FILE]`` measures, in process over the
demo databases (no HTTP server, so the numbers are the gateway's own work):

1. the admission of workload 1's query per request (its document cached, as
   in steady state) against the whole request through the ASGI app;
2. the same for a document seen for the first time (parse and validate);
3. rejecting a 1 MB "token soup" of random field names through the ASGI app,
   with the default limits (the length check) and with ``max_query_length``
   raised so that the token limit must stop the parser: time per request and
   the Python memory still held after 20 of them;
4. a 1,000-alias document and a 5 MB body: answered, and how fast.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import random
import statistics
import string
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import httpx2
import orjson

from bench.__main__ import DATA, headers_for
from bench.workload import ONE
from demo.generate import create_demo_data
from demo.population import build_population
from gateway.admission import Admission
from gateway.app import create_app
from gateway.settings import Settings, load_settings
from gateway.schema import graphql_schema, source_field_names

RESULTS = Path(__file__).with_name("results")


def admission_cost(settings: Settings, uscc: str, times: int = 20_000) -> tuple[float, float]:
    """(µs per admission of workload 1's cached query, µs for a new text)."""
    admission = Admission(graphql_schema(), settings, source_field_names())
    variables = {"u": uscc}
    admission.admit(ONE, None, variables, True)
    started = time.perf_counter()
    for _ in range(times):
        admission.admit(ONE, None, variables, True)
    cached = (time.perf_counter() - started) / times * 1e6
    fresh = []
    for i in range(200):
        text = ONE.replace("query(", f"query Q{i}(", 1)
        started = time.perf_counter()
        admission.admit(text, None, variables, True)
        fresh.append(time.perf_counter() - started)
    return cached, statistics.median(fresh) * 1e6


def soup(size: int) -> str:
    rng = random.Random(1)
    names = []
    length = 2
    while length < size:
        name = rng.choice(string.ascii_lowercase) + "".join(
            rng.choice(string.ascii_lowercase + string.digits) for _ in range(rng.randrange(3, 12)))
        names.append(name)
        length += len(name) + 1
    return "{ " + " ".join(names) + " }"


async def over_http(settings: Settings, uscc: str, rounds: int) -> dict[str, object]:
    app = create_app(settings)
    headers = {**headers_for(settings), "Content-Type": "application/json"}
    one = orjson.dumps({"query": ONE, "variables": {"u": uscc}})
    big = orjson.dumps({"query": soup(1_000_000)})
    aliases = orjson.dumps({"query": "{ " + " ".join(
        f'e{i}: entity(uscc: "{uscc}") {{ uscc }}' for i in range(1000)) + " }"})
    huge = b'{"query": "{ __typename }", "pad": "' + b"x" * 5_000_000 + b'"}'
    out: dict[str, object] = {}
    async with app.router.lifespan_context(app):
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app),
                                      base_url="http://gw", timeout=120) as client:
            async def timed(body: bytes, n: int) -> tuple[float, httpx2.Response]:
                timings = []
                for _ in range(n):
                    started = time.perf_counter()
                    response = await client.post("/graphql", content=body, headers=headers)
                    timings.append(time.perf_counter() - started)
                return statistics.median(timings) * 1000, response

            await timed(one, 20)
            out["one_ms"], response = await timed(one, rounds)
            assert response.status_code == 200 and "errors" not in response.json()
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            out["soup_ms"], response = await timed(big, 20)
            gc.collect()
            out["soup_kept_kib"] = (tracemalloc.get_traced_memory()[0] - before) / 1024
            tracemalloc.stop()
            out["soup_answer"] = (response.status_code, response.json()["errors"][0]["extensions"])
            out["aliases_ms"], response = await timed(aliases, 5)
            out["aliases_answer"] = (response.status_code,
                                     response.json()["errors"][0]["extensions"])
            out["huge_ms"], response = await timed(huge, 5)
            out["huge_answer"] = (response.status_code, response.json()["errors"][0]["extensions"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args(argv)
    config = create_demo_data(DATA / "size-2000", size=2000)
    settings = load_settings(config, env={})
    uscc = build_population(2000, 500).showcase["dishonest_debtor"].uscc
    cached, fresh = admission_cost(settings, uscc)
    default = asyncio.run(over_http(settings, uscc, args.rounds))
    raised = asyncio.run(over_http(dataclasses.replace(settings, max_query_length=2_000_000),
                                   uscc, 20))
    lines = [f"# Admission limits, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "",
             "`python -m bench.limits`, in process (ASGI transport, no HTTP server), "
             "demo data of 2,000 enterprises; medians.", "",
             "| what | result |", "|---|---|",
             f"| admission of workload 1's query (cached document) | {cached:.1f} µs per request |",
             f"| workload 1, the whole request in process | {default['one_ms']:.2f} ms: admission "
             f"is {cached / 1000 / default['one_ms']:.2%} of it |",
             f"| admission of a text seen for the first time (parse, measure, validate) "
             f"| {fresh:.0f} µs |",
             f"| 1 MB token soup, default limits | {default['soup_ms']:.2f} ms, answered "
             f"{default['soup_answer'][0]} {default['soup_answer'][1]['code']}; "
             f"{default['soup_kept_kib']:.0f} KiB kept after 20 |",
             f"| 1 MB token soup, `max_query_length` raised to 2,000,000 | "
             f"{raised['soup_ms']:.1f} ms, answered {raised['soup_answer'][0]} "
             f"{raised['soup_answer'][1]['code']}; {raised['soup_kept_kib']:.0f} KiB kept after 20 |",
             f"| 1,000 aliases of `entity` | {default['aliases_ms']:.2f} ms, answered "
             f"{default['aliases_answer'][0]} {default['aliases_answer'][1]['code']}, "
             "no source read |",
             f"| a 5 MB body | {default['huge_ms']:.2f} ms, answered {default['huge_answer'][0]} "
             f"{default['huge_answer'][1]['code']} |", ""]
    report = "\n".join(lines)
    output = args.output or RESULTS / f"limits-{datetime.now(timezone.utc):%Y-%m-%d-%H%M}.md"
    output.write_text(report, encoding="utf-8")
    print(report)
    print(f"written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
