"""Demo rows for the social insurance database (legacy schema in ``connectors.hrss``).

Every enterprise except individual businesses (and any enterprise with
``social_insurance_arrears``) has the last 12 full months before ``today``;
``social_insurance_arrears`` leaves the most recent 2-4 months partly unpaid.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import sqlalchemy as sa

from connectors.hrss import contributions, metadata
from demo.department import DemoDepartment
from demo.population import Population

__all__ = ["DEPARTMENT", "metadata", "rows", "full_months"]

DEPARTMENT = DemoDepartment(
    module=__name__, source="hrss", connector="hrss",
    department="惠州市人力资源和社会保障局", database="hrss",
)


def full_months(today: date, count: int = 12) -> list[str]:
    """The ``count`` full months before ``today``'s month, newest first, as ``YYYYMM``."""
    months = []
    year, month = today.year, today.month
    for _ in range(count):
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        months.append(f"{year}{month:02d}")
    return months


def rows(population: Population) -> Iterator[tuple[sa.Table, list[dict[str, Any]]]]:
    """The legacy rows of every table, table by table."""
    rng = population.rng("hrss")
    months = full_months(population.today)
    contribution_rows = []
    for e in population.enterprises:
        in_arrears = "social_insurance_arrears" in e.cases
        if e.entity_type == "9100" and not in_arrears:
            continue
        staff = rng.randint(2, 30) + min(e.registered_capital // 50, 300)
        per_head = rng.randrange(135_000, 360_000)  # fen a month, employer and employee shares
        unpaid_months = rng.randint(2, 4) if in_arrears else 0
        for index, month in enumerate(months):
            headcount = max(1, staff + rng.randint(-2, 2))
            due = headcount * per_head
            paid = due if index >= unpaid_months else due * rng.choice((0, 3, 5)) // 10
            contribution_rows.append({
                "dwbh": e.uscc, "jfny": month, "cbrs": headcount, "sjje": paid, "qjje": due - paid,
            })
    yield contributions, contribution_rows
