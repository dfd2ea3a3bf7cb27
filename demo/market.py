"""Demo rows for the market regulation database (legacy schema in ``connectors.market``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from connectors.market import abnormal_operations, metadata, registrations, serious_violations
from demo.population import DIVISION_NAMES, Population

__all__ = ["metadata", "rows"]

_STREETS = ("江北文昌一路", "河南岸演达大道", "淡水开城大道", "罗阳镇北门路", "平山华侨城", "龙城街道")


def _organ(division: str) -> str:
    return f"{DIVISION_NAMES[division]}市场监督管理局"


def rows(population: Population) -> Iterator[tuple[sa.Table, list[dict[str, Any]]]]:
    """The legacy rows of every table, table by table."""
    rng = population.rng("market")
    today = population.today
    registration_rows, abnormal_rows, serious_rows = [], [], []
    for e in population.enterprises:
        status = "1"
        if rng.random() < 0.03:
            status = rng.choice("234")
        registration_rows.append({
            "tyshxydm": e.uscc,
            "qymc": e.name,
            "fddbr": e.legal_representative.name,
            "fddbr_zjhm": e.legal_representative.id_number,
            "qylx": e.entity_type,
            "clrq": f"{e.established_on:%Y%m%d}",
            "zczb": e.registered_capital,
            "djzt": status,
            "zs": f"广东省{DIVISION_NAMES[e.division]}{rng.choice(_STREETS)}{rng.randrange(1, 300)}号",
            "jyfw": e.business_scope,
            "djjg": _organ(e.division),
        })
        if "abnormal_listed" in e.cases or "abnormal_removed" in e.cases:
            listed = today - timedelta(days=rng.randrange(30, 900))
            removed = "abnormal_removed" in e.cases
            abnormal_rows.append({
                "tyshxydm": e.uscc,
                "lryy": rng.choice("1234"),
                "lrrq": f"{listed:%Y%m%d}",
                "lrjg": _organ(e.division),
                "ycrq": f"{listed + timedelta(days=rng.randrange(7, 25)):%Y%m%d}" if removed else None,
                "ycjg": _organ(e.division) if removed else None,
                "ycyy": "已补报年度报告并公示" if removed else None,
            })
        if "serious_violation_listed" in e.cases or "serious_violation_removed" in e.cases:
            listed = today - timedelta(days=rng.randrange(400, 1500))
            removed = "serious_violation_removed" in e.cases
            serious_rows.append({
                "tyshxydm": e.uscc,
                "lrsy": "被列入经营异常名录届满3年仍未履行相关义务",
                "lrrq": f"{listed:%Y%m%d}",
                "lrjg": "惠州市市场监督管理局",
                "ycrq": f"{listed + timedelta(days=380):%Y%m%d}" if removed else None,
                "ycjg": "惠州市市场监督管理局" if removed else None,
            })
    yield registrations, registration_rows
    yield abnormal_operations, abnormal_rows
    yield serious_violations, serious_rows
