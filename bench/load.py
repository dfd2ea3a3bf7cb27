"""Load generation: wrk when installed, else a small closed-loop generator.

``run_load(url, bodies, headers, connections, seconds)`` drives POST
requests cycling through ``bodies`` from a separate process and returns
requests/s and the p50/p99 latency in milliseconds; ``cpu_seconds(pid)``
the CPU time a server process (and its workers) has used, read before and
after a run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    tool: str


def _lua(bodies: list[str], headers: dict[str, str]) -> str:
    def quote(text: str) -> str:
        return json.dumps(text, ensure_ascii=False)

    lines = ["local bodies = {"] + [f"  {quote(b)}," for b in bodies] + ["}", "local i = 0"]
    lines.append('wrk.method = "POST"')
    lines.append('wrk.headers["Content-Type"] = "application/json"')
    lines += [f"wrk.headers[{quote(k)}] = {quote(v)}" for k, v in headers.items()]
    lines += ["request = function()", "  i = i % #bodies + 1",
              "  return wrk.format(nil, nil, nil, bodies[i])", "end"]
    return "\n".join(lines)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _millis(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNITS[unit]


def _wrk(url: str, bodies: list[str], headers: dict[str, str], connections: int,
         seconds: float) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False, encoding="utf-8") as f:
        f.write(_lua(bodies, headers))
    threads = min(connections, 2)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
         "-s", f.name, url], capture_output=True, text=True, check=True).stdout
    Path(f.name).unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _millis(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _millis(re.search(r"\s99%\s+(\S+)", out).group(1))
    if "Non-2xx" in out:
        raise RuntimeError(f"load run had failed requests:\n{out}")
    return LoadResult(rps, p50, p99, "wrk")


async def _closed_loop(url: str, bodies: list[str], headers: dict[str, str], connections: int,
                       seconds: float) -> dict:
    import httpx2

    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx2.Limits(max_connections=connections)
    async with httpx2.AsyncClient(limits=limits, timeout=60,
                                  headers={**headers, "Content-Type": "application/json"}) as client:
        async def worker(offset: int) -> None:
            i = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.post(url, content=bodies[i % len(bodies)])
                response.raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)
                i += connections
        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(connections)))
        elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {"rps": len(latencies) / elapsed, "p50": quantiles[49], "p99": quantiles[98]}


def run_load(url: str, bodies: list[str], headers: dict[str, str], connections: int,
             seconds: float) -> LoadResult:
    if shutil.which("wrk"):
        return _wrk(url, bodies, headers, connections, seconds)
    payload = json.dumps({"url": url, "bodies": bodies, "headers": headers,
                          "connections": connections, "seconds": seconds})
    out = subprocess.run([sys.executable, "-m", "bench.load"], input=payload,
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    return LoadResult(result["rps"], result["p50"], result["p99"], "python closed loop")


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by process ``pid`` (its threads) and its children (workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    ticks = 0
    for process in (pid, *map(int, children)):
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    args = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(_closed_loop(args["url"], args["bodies"], args["headers"],
                                              args["connections"], args["seconds"]))))
