"""Demo rows for the tax bureau database (legacy schema in ``connectors.tax``).

Ratings cover the last three assessment years already published (each April
for the year before) for every enterprise except individual businesses, which
are rated only when a tax case names them. ``tax_a`` and ``tax_d`` set the
latest year's grade (D wins when both are set); ``tax_arrears`` adds
quarterly arrears announcements.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from connectors.tax import arrears, metadata, ratings
from demo.department import DemoDepartment
from demo.population import DIVISION_NAMES, Enterprise, Population

__all__ = ["DEPARTMENT", "metadata", "rows", "published_on", "latest_published_year"]

DEPARTMENT = DemoDepartment(
    module=__name__, source="tax", connector="tax",
    department="国家税务总局惠州市税务局", database="tax",
)

SCORES = {"A": (90, 100), "B": (70, 90), "M": (70, 90), "C": (40, 70), "D": (0, 40)}
TAX_TYPES = ("增值税", "企业所得税", "城市维护建设税", "房产税", "城镇土地使用税", "印花税")


def published_on(year: int) -> date:
    """The day the ratings of assessment ``year`` are published."""
    return date(year + 1, 4, 20)


def latest_published_year(today: date) -> int:
    """The newest assessment year whose ratings are published by ``today``."""
    year = today.year - 1
    return year if published_on(year) <= today else year - 1


def _authority(division: str) -> str:
    return f"国家税务总局{DIVISION_NAMES[division]}税务局"


def _quarter_start(day: date) -> date:
    return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)


def _latest_grade(e: Enterprise) -> str | None:
    if "tax_d" in e.cases:
        return "D"
    return "A" if "tax_a" in e.cases else None


def rows(population: Population) -> Iterator[tuple[sa.Table, list[dict[str, Any]]]]:
    """The legacy rows of every table, table by table."""
    rng = population.rng("tax")
    today = population.today
    latest = latest_published_year(today)
    rating_rows, arrear_rows = [], []
    for e in population.enterprises:
        if e.entity_type != "9100" or _latest_grade(e):
            for year in range(latest, latest - 3, -1):
                grade = (year == latest and _latest_grade(e)) or rng.choices(
                    "BMC", weights=(75, 10, 15))[0]
                low, high = SCORES[grade]
                score = Decimal(rng.randrange(low * 10, high * 10)).scaleb(-1)
                rating_rows.append({
                    "NSRSBH": e.uscc,
                    "PJND": year,
                    "XYJB": grade,
                    "PF": None if grade == "D" and rng.random() < 0.5 else score,
                    "FBRQ": published_on(year).isoformat(),
                })
        if "tax_arrears" in e.cases:
            for _ in range(rng.randint(1, 2)):
                quarter = _quarter_start(today - timedelta(days=rng.randrange(30, 700)))
                arrear_rows.append({
                    "NSRSBH": e.uscc,
                    "SZ": rng.choice(TAX_TYPES),
                    "QSJE": Decimal(rng.randrange(500_000, 300_000_000)).scaleb(-2),
                    "SKSSQZ": (quarter - timedelta(days=1)).isoformat(),
                    "GGRQ": (quarter + timedelta(days=9)).isoformat(),
                    "ZGSWJG": _authority(e.division),
                })
    yield ratings, rating_rows
    yield arrears, arrear_rows
