"""Smoke test: ``python -m bench.operations_cost --quick`` runs end to end.

Only the report's structure is checked, and what each variant did (the
requests counted in ``/metrics``, the access lines written): no timing is asserted.
It needs the Redis the rate-limit tests use (skipped without it, outside CI).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.operations_cost import CONCERNS, REDIS, VARIANTS

ROOT = Path(__file__).resolve().parent.parent


def redis_reachable() -> bool:
    host, port = REDIS.split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def test_the_operations_cost_benchmark_runs_on_tiny_inputs(tmp_path):
    if not redis_reachable():
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide Redis at {REDIS}")
        pytest.skip(f"Redis at {REDIS} is not reachable")
    report = tmp_path / "report.md"
    subprocess.run([sys.executable, "-m", "bench.operations_cost", "--quick", "--output",
                    str(report)], cwd=ROOT, check=True, capture_output=True, timeout=600)
    text = report.read_text(encoding="utf-8")
    for heading in ("## Method", "## 1. Workload 1, one worker",
                    "## 2. Two workers, rate limits in Redis against in memory"):
        assert heading in text
    load = r"\d+ \| [\d.]+ / [\d.]+ \| [\d.]+"  # req/s | p50 / p99 (ms) | CPU per request (ms)
    for variant in VARIANTS:  # | variant | concurrency | ... |
        for c in (1, 32):
            assert re.search(rf"^\| {variant} \| {c} \| {load} \|$", text, re.M)
    for concern in CONCERNS.values():  # | concern | throughput at 1, 32 | CPU at 1, 32 |
        assert re.search(rf"^\| {re.escape(concern)}(?: \| [+-][\d.]+%){{4}} \|$", text, re.M)
    for limits in ("in memory", "Redis"):  # ... | access lines | served unchecked |
        assert re.search(rf"^\| {limits} \| {load} \| [\d,]+ \| [\d,]+ \|$", text, re.M)
    assert re.search(r"Redis against memory: [+-][\d.]+% of the throughput, [+-][\d.]+% of", text)
    # | variant | requests counted | log lines | access lines |: each switch did its one thing
    done = {name: [int(n.replace(",", "")) for n in numbers] for name, *numbers in
            re.findall(r"^\| ([a-zA-Z ]+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|$", text, re.M)}
    assert set(done) == set(VARIANTS)
    counted, _, access = done["everything on"]
    assert counted > 0 and access == counted
    assert done["metrics off"][0] == 0 and done["metrics off"][2] > 0
    assert done["JSON logging off"][0] > 0 and done["JSON logging off"][2] == 0
    assert done["rate limiter off"][0] > 0 and done["rate limiter off"][2] > 0
