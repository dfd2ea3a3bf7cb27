"""Demo rows for the market regulation database (legacy schema in ``connectors.market``).

An abnormal-operations entry is listed on one of the four grounds (``lryy``:
1 no annual report, 2 information not disclosed by the ordered deadline,
3 false disclosure, 4 unreachable at the registered address); a removed one
gives a removal reason that fixes that ground (``REMOVAL_REASONS``). Addresses
and the serious-violation list's organ are the population's city's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from connectors.market import abnormal_operations, metadata, registrations, serious_violations
from demo.department import DemoDepartment
from demo.population import DIVISION_NAMES, Population

__all__ = ["DEPARTMENT", "metadata", "rows"]

DEPARTMENT = DemoDepartment(
    module=__name__, source="market", connector="market",
    department="惠州市市场监督管理局", database="market",
)

_STREETS = {
    "惠州": ("江北文昌一路", "河南岸演达大道", "淡水开城大道", "罗阳镇北门路", "平山华侨城", "龙城街道"),
    "深圳": ("深南大道", "福华三路", "高新南一道", "宝安大道", "龙岗大道", "东门中路"),
    "东莞": ("南城街道鸿福路", "东城街道东纵大道", "松山湖园区工业北路", "长安镇长安中路",
             "虎门镇连升路", "塘厦镇林村社区"),
}
# Listing ground (``lryy``) -> the removal reasons (``ycyy``) that fix it.
REMOVAL_REASONS = {
    "1": ("已补报未报年份的年度报告并公示", "已补报年度报告并公示"),
    "2": ("已履行即时信息公示义务，补充公示相关信息", "已补充公示责令公示的企业信息"),
    "3": ("已更正其公示的虚假信息", "已更正公示信息"),
    "4": ("依法办理住所变更登记", "通过登记的住所可以重新取得联系"),
}


def _organ(division: str) -> str:
    return f"{DIVISION_NAMES[division]}市场监督管理局"


def rows(population: Population) -> Iterator[tuple[sa.Table, list[dict[str, Any]]]]:
    """The legacy rows of every table, table by table."""
    rng = population.rng("market")
    removal_rng = population.rng("market:removal")  # its own stream: the others stay as they were
    today = population.today
    streets = _STREETS.get(population.city.name, _STREETS["惠州"])
    city_organ = _organ(population.city.divisions[0])
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
            "zs": f"广东省{DIVISION_NAMES[e.division]}{rng.choice(streets)}{rng.randrange(1, 300)}号",
            "jyfw": e.business_scope,
            "djjg": _organ(e.division),
        })
        if "abnormal_listed" in e.cases or "abnormal_removed" in e.cases:
            listed = today - timedelta(days=rng.randrange(30, 900))
            removed = "abnormal_removed" in e.cases
            ground = rng.choice("1234")
            abnormal_rows.append({
                "tyshxydm": e.uscc,
                "lryy": ground,
                "lrrq": f"{listed:%Y%m%d}",
                "lrjg": _organ(e.division),
                "ycrq": f"{listed + timedelta(days=rng.randrange(7, 25)):%Y%m%d}" if removed else None,
                "ycjg": _organ(e.division) if removed else None,
                "ycyy": removal_rng.choice(REMOVAL_REASONS[ground]) if removed else None,
            })
        if "serious_violation_listed" in e.cases or "serious_violation_removed" in e.cases:
            listed = today - timedelta(days=rng.randrange(400, 1500))
            removed = "serious_violation_removed" in e.cases
            serious_rows.append({
                "tyshxydm": e.uscc,
                "lrsy": "被列入经营异常名录届满3年仍未履行相关义务",
                "lrrq": f"{listed:%Y%m%d}",
                "lrjg": city_organ,
                "ycrq": f"{listed + timedelta(days=380):%Y%m%d}" if removed else None,
                "ycjg": city_organ if removed else None,
            })
    yield registrations, registration_rows
    yield abnormal_operations, abnormal_rows
    yield serious_violations, serious_rows
