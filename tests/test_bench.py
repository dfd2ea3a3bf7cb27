"""Smoke test: the benchmark suite runs end to end on tiny inputs.

It checks that every workload reports, and the one figure that is a
correctness property rather than a speed: statements per source do not grow
with the number of entities (1,000 entities cost twice 500's only because
they span two batches of the default 500 keys). No timing is asserted.
"""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys
from pathlib import Path

from bench.workload import FIELDS
from gateway.settings import Settings
from tests.gateway_fixtures import ENTITY_RECORD_TYPES, demo_connectors, statements_per_source

ROOT = Path(__file__).resolve().parent.parent
# The bench serves the demo configuration, which leaves max_batch_keys at its default.
MAX_BATCH_KEYS = {f.name: f.default for f in dataclasses.fields(Settings)}["max_batch_keys"]


def test_the_suite_runs_on_tiny_inputs(tmp_path):
    report = tmp_path / "report.md"
    subprocess.run([sys.executable, "-m", "bench", "--quick", "--output", str(report)],
                   cwd=ROOT, check=True, capture_output=True, timeout=600)
    text = report.read_text(encoding="utf-8")
    for heading in ("## 1. One entity's full record", "## 2. Many entities in one request",
                    "## 3. Fan-out", "## 4. Policy and audit on versus off", "## 5. Data-set size",
                    "## 6. Cross-city"):
        assert heading in text
    # Workload 4 runs the gateway with both extensions, with the policy alone, and with neither.
    variants = re.findall(r"^\| (policy and audit|policy, no audit|neither) \| \d+ \| ", text, re.M)
    assert variants == ["policy and audit", "policy, no audit", "neither"]
    # | entities | latency | peak memory | "source n, source n, ..." |
    rows = {int(n): dict((source, int(count)) for source, count in
                         (item.rsplit(" ", 1) for item in cell.split(", ")))
            for n, cell in re.findall(r"^\| (500|1000) \| [\d.]+ \| [\d.]+ \| ([^|]+?) \|$",
                                      text, re.M)}
    assert set(rows) == {500, 1000}
    # The query reads the workload's Entity fields (declared record types):
    # one statement per record type a source serves, per batch of keys.
    record_types = [record_type for record_type, _ in FIELDS.values()]
    assert set(record_types) <= {rt.name for rt in ENTITY_RECORD_TYPES.values()}
    for n, counts in rows.items():
        expected = statements_per_source(demo_connectors(), record_types,
                                         batches=math.ceil(n / MAX_BATCH_KEYS))
        assert len(expected) > 1
        assert counts == expected, n
