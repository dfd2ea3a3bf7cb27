"""CPU time per request of the two ceilings (and the gateway), in process.

``python -m bench.ceiling_cost [--calls N] [--rounds R] [--gateway]``: the
true ceiling (``bench/ceiling.py``) and the SQLAlchemy ceiling
(``bench/sqlalchemy_ceiling.py``), each answering ``N`` workload-1 requests
(``POST /entity``, the suite's 200 codes in turn, 2,000-enterprise demo
data) through httpx2's ``ASGITransport`` (no server, no sockets), in ``R``
interleaved rounds; with ``--gateway`` the gateway answering
``bench.workload.ONE`` the same way. Prints CPU milliseconds per request
(``time.process_time``: this process's CPU, the sqlite3 reads included) per
round and the medians. The HTTP client's and starlette's own work is in
every figure: the "transport floor" row is a starlette handler returning a
constant body the size of a typical answer, what each figure has on top of
the system's work.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.__main__ import DATA, headers_for
from bench.apps import bench_settings
from bench.ceiling import create_ceiling_app
from bench.sqlalchemy_ceiling import create_sqlalchemy_ceiling_app
from bench.workload import ONE
from demo.generate import create_demo_data
from demo.population import build_population
from gateway.app import create_app
from gateway.settings import Settings, load_settings

SIZE = 2000


async def cpu_per_request(app, path: str, bodies: list[dict], headers: dict[str, str],
                          calls: int) -> float:
    """CPU milliseconds per request of ``app`` over ``calls`` requests (after 20 to warm up)."""
    async with app.router.lifespan_context(app):
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app),
                                      base_url="http://bench", timeout=120) as client:
            for i in range(20):
                (await client.post(path, json=bodies[i % len(bodies)], headers=headers)
                 ).raise_for_status()
            started = time.process_time()
            for i in range(calls):
                response = await client.post(path, json=bodies[i % len(bodies)], headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(response.text[:300])
            return (time.process_time() - started) * 1000 / calls


def floor_app(body: bytes) -> Starlette:
    """Reads the request's JSON and answers ``body``: HTTP in process, no work."""
    async def answer(request: Request) -> Response:
        await request.json()
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/entity", answer, methods=["POST"])])


async def typical_answer(settings: Settings, uscc: str) -> bytes:
    app = create_ceiling_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app),
                                      base_url="http://bench") as client:
            return (await client.post("/entity", json={"uscc": uscc})).content


def systems(settings: Settings, usccs: list[str], with_gateway: bool) -> dict:
    ceiling_bodies = [{"uscc": u} for u in usccs]
    body = asyncio.run(typical_answer(settings, usccs[0]))
    found = {
        "transport floor": (lambda: floor_app(body), "/entity", ceiling_bodies, {}),
        "true ceiling": (lambda: create_ceiling_app(settings), "/entity", ceiling_bodies, {}),
        "SQLAlchemy ceiling": (lambda: create_sqlalchemy_ceiling_app(settings), "/entity",
                               ceiling_bodies, {}),
    }
    if with_gateway:
        found["gateway"] = (lambda: create_app(settings), "/graphql",
                            [{"query": ONE, "variables": {"u": u}} for u in usccs],
                            headers_for(settings))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gateway", action="store_true", help="measure the gateway too")
    args = parser.parse_args(argv)
    config = create_demo_data(DATA / f"size-{SIZE}", size=SIZE)
    settings = bench_settings(load_settings(config, env={}))
    usccs = [e.uscc for e in build_population(SIZE, 500).enterprises][:200]
    measured = systems(settings, usccs, args.gateway)
    results: dict[str, list[float]] = {name: [] for name in measured}
    for _ in range(args.rounds):  # interleaved
        for name, (factory, path, bodies, headers) in measured.items():
            results[name].append(asyncio.run(cpu_per_request(factory(), path, bodies, headers,
                                                             args.calls)))
    true = statistics.median(results["true ceiling"])
    print("| system | CPU ms per request (median) | rounds | / true ceiling |")
    print("|---|---|---|---|")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {', '.join(f'{v:.3f}' for v in values)} "
              f"| {median / true:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
