"""Demo rows for the ecology and environment database (legacy schema in
``connectors.environment``).

About a third of enterprises are rated for the last three years: a share of
the industrial ones, plus every ``environment_black`` enterprise, rated
环保严重失信 in the latest year. ``environment_penalty`` adds penalties (and a
警示 or 不良 latest grade when the enterprise is rated);
``environment_penalty_repaired`` one penalty whose credit repair the credit
office approved (``repaired_penalties``). The rating and
penalizing organ is the population's city's (``ORGANS``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from connectors.environment import metadata, penalties, ratings
from demo.department import DemoDepartment
from demo.population import Population

__all__ = ["DEPARTMENT", "metadata", "rows", "latest_rated_year"]

DEPARTMENT = DemoDepartment(
    module=__name__, source="environment", connector="environment",
    department="惠州市生态环境局", database="environment",
)

INDUSTRIAL = frozenset({"新材料", "石化", "电子科技", "环保科技", "医药", "食品"})
RATED_SHARE = 0.55  # of the industrial enterprises: about a third of all
ORGAN = "惠州市生态环境局"
# City -> (its ecology and environment bureau, abbreviation in decision numbers).
ORGANS = {"惠州": (ORGAN, "惠市环"), "深圳": ("深圳市生态环境局", "深环"),
          "东莞": ("东莞市生态环境局", "东环")}
BRANCHES = {"441300": "仲恺", "441302": "惠城", "441303": "惠阳",
            "441322": "博罗", "441323": "惠东", "441324": "龙门",
            "440300": "深圳", "440303": "罗湖", "440304": "福田", "440305": "南山",
            "440306": "宝安", "440307": "龙岗", "441900": "东莞"}
# (violation, fine range in 万元)
VIOLATIONS = (
    ("超过大气污染物排放标准排放大气污染物", 10, 100),
    ("通过暗管、渗井等逃避监管的方式排放水污染物", 20, 100),
    ("未依法报批建设项目环境影响报告书擅自开工建设", 5, 50),
    ("危险废物贮存不符合国家环境保护标准", 10, 100),
    ("未按照规定安装、使用污染物排放自动监测设备", 2, 20),
)


def repaired_penalties(population: Population) -> list[tuple[str, str, date, date]]:
    """(USCC, decision number, decided, repaired) of the penalty each
    ``environment_penalty_repaired`` enterprise has, with a credit repair
    approved after its 3-month minimum window: written here, and its repair
    by ``demo.credit_office``, from a stream of their own."""
    rng = population.rng("environment-repairs")
    today = population.today
    _, short = ORGANS[population.city.name]
    repaired = []
    for index, e in enumerate(population.enterprises):
        if "environment_penalty_repaired" in e.cases:
            decided = today - timedelta(days=rng.randrange(150, 330))
            on = decided + timedelta(days=92 + rng.randrange((today - decided).days - 92 - 5))
            repaired.append((e.uscc, f"{short}（{BRANCHES[e.division]}）罚〔{decided.year}〕"
                                     f"R{index + 1}号", decided, on))
    return repaired


def latest_rated_year(today: date) -> int:
    """The newest rating year published by ``today`` (results come out by 30 June)."""
    return today.year - 1 if (today.month, today.day) >= (6, 30) else today.year - 2


def rows(population: Population) -> Iterator[tuple[sa.Table, list[dict[str, Any]]]]:
    """The legacy rows of every table, table by table."""
    rng = population.rng("environment")
    today = population.today
    latest = latest_rated_year(today)
    organ, short = ORGANS[population.city.name]
    rating_rows, penalty_rows = [], []
    serial = 0
    for e in population.enterprises:
        black = "environment_black" in e.cases
        penalized = "environment_penalty" in e.cases
        if black or (e.industry in INDUSTRIAL and rng.random() < RATED_SHARE):
            for year in range(latest, latest - 3, -1):
                if black:
                    grade = "5" if year == latest else rng.choice("34")
                elif penalized and year == latest:
                    grade = rng.choice("34")
                else:
                    grade = rng.choices("1234", weights=(20, 60, 15, 5))[0]
                rating_rows.append({"qydm": e.uscc, "pjnd": year, "pjdj": grade, "pjjg": organ})
        if penalized:
            for _ in range(rng.randint(1, 2)):
                decided = today - timedelta(days=rng.randrange(20, 900))
                violation, low, high = rng.choice(VIOLATIONS)
                fine = Decimal(rng.randrange(low * 10, high * 10 + 1)).scaleb(-1)
                serial += 1
                penalty_rows.append({
                    "qydm": e.uscc,
                    "cfwh": f"{short}（{BRANCHES[e.division]}）罚〔{decided.year}〕{serial}号",
                    "wfxw": violation,
                    "cfnr": f"责令改正违法行为，罚款人民币{fine}万元",
                    "fkje": fine,
                    "cfrq": f"{decided:%Y%m%d}",
                    "cfjg": organ,
                })
    for uscc, number, decided, _ in repaired_penalties(population):
        violation, low, high = VIOLATIONS[0]
        penalty_rows.append({
            "qydm": uscc, "cfwh": number, "wfxw": violation,
            "cfnr": f"责令改正违法行为，罚款人民币{low}万元", "fkje": Decimal(low),
            "cfrq": f"{decided:%Y%m%d}", "cfjg": organ,
        })
    yield ratings, rating_rows
    yield penalties, penalty_rows
