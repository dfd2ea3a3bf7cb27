"""Demo rows for the court's enforcement system (legacy schema in ``connectors.court``).

Enterprises tagged ``dishonest_debtor`` and persons tagged
``person_dishonest_debtor`` get an active record (published within the last
two years, not expired, not removed); ``*_removed`` ones get a record that was
removed early after performance, or one whose two-year publication expired.
A person's age is his age on the publication date. The population's
``visitors`` (firms registered in another city) get the records of their
cases from a court of the population's city.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from random import Random
from typing import Any

import sqlalchemy as sa

from connectors.court import dishonest_debtors, metadata
from connectors.legacy import epoch_date, to_epoch
from demo.department import DemoDepartment
from demo.population import Enterprise, Person, Population

__all__ = ["DEPARTMENT", "metadata", "rows"]

DEPARTMENT = DemoDepartment(
    module=__name__, source="court", connector="court",
    department="惠州市中级人民法院", database="court",
)

# Division -> (enforcing court, court code used in case numbers).
_COURTS = {
    "441300": ("惠州市中级人民法院", "粤13"),
    "441302": ("惠州市惠城区人民法院", "粤1302"),
    "441303": ("惠州市惠阳区人民法院", "粤1303"),
    "441322": ("博罗县人民法院", "粤1322"),
    "441323": ("惠东县人民法院", "粤1323"),
    "441324": ("龙门县人民法院", "粤1324"),
    "440300": ("深圳市中级人民法院", "粤03"),
    "440303": ("深圳市罗湖区人民法院", "粤0303"),
    "440304": ("深圳市福田区人民法院", "粤0304"),
    "440305": ("深圳市南山区人民法院", "粤0305"),
    "440306": ("深圳市宝安区人民法院", "粤0306"),
    "440307": ("深圳市龙岗区人民法院", "粤0307"),
    "441900": ("东莞市第一人民法院", "粤1971"),
}
# City (first four digits of a division) -> (arbitration award number prefix, commission).
_ARBITRATION = {
    "4413": ("惠仲裁字", "惠州仲裁委员会"),
    "4403": ("深国仲裁字", "深圳国际仲裁院"),
    "4419": ("东仲裁字", "东莞仲裁委员会"),
}
_BEHAVIOURS = (
    "有履行能力而拒不履行生效法律文书确定义务",
    "违反财产报告制度",
    "违反限制消费令",
    "以虚假诉讼、虚假仲裁或者以隐匿、转移财产等方法规避执行",
    "无正当理由拒不履行执行和解协议",
)
_DUTIES = (
    "向申请执行人支付货款人民币{amount}元及逾期付款利息",
    "偿还借款本金人民币{amount}元及利息",
    "支付工程款人民币{amount}元",
    "支付租金人民币{amount}元及违约金",
)


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _record(rng: Random, today: date, division: str, removed_case: bool) -> dict[str, Any]:
    """The case fields shared by organizations and persons."""
    court, code = _COURTS[division]
    if not removed_case:
        published = today - timedelta(days=rng.randrange(10, 700))
        removed, performance = None, rng.choice("12")
    elif rng.random() < 0.5:
        days_ago = rng.randrange(100, 1000)
        published = today - timedelta(days=days_ago)
        removed = published + timedelta(days=rng.randrange(30, min(days_ago, 700)))
        performance = "3"
    else:  # the two-year publication ran out
        published = today - timedelta(days=rng.randrange(800, 1400))
        removed, performance = None, rng.choice("12")
    filed = published - timedelta(days=rng.randrange(60, 400))
    basis_year = filed.year - rng.choice((0, 1))
    if rng.random() < 0.8:
        basis, issuer = f"({basis_year}){code}民初{rng.randrange(100, 9000)}号", court
    else:
        prefix, issuer = _ARBITRATION[division[:4]]
        basis = f"{prefix}〔{basis_year}〕{rng.randrange(10, 900)}号"
    return {
        "ah": f"({filed.year}){code}执{rng.randrange(100, 9000)}号",
        "zxfy": court,
        "zxyjwh": basis,
        "zxyjdw": issuer,
        "flwsqdyw": rng.choice(_DUTIES).format(amount=rng.randrange(20, 5000) * 1000),
        "lxqk": performance,
        "sxxwqx": rng.choice(_BEHAVIOURS),
        "lasj": to_epoch(filed),
        "fbsj": to_epoch(published),
        "jzrq": to_epoch(_years_later(published, 2)),
        "ycrq": None if removed is None else to_epoch(removed),
    }


def _organization(rng: Random, today: date, e: Enterprise, removed_case: bool,
                  division: str | None = None) -> dict[str, Any]:
    """``e``'s record, enforced in ``division`` (default: its own)."""
    return {
        **_record(rng, today, division or e.division, removed_case),
        "bzxrmc": e.name, "bzxrlx": "1", "zjhm": e.uscc,
        "fddbr": e.legal_representative.name, "xb": None, "nl": None,
    }


def _person(rng: Random, today: date, p: Person, removed_case: bool) -> dict[str, Any]:
    row = _record(rng, today, p.id_number[:6], removed_case)
    return {
        **row,
        "bzxrmc": p.name, "bzxrlx": "2", "zjhm": p.id_number, "fddbr": None,
        "xb": "1" if p.sex == "男" else "2", "nl": _age_on(p.birth_date, epoch_date(row["fbsj"])),
    }


def rows(population: Population) -> Iterator[tuple[sa.Table, list[dict[str, Any]]]]:
    """The legacy rows of every table, table by table."""
    rng = population.rng("court")
    today = population.today
    debtor_rows = []
    for e in population.enterprises:
        for case in ("dishonest_debtor", "dishonest_debtor_removed"):
            if case in e.cases:
                debtor_rows.append(_organization(rng, today, e, case.endswith("_removed")))
    for p in population.persons:
        for case in ("person_dishonest_debtor", "person_dishonest_debtor_removed"):
            if case in p.cases:
                debtor_rows.append(_person(rng, today, p, case.endswith("_removed")))
    for e in population.visitors:  # enforced by a court of this city
        for case in ("dishonest_debtor", "dishonest_debtor_removed"):
            if case in e.cases:
                division = rng.choice(population.city.divisions)
                debtor_rows.append(_organization(rng, today, e, case.endswith("_removed"),
                                                 division))
    yield dishonest_debtors, debtor_rows
