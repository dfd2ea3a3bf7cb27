"""Demo rows for the utilities billing database (legacy schema in
``connectors.utilities``).

Every operating enterprise (registration status 1 in the market regulation
demo, ``demo.market``) has an electricity account at its registered address,
and a large one (100 insured or more) sometimes a second (its plant);
``WATER_SHARE`` of them a water account (every enterprise of a water-heavy
industry), and gas those whose trade needs it (``GAS_SHARE``: every
restaurant and food maker, half the chemical and pharmaceutical firms, few
others). Enterprises no longer operating have no accounts, unless one of
the cases below needs them. Each account has a bill for each of the last 12
full months before ``today``; usage follows the enterprise's size (its
average insured headcount in ``demo.hrss``, or 1-4 persons) and trade
(``INTENSITY``), with more electricity in summer; prices are those of
non-residential users (``PRICES``, per account). A bill is due on a fixed
day of the next month (``DUE_DAY``) and paid up to 11 days before it; one
whose payment day is still ahead of ``today`` is unpaid (not yet late).

``utilities_late`` has 3-5 bills paid 5-60 days after their due date (unpaid
when that is after ``today``) and its newest past-due electricity bill
unpaid or partly paid; ``electricity_declining`` uses 5-8% less electricity
each month (no summer peak): its newest month is about half its oldest. The
gas supplier's data came from the old system: its unpaid bills have ``JFRQ``
``0``, the others ``NULL``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from connectors import hrss as hrss_connector
from connectors import market as market_connector
from connectors.utilities import accounts, bills, metadata, suppliers
from demo import hrss, market
from demo.department import DemoDepartment
from demo.population import DIVISION_NAMES, Enterprise, Population

__all__ = ["DEPARTMENT", "metadata", "rows"]

DEPARTMENT = DemoDepartment(
    module=__name__, source="utilities", connector="utilities",
    department="惠州市公用事业缴费信息中心", database="utilities",
    cases={"utilities_late": 0.04, "electricity_declining": 0.03},
)

ELECTRICITY, WATER, GAS = "DF", "SF", "RQ"
# Industry -> per head and month: kWh of electricity, m³ of water, m³ of gas.
INTENSITY = {
    "电子科技": (900, 4, 5), "新材料": (1500, 8, 40), "石化": (2500, 15, 80),
    "建筑工程": (300, 3, 5), "物流": (250, 2, 5), "食品": (800, 12, 40),
    "贸易": (150, 2, 5), "餐饮管理": (500, 8, 60), "环保科技": (600, 10, 5), "医药": (700, 6, 20),
}
# The least a month's bill of an account shows (a small shop, an office).
MINIMUM_USAGE = {ELECTRICITY: 150, WATER: 5, GAS: 30}
WATER_SHARE = 0.85  # of the enterprises of the other industries
GAS_SHARE = {"餐饮管理": 1.0, "食品": 1.0, "石化": 0.5, "新材料": 0.5, "医药": 0.5}
OTHER_GAS_SHARE = 0.05
SECOND_ELECTRICITY_SHARE = 0.4  # of the enterprises insuring 100 or more
# Yuan per kWh or m³ (non-residential), drawn per account from these ranges.
PRICES = {ELECTRICITY: (0.62, 0.85), WATER: (3.60, 4.60), GAS: (3.90, 4.80)}
# Day of the month after the billing month by which a bill is due.
DUE_DAY = {ELECTRICITY: 15, GAS: 20, WATER: 25}


def suppliers_of(population: Population) -> dict[str, tuple[str, str]]:
    """Supplier code -> (name, utility): one power grid bureau and one gas
    company for the city, one water company per division."""
    city = population.city.name
    found = {"GD01": (f"广东电网有限责任公司{city}供电局", ELECTRICITY),
             "RQ01": (f"{city}市燃气有限公司", GAS)}
    for division in population.city.divisions:
        found[f"SW{division}"] = (f"{DIVISION_NAMES[division]}供水有限公司", WATER)
    return found


def _supplier(utility: str, division: str) -> str:
    """The code of the supplier of ``utility`` in ``division``."""
    return {ELECTRICITY: "GD01", GAS: "RQ01"}.get(utility, f"SW{division}")


def _next_month(month: str) -> tuple[int, int]:
    year, number = int(month[:4]), int(month[4:])
    return (year, number + 1) if number < 12 else (year + 1, 1)


def _registrations(population: Population) -> dict[str, dict[str, Any]]:
    """USCC -> its registration row in the market regulation demo."""
    for table, table_rows in market.rows(population):
        if table is market_connector.registrations:
            return {row["tyshxydm"]: row for row in table_rows}
    return {}


def _average_insured(population: Population) -> dict[str, float]:
    """USCC -> its average insured headcount in the social insurance demo."""
    months: dict[str, list[int]] = {}
    for table, table_rows in hrss.rows(population):
        if table is hrss_connector.contributions:
            for row in table_rows:
                months.setdefault(row["dwbh"], []).append(row["cbrs"])
    return {uscc: sum(counts) / len(counts) for uscc, counts in months.items()}


class _Generator:
    def __init__(self, population: Population) -> None:
        self.today = population.today
        self.rng = population.rng("utilities")
        self.months = hrss.full_months(population.today)  # newest first
        self.serials: dict[str, int] = {}
        self.account_rows: list[dict[str, Any]] = []
        self.bill_rows: list[dict[str, Any]] = []

    def account_number(self, supplier: str, utility: str, division: str) -> str:
        serial = self.serials[supplier] = self.serials.get(supplier, 0) + 1
        if utility == ELECTRICITY:
            return f"03{division[4:]}{serial:09d}"
        return f"RQ{serial:08d}" if utility == GAS else f"{serial:08d}"

    def enterprise(self, e: Enterprise, registration: dict[str, Any], staff: float) -> None:
        rng = self.rng
        per_head = INTENSITY[e.industry]
        wanted = [(ELECTRICITY, 1.0, "")]
        if staff >= 100 and rng.random() < SECOND_ELECTRICITY_SHARE:
            wanted.append((ELECTRICITY, rng.uniform(0.3, 0.6), "（二期厂房）"))
        if per_head[1] >= 8 or rng.random() < WATER_SHARE:
            wanted.append((WATER, 1.0, ""))
        if rng.random() < GAS_SHARE.get(e.industry, OTHER_GAS_SHARE):
            wanted.append((GAS, 1.0, ""))
        enterprise_bills = []
        for utility, share, site in wanted:
            supplier = _supplier(utility, e.division)
            number = self.account_number(supplier, utility, e.division)
            self.account_rows.append({
                "GYSDM": supplier, "HH": number, "TYSHXYDM": e.uscc, "HM": e.name,
                "YWLX": utility, "YDDZ": (registration.get("zs") or "") + site,
            })
            intensity = per_head[(ELECTRICITY, WATER, GAS).index(utility)]
            base = max(MINIMUM_USAGE[utility], staff * intensity * rng.uniform(0.7, 1.3)) * share
            price = rng.uniform(*PRICES[utility])
            declining = utility == ELECTRICITY and "electricity_declining" in e.cases
            decline = rng.uniform(0.05, 0.08)
            for index, month in enumerate(self.months):
                if declining:  # month over month, oldest (index 11) first
                    factor = (1 - decline) ** (len(self.months) - 1 - index) * rng.uniform(0.99, 1.01)
                else:
                    factor = _season(utility, int(month[4:])) * rng.uniform(0.92, 1.08)
                usage = base * factor
                usage = round(usage, 1) if utility == GAS else round(usage)
                due_year, due_month = _next_month(month)
                bill = {
                    "GYSDM": supplier, "HH": number, "ZDNY": month,
                    "YL": Decimal(str(usage)).quantize(Decimal("0.01")),
                    "YJJE": round(float(usage) * price * 100),
                    "due": date(due_year, due_month, DUE_DAY[utility]),
                }
                self.pay(bill, bill["due"] - timedelta(days=rng.randrange(0, 12)))
                enterprise_bills.append(bill)
        if "utilities_late" in e.cases:
            self.make_late(enterprise_bills)
        for bill in enterprise_bills:
            due = bill.pop("due")
            self.bill_rows.append({**bill, "JFQX": _ymd(due)})

    def pay(self, bill: dict[str, Any], on: date, partly: int = 0) -> None:
        """Settle ``bill`` on ``on``; if that is after today, it is unpaid
        (``partly`` tenths of it paid so far)."""
        if on <= self.today:
            bill["JFRQ"], bill["SJJE"] = _ymd(on), bill["YJJE"]
        else:
            bill["JFRQ"] = 0 if bill["GYSDM"] == "RQ01" else None
            bill["SJJE"] = bill["YJJE"] * partly // 10

    def make_late(self, enterprise_bills: list[dict[str, Any]]) -> None:
        rng = self.rng
        past_due = [b for b in enterprise_bills if b["due"] < self.today - timedelta(days=5)]
        electricity = [b for b in past_due if b["HH"].startswith("03")]
        unpaid = max(electricity, key=lambda b: b["due"])
        self.pay(unpaid, date.max, partly=rng.choice((0, 0, 4)))
        others = [b for b in past_due if b is not unpaid]
        for bill in rng.sample(others, min(len(others), rng.randint(3, 5))):
            self.pay(bill, bill["due"] + timedelta(days=rng.randrange(5, 61)))


def _season(utility: str, month: int) -> float:
    """How much more than usual an account uses in ``month`` (Huizhou's summers are hot)."""
    if utility == ELECTRICITY:
        return 1.25 if 6 <= month <= 9 else 0.9 if month in (12, 1, 2) else 1.0
    if utility == GAS:
        return 1.15 if month in (12, 1, 2) else 1.0
    return 1.1 if 6 <= month <= 9 else 1.0


def _ymd(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def rows(population: Population) -> Iterator[tuple[sa.Table, list[dict[str, Any]]]]:
    """The legacy rows of every table, table by table."""
    g = _Generator(population)
    registrations = _registrations(population)
    insured = _average_insured(population)
    staff_rng = population.rng("utilities:staff")
    for e in population.enterprises:
        registration = registrations.get(e.uscc, {})
        operating = registration.get("djzt") == "1"
        needed = e.cases & {"utilities_late", "electricity_declining"}
        staff = insured.get(e.uscc) or staff_rng.randint(1, 4)
        if operating or needed:
            g.enterprise(e, registration, staff)
    yield suppliers, [{"GYSDM": code, "GYSMC": name}
                      for code, (name, _) in suppliers_of(population).items()]
    yield accounts, g.account_rows
    yield bills, g.bill_rows
