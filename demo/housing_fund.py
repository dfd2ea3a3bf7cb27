"""Demo rows for the housing provident fund database (legacy schema in
``connectors.housing_fund``).

An employer contributes for part of the staff it insures: the monthly
contributors are a share (40-100%, fixed per employer) of the insured
headcount the social insurance demo gives it for the same month
(``demo.hrss``), so they never exceed it; an employer without social
insurance (most individual businesses) has no housing fund account. Of the
insured employers, ``ACCOUNT_SHARE`` have an account (companies;
``INDIVIDUAL_ACCOUNT_SHARE`` of individual businesses and cooperatives),
and every showcase and ``housing_fund_arrears`` enterprise does. Each month
of the last 12 full months before ``today`` is one row; the contribution per
head is a base wage (1,900-7,000 yuan) times the employer's rate (5-12%,
paid by both the employer and the employee). ``housing_fund_arrears`` leaves
the most recent 2-4 months partly unpaid. ``SUCCESSOR_SHARE`` of the
accounts were closed (销户) during the year and their months continue on a
successor account of the same unit.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from connectors import hrss as hrss_connector
from connectors.housing_fund import contributions, metadata, units
from demo import hrss
from demo.department import DemoDepartment
from demo.population import Population

__all__ = ["DEPARTMENT", "metadata", "rows", "insured_headcounts"]

DEPARTMENT = DemoDepartment(
    module=__name__, source="housing-fund", connector="housing_fund",
    department="惠州市住房公积金管理中心", database="housing_fund",
    cases={"housing_fund_arrears": 0.03},
)

ACCOUNT_SHARE = 0.85  # of the insured companies
INDIVIDUAL_ACCOUNT_SHARE = 0.15  # of the insured individual businesses and cooperatives
SUCCESSOR_SHARE = 0.03  # of the accounts: closed during the year, continued on a new one
RATES = (5, 6, 8, 10, 12)  # per cent of the base wage, from the employer and the employee each


def insured_headcounts(population: Population) -> dict[str, dict[str, int]]:
    """USCC -> month (``YYYYMM``) -> insured headcount, from the social
    insurance demo rows (``demo.hrss``)."""
    found: dict[str, dict[str, int]] = {}
    for table, table_rows in hrss.rows(population):
        if table is hrss_connector.contributions:
            for row in table_rows:
                found.setdefault(row["dwbh"], {})[row["jfny"]] = row["cbrs"]
    return found


def rows(population: Population) -> Iterator[tuple[sa.Table, list[dict[str, Any]]]]:
    """The legacy rows of every table, table by table."""
    rng = population.rng("housing-fund")
    months = hrss.full_months(population.today)  # newest first
    insured = insured_headcounts(population)
    showcases = {e.uscc for e in population.showcase.values()}
    unit_rows, contribution_rows = [], []
    serial = 0
    for e in population.enterprises:
        in_arrears = "housing_fund_arrears" in e.cases
        share = ACCOUNT_SHARE if e.entity_type not in ("9100", "9500") else INDIVIDUAL_ACCOUNT_SHARE
        covered = rng.random() < share
        headcounts = insured.get(e.uscc)
        if not (in_arrears or (headcounts and (covered or e.uscc in showcases))):
            continue
        if not headcounts:  # in arrears without social insurance: a small employer
            staff = rng.randint(1, 5)
            headcounts = {month: staff for month in months}
        coverage = rng.randrange(40, 101) / 100
        per_head = rng.randrange(1900, 7001) * rng.choice(RATES) * 2  # fen: base yuan x rate% x 2
        unpaid_months = rng.randint(2, 4) if in_arrears else 0
        # The account's months; a successor account takes over from month ``switch`` on.
        switch = rng.randrange(1, len(months) - 1) if rng.random() < SUCCESSOR_SHARE else None
        accounts = []
        for closed in ((True, False) if switch is not None else (False,)):
            serial += 1
            account = f"{e.division}{serial:06d}"
            opened = e.established_on + timedelta(days=rng.randrange(15, 61))
            if switch is not None and not closed:  # opened on its first month
                first = months[switch - 1]
                opened = date(int(first[:4]), int(first[4:]), 1)
            unit_rows.append({
                "dwzh": account, "dwmc": e.name, "tyshxydm": e.uscc,
                "khrq": f"{opened:%Y%m%d}", "dwzhzt": "9" if closed else "1",
            })
            accounts.append(account)
        for index, month in enumerate(months):
            account = accounts[0] if switch is None or index >= switch else accounts[-1]
            insured_now = headcounts.get(month, 1)
            contributors = min(insured_now, max(1, round(insured_now * coverage)))
            due = contributors * per_head
            paid = due if index >= unpaid_months else due * rng.choice((0, 3, 5)) // 10
            contribution_rows.append({
                "dwzh": account, "jcny": month, "jcrs": contributors,
                "sjje": _yuan(paid), "qjje": _yuan(due - paid),
            })
    yield units, unit_rows
    yield contributions, contribution_rows


def _yuan(fen: int) -> Decimal:
    return Decimal(fen).scaleb(-2)
