"""Smoke tests: ``bench.statement_cost`` and ``bench.read_path`` run end to
end on tiny inputs and report every connector and read path. No timing is
asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench.read_path import PATHS
from connectors import CONNECTORS
from connectors.sql import SqlConnector

ROOT = Path(__file__).resolve().parent.parent


def test_statement_cost_reports_every_sql_connector(tmp_path):
    report = tmp_path / "statement-cost.md"
    subprocess.run([sys.executable, "-m", "bench.statement_cost", "--engines", "sqlite",
                    "--single", "8", "--hundred", "2", "--rounds", "2", "--size", "150",
                    "--output", str(report)], cwd=ROOT, check=True, capture_output=True, timeout=600)
    text = report.read_text(encoding="utf-8")
    rows = re.findall(r"^\| sqlite \| (\w+) \| (1|100) \| (\d+) \|", text, re.M)
    kinds = {kind for kind, cls in CONNECTORS.items() if issubclass(cls, SqlConnector)}
    assert {kind for kind, _, _ in rows} == kinds
    assert sorted((kind, keys, batches) for kind, keys, batches in rows) == sorted(
        [(kind, "1", "8") for kind in kinds] + [(kind, "100", "2") for kind in kinds])


def test_read_path_reports_every_path(tmp_path):
    report = tmp_path / "read-path.md"
    subprocess.run([sys.executable, "-m", "bench.read_path", "--rounds", "1", "--requests", "4",
                    "--size", "150", "--output", str(report)],
                   cwd=ROOT, check=True, capture_output=True, timeout=600)
    text = report.read_text(encoding="utf-8")
    for workload in ("workload 1, c=1", "workload 1, c=32", "workload 2 (500 entities)"):
        for path in PATHS:
            assert re.search(rf"^- {re.escape(workload)}, {re.escape(path)}: [\d.]+$", text, re.M)
