"""Smoke test: ``python -m bench.audit_tree --quick`` (appends, proofs, verify) runs end to end.

SQLite only, one version (no ``--before``): only the report's structure is
checked, and what the workers did (the batch sizes the group-commit writer
made, the records the verify walked): no timing is asserted.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"[\d,.]+"


def test_the_audit_tree_benchmark_runs_on_tiny_inputs(tmp_path):
    report = tmp_path / "report.md"
    subprocess.run([sys.executable, "-m", "bench.audit_tree", "--quick", "--parts", "append",
                    "proofs", "--output", str(report)], cwd=ROOT, check=True,
                   capture_output=True, timeout=600)
    text = report.read_text(encoding="utf-8")
    # | store | processes × appenders | version | CPU | wall | median batch |
    for layout, batch in (("1 × 1", "1"), ("1 × 64", "64"), ("2 × 64", r"\d+")):
        assert re.search(rf"^\| SQLite \| {layout} \| tree \| \d+ \| \d+ \| {batch} \|$", text, re.M)
    for size in ("1,000", "3,000"):  # | tree size | four proofs' medians |
        assert re.search(rf"^\| {size}(?: \| {NUMBER}){{4}} \|$", text, re.M)
    assert re.search(r"^\| tree \| 3,000 \| 2,000 \| \d+ \| \d+ \|$", text, re.M)  # the fill
    # | version | records | against a checkpoint | wall | CPU | µs/record | peak RSS |
    assert re.search(rf"^\| tree \| 3,000 \| yes(?: \| {NUMBER}){{4}} \|$", text, re.M)
