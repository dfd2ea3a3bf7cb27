"""Smoke test: the benchmark suite runs end to end on tiny inputs.

It checks that every workload reports, and the one figure that is a
correctness property rather than a speed: statements per source do not grow
with the number of entities (1,000 entities cost twice 500's only because
they span two batches of the default 500 keys). No timing is asserted.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_suite_runs_on_tiny_inputs(tmp_path):
    report = tmp_path / "report.md"
    subprocess.run([sys.executable, "-m", "bench", "--quick", "--output", str(report)],
                   cwd=ROOT, check=True, capture_output=True, timeout=600)
    text = report.read_text(encoding="utf-8")
    for heading in ("## 1. One entity's full record", "## 2. Many entities in one request",
                    "## 3. Fan-out", "## 4. Policy and audit on versus off", "## 5. Data-set size",
                    "## 6. Cross-city"):
        assert heading in text
    rows = dict(re.findall(r"^\| (500|1000) \| [\d.]+ \| [\d.]+ \| (hz-.+) \|$", text, re.M))
    assert rows["500"] == ("hz-court 1, hz-credit 5, hz-environment 2, hz-hrss 1, "
                           "hz-market 3, hz-tax 2")
    assert rows["1000"] == ("hz-court 2, hz-credit 10, hz-environment 4, hz-hrss 2, "
                            "hz-market 6, hz-tax 4")
