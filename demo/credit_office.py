"""Demo rows for the city credit office (legacy schema in ``connectors.credit_office``).

Penalties follow the publicity windows of NDRC Order 36 counted from the
decision date: ``gsjzq`` is the decision date plus the maximum window (none
for minor penalties, 1 year for general, 3 years for serious ones). The
``penalty_repaired`` penalty has an approved repair dated after its 3-month
minimum; some other general and serious penalties have pending or rejected
repairs. Licences, red/black lists and commitments follow the case tags.

Organs are the population's city's: Huizhou's ``_ORGANS``, Shenzhen's
``_SHENZHEN_ORGANS`` (its own names, codes of division 440300 and document
numbers such as 深市监罚〔2026〕101号); the templates below name Huizhou's organs,
which stand for the city's. The population's ``visitors`` (firms registered in
another city) get the penalties of their penalty cases, imposed by the city's
organs, and nothing else.

Financing authorizations (信易贷授权) name one of the two demo ``BANKS``.
The ``financing_*`` showcases name the first bank with all three data
categories: ``financing_authorized`` is valid today and not revoked,
``financing_expired`` ended before today, ``financing_revoked`` is still
within its validity but was revoked before today. Ordinary enterprises with
those cases name the banks in turn (the first such enterprise the second
bank), with a random non-empty subset of the categories.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from itertools import count
from random import Random
from typing import Any

import sqlalchemy as sa

from connectors.credit_office import (
    authorizations,
    commitments,
    credit_lists,
    licences,
    metadata,
    penalties,
    repairs,
)
from demo import environment
from gateway.catalog import load_catalog
from demo.department import DemoClient, DemoDepartment
from demo.population import City, Enterprise, Population, organ_uscc
from core.codes import complete_uscc

__all__ = ["BANKS", "DEPARTMENT", "metadata", "rows"]

CREDIT_OFFICE = "惠州市发展和改革局"


# Client id in the demo client registry -> (USCC, name) of the two demo banks
# that enterprises authorize. Synthetic codes (Huizhou 441300, enterprise 91;
# positions 9-17 also pass the GB 11714 check): 91441300MA4URFQ13W and
# 91441300MA4W7K2H84.
BANKS = {
    "bank-icbc-huizhou": (complete_uscc("91441300MA4URFQ13"), "中国工商银行股份有限公司惠州分行"),
    "bank-hzrcb": (complete_uscc("91441300MA4W7K2H8"), "惠州农村商业银行股份有限公司"),
}

DEPARTMENT = DemoDepartment(
    module=__name__, source="credit", connector="credit_office",
    department="惠州市发展和改革局（市公共信用信息管理系统）", database="credit_office",
    # The banks the authorizations name are clients of the demo registry; their
    # portals run only the persisted operations the demo registers for them.
    clients=tuple(DemoClient(client_id, name, code, "bank", ("FINANCING",), persisted_only=True)
                  for client_id, (code, name) in BANKS.items()),
)

# Organ -> (its USCC, abbreviation used in document numbers).
_ORGANS = {
    "惠州市市场监督管理局": ("11441300202466335X", "惠市监"),
    "惠州市生态环境局": ("11441300529923120U", "惠市环"),
    "惠州市住房和城乡建设局": ("11441300873669467G", "惠市住建"),
    "惠州市应急管理局": ("11441300064808949R", "惠市应急"),
    "惠州市交通运输局": ("114413000972223381", "惠市交"),
    "惠州市人力资源和社会保障局": ("114413007192486564", "惠市人社"),
    "惠州市城市管理和综合执法局": ("114413001263392029", "惠市城管"),
    "惠州市自然资源局": ("11441300782204824D", "惠市自然资源"),
    "惠州市商务局": ("11441300077844834A", "惠市商务"),
    "国家税务总局惠州市税务局": ("11441300288163027A", "惠税"),
    CREDIT_OFFICE: ("114413006810687125", "惠市发改"),
}
# Shenzhen's organ for each of Huizhou's -> (its name, abbreviation in document
# numbers); their USCCs are ``organ_uscc("440300", name)``.
_SHENZHEN_ORGANS = {
    "惠州市市场监督管理局": ("深圳市市场监督管理局", "深市监"),
    "惠州市生态环境局": ("深圳市生态环境局", "深环"),
    "惠州市住房和城乡建设局": ("深圳市住房和建设局", "深建"),
    "惠州市应急管理局": ("深圳市应急管理局", "深应急"),
    "惠州市交通运输局": ("深圳市交通运输局", "深交"),
    "惠州市人力资源和社会保障局": ("深圳市人力资源和社会保障局", "深人社"),
    "惠州市城市管理和综合执法局": ("深圳市城市管理和综合执法局", "深城管"),
    "惠州市自然资源局": ("深圳市规划和自然资源局", "深规划资源"),
    "惠州市商务局": ("深圳市商务局", "深商务"),
    "国家税务总局惠州市税务局": ("国家税务总局深圳市税务局", "深税"),
    CREDIT_OFFICE: ("深圳市发展和改革委员会", "深发改"),
}
# Shenzhen's licence number prefixes where Huizhou's name the city.
_SHENZHEN_LICENCE_PREFIXES = {
    "JY14413": "JY14403", "粤CB752": "粤CB755", "914413": "914403", "粤惠危化经字": "粤深危化经字",
    "粤交运管许可惠字": "粤交运管许可深字", "粤202413": "粤202403", "建字第441300": "建字第440300",
}
# (licence, category code, organ, content, years valid or None, number prefix or None)
_LICENCES = (
    ("食品经营许可证", "01", "惠州市市场监督管理局", "预包装食品销售（含冷藏冷冻食品）；散装食品销售", 5, "JY14413"),
    ("药品经营许可证", "01", "惠州市市场监督管理局", "中成药、化学药制剂、抗生素制剂", 5, "粤CB752"),
    ("排污许可证", "01", "惠州市生态环境局", "排放大气污染物、水污染物", 5, "914413"),
    ("危险化学品经营许可证", "01", "惠州市应急管理局", "汽油、柴油（闭杯闪点≤60℃）（不带储存设施经营）", 3, "粤惠危化经字"),
    ("道路运输经营许可证", "01", "惠州市交通运输局", "道路普通货物运输", 4, "粤交运管许可惠字"),
    ("燃气经营许可证", "02", "惠州市住房和城乡建设局", "瓶装液化石油气供应", 5, "粤202413"),
    ("建筑业企业资质证书", "03", "惠州市住房和城乡建设局", "建筑工程施工总承包三级", 5, "D344"),
    ("建设工程规划许可证", "04", "惠州市自然资源局", "新建厂房及配套设施", None, "建字第441300"),
    ("对外贸易经营者备案登记", "05", "惠州市商务局", "货物进出口；技术进出口", None, "044"),
    ("户外广告设施设置许可", "06", "惠州市城市管理和综合执法局", "设置户外招牌广告一处", 1, None),
)
# (violation type, organ, legal basis, penalty type codes, fine range in 万元 or None)
_PENALTIES = {
    "1": (
        ("未按规定明码标价", "惠州市市场监督管理局", "《明码标价和禁止价格欺诈规定》第二十一条", "01", None),
        ("未按规定设置安全警示标志", "惠州市应急管理局", "《中华人民共和国安全生产法》第九十九条", "01,03", (0.1, 0.3)),
        ("擅自占用城市道路堆放物料", "惠州市城市管理和综合执法局", "《城市道路管理条例》第四十二条", "01", None),
    ),
    "2": (
        ("销售不符合食品安全标准的食品", "惠州市市场监督管理局", "《中华人民共和国食品安全法》第一百二十四条", "03,04", (5, 20)),
        ("超标排放大气污染物", "惠州市生态环境局", "《中华人民共和国大气污染防治法》第九十九条", "03", (10, 100)),
        ("未按规定开展安全生产教育和培训", "惠州市应急管理局", "《中华人民共和国安全生产法》第九十七条", "03", (1, 10)),
        ("道路运输车辆超限运输", "惠州市交通运输局", "《公路安全保护条例》第六十四条", "03", (1, 3)),
    ),
    "3": (
        ("未取得排污许可证排放污染物", "惠州市生态环境局", "《中华人民共和国环境保护法》第六十条", "03,09", (100, 500)),
        ("生产不合格产品情节严重", "惠州市市场监督管理局", "《中华人民共和国产品质量法》第四十九条", "03,04,07", (50, 200)),
        ("对生产安全事故发生负有责任", "惠州市应急管理局", "《中华人民共和国安全生产法》第一百一十四条", "03,11", (100, 300)),
    ),
}
_PERSON_PENALTIES = (
    ("未取得营业执照从事经营活动", "惠州市市场监督管理局", "《无证无照经营查处办法》第十三条", "03,04", (0.5, 1)),
    ("未经批准擅自建设", "惠州市城市管理和综合执法局", "《中华人民共和国城乡规划法》第六十四条", "03", (1, 5)),
)
_PUBLICITY_YEARS = {"1": None, "2": 1, "3": 3}
# (list type, list name, reason, organ, years valid)
_RED_LISTS = (
    ("R", "广东省守合同重信用企业", "连续两年合同信用良好，经公示无异议", "惠州市市场监督管理局", 2),
    ("R", "纳税信用A级纳税人名单", "上一年度纳税信用评价为A级", "国家税务总局惠州市税务局", 1),
    ("R", "{city}诚信示范企业", "经评审认定为诚信示范企业", CREDIT_OFFICE, 3),
)
_BLACK_LISTS = (
    ("B", "拖欠农民工工资失信联合惩戒对象名单", "拒不支付农民工工资，经责令限期支付后逾期仍未支付",
     "惠州市人力资源和社会保障局", 3),
    ("B", "安全生产严重失信主体名单", "发生较大生产安全事故负有责任", "惠州市应急管理局", 3),
    ("B", "重大税收违法失信主体名单", "偷税数额较大且占应纳税额百分之十以上", "国家税务总局惠州市税务局", 3),
)
_COMMITMENTS = (
    ("审批替代型", "申请{licence}实行告知承诺制，承诺符合许可条件"),
    ("主动型", "主动向社会公开信用承诺，承诺依法诚信经营"),
    ("行业自律型", "遵守{city}{industry}行业自律公约"),
)
_COMMITMENT_RATE = 0.2
_OTHER_REPAIR_RATE = 0.4
_OLD_LIST_RATE = 0.04
# The codes authorizations are written with come from the shipped catalog:
# ``sqyt`` of 融资授信 (FINANCING), and ``sjlb`` of every data category it
# knows (tax, social insurance, environment...), in the catalog's order.
_CATALOG = load_catalog()
(FINANCING_PURPOSE,) = _CATALOG.purposes["FINANCING"].authorization_codes
CATEGORY_CODES = tuple(code for category in _CATALOG.categories.values()
                       for code in sorted(category.authorization_codes))
FINANCING_CASES = ("financing_authorized", "financing_expired", "financing_revoked")


def city_organs(city: City) -> dict[str, tuple[str, str, str]]:
    """The organs of ``city``: Huizhou's organ name as the templates use it ->
    (the city's organ, its USCC, abbreviation in document numbers). Huizhou's
    and Shenzhen's are their own; another city's are Huizhou's renamed."""
    if city.name == "惠州":
        return {name: (name, code, short) for name, (code, short) in _ORGANS.items()}
    names = _SHENZHEN_ORGANS if city.name == "深圳" else {
        key: (key.replace("惠州", city.name), city.name[0] + short[1:])
        for key, (_, short) in _ORGANS.items()
    }
    return {key: (name, organ_uscc(city.divisions[0], name), short)
            for key, (name, short) in names.items()}


def _ymd(day: date | None) -> str | None:
    return None if day is None else f"{day:%Y%m%d}"


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _amount(rng: Random, bounds: tuple[float, float] | None) -> Decimal | None:
    if bounds is None:
        return None
    low, high = (round(b * 100) for b in bounds)
    return Decimal(rng.randrange(low, high + 1)) / 100


class _Generator:
    """Accumulates the rows of all five tables for one population."""

    def __init__(self, population: Population) -> None:
        self.rng = population.rng("credit_office")
        self.today = population.today
        self.city = population.city.name
        self.organs = city_organs(population.city)
        self.licence_prefixes = _SHENZHEN_LICENCE_PREFIXES if self.city == "深圳" else {}
        self.serial = count(101)
        self.tables: dict[sa.Table, list[dict[str, Any]]] = {
            licences: [], penalties: [], credit_lists: [], commitments: [], repairs: [],
            authorizations: [],
        }
        # Per financing case, how many ordinary enterprises had it: banks take turns.
        self.granted = {case: count(1) for case in FINANCING_CASES}

    def days_ago(self, low: int, high: int) -> date:
        return self.today - timedelta(days=self.rng.randrange(low, high))

    def document_number(self, organ: str, kind: str, year: int) -> str:
        return f"{self.organs[organ][2]}{kind}〔{year}〕{next(self.serial)}号"

    def licence(self, e: Enterprise) -> None:
        name, category, organ, content, years, prefix = self.rng.choice(_LICENCES)
        prefix = self.licence_prefixes.get(prefix, prefix)
        organ_name, organ_code, _ = self.organs[organ]
        decided = self.days_ago(30, 2500)
        valid_to = None if years is None else _years_later(decided, years) - timedelta(days=1)
        self.tables[licences].append({
            "xdr_mc": e.name, "xdr_dm": e.uscc,
            "xkwsh": self.document_number(organ, "许", decided.year),
            "xklb": category, "xkzsmc": name,
            "xkbh": None if prefix is None else f"{prefix}{self.rng.randrange(10**8):08d}",
            "xknr": content, "xkjdrq": _ymd(decided), "yxqz": _ymd(decided),
            "yxqzhi": _ymd(valid_to),
            "xkjg": organ_name, "xkjgdm": organ_code, "sjly": organ_name,
        })

    def penalty(self, name: str, code: str, severity: str, decided: date,
                template: tuple[str, str, str, str, Any] | None = None) -> str:
        """Add a penalty decided on ``decided``; return its decision number."""
        violation, organ, basis, types, fine = template or self.rng.choice(_PENALTIES[severity])
        organ_name, organ_code, _ = self.organs[organ]
        number = self.document_number(organ, "罚", decided.year)
        years = _PUBLICITY_YEARS[severity]
        confiscated = (0.5, 5) if "04" in types.split(",") else None
        self.tables[penalties].append({
            "xdr_mc": name, "xdr_dm": code, "cfjdsh": number, "wflx": violation,
            "wfss": f"经查，当事人{name}存在{violation}的违法行为。", "cfyj": basis,
            "cflb": types, "fkje": _amount(self.rng, fine),
            "mswfsd": _amount(self.rng, confiscated),
            "cfjdrq": _ymd(decided),
            "gsjzq": None if years is None else _ymd(_years_later(decided, years)),
            "yzcd": severity, "cfjg": organ_name, "cfjgdm": organ_code, "sjly": organ_name,
        })
        return number

    def repair(self, code: str, number: str, applied: date, status: str,
               repaired: date | None = None, kind: str = "行政处罚") -> None:
        self.tables[repairs].append({
            "dm": code, "xfdxlx": kind, "xfdxbh": number, "sqrq": _ymd(applied),
            "xfrq": _ymd(repaired), "xfzt": status, "xfjg": self.organs[CREDIT_OFFICE][0],
        })
        if status != "2":  # the repair application comes with a commitment
            self.commitment(code, "信用修复型", f"承诺已纠正{number}所涉失信行为，不再发生同类违法行为",
                            applied, "1" if status == "1" else "0")

    def commitment(self, code: str, kind: str, matter: str, signed: date, status: str) -> None:
        self.tables[commitments].append({
            "dm": code, "cnlx": kind, "cnsx": matter, "qsrq": _ymd(signed), "lxzt": status,
        })

    def list_entry(self, code: str, template: tuple[str, str, str, str, int],
                   listed: date, removed: date | None = None) -> None:
        kind, name, reason, organ, years = template
        self.tables[credit_lists].append({
            "dm": code, "mdlx": kind, "mdmc": name.format(city=self.city + "市"), "lryy": reason,
            "lrrq": _ymd(listed), "rdjg": self.organs[organ][0],
            "yxqz": _ymd(_years_later(listed, years)), "ycrq": _ymd(removed),
        })

    def enterprise_penalties(self, e: Enterprise) -> None:
        rng, cases = self.rng, e.cases
        if "penalty_minor" in cases:
            self.penalty(e.name, e.uscc, "1", self.days_ago(1, 60))
        if "penalty_general_in_window" in cases:
            decided = self.days_ago(30, 300)
            number = self.penalty(e.name, e.uscc, "2", decided)
            waited = (self.today - decided).days
            if waited > 100 and rng.random() < _OTHER_REPAIR_RATE:
                applied = decided + timedelta(days=rng.randrange(92, waited))
                self.repair(e.uscc, number, applied, "0")
        if "penalty_general_expired" in cases:
            self.penalty(e.name, e.uscc, "2", self.days_ago(400, 700))
        if "penalty_serious_in_window" in cases:
            decided = self.days_ago(400, 900)
            number = self.penalty(e.name, e.uscc, "3", decided)
            if rng.random() < _OTHER_REPAIR_RATE:
                applied = decided + timedelta(days=rng.randrange(366, (self.today - decided).days))
                self.repair(e.uscc, number, applied, "2")
        if "penalty_serious_expired" in cases:
            self.penalty(e.name, e.uscc, "3", self.days_ago(1100, 1500))
        if "penalty_repaired" in cases:
            decided = self.days_ago(120, 300)
            number = self.penalty(e.name, e.uscc, "2", decided)
            # applied after the 3-month minimum (92 days cover any 3 months)
            slack = (self.today - decided).days - 92 - 15
            applied = decided + timedelta(days=92 + rng.randrange(slack))
            repaired = applied + timedelta(days=rng.randrange(3, 15))
            self.repair(e.uscc, number, applied, "1", repaired)

    def enterprise_lists(self, e: Enterprise, showcase: bool) -> None:
        rng = self.rng
        for case, templates in (("red_list", _RED_LISTS), ("black_list", _BLACK_LISTS)):
            if case in e.cases:
                template = rng.choice(templates)
                self.list_entry(e.uscc, template, self.days_ago(30, 365 * template[4] - 30))
        if showcase or e.cases & {"red_list", "black_list"} or rng.random() >= _OLD_LIST_RATE:
            return
        template = rng.choice(_RED_LISTS + _BLACK_LISTS)
        valid_days = 365 * template[4]
        if rng.random() < 0.5:  # expired
            self.list_entry(e.uscc, template, self.days_ago(valid_days + 30, valid_days + 400))
        else:  # removed early
            waited = rng.randrange(200, 900)
            listed = self.today - timedelta(days=waited)
            removed = listed + timedelta(days=rng.randrange(90, waited))
            self.list_entry(e.uscc, template, listed, removed)

    def enterprise_commitments(self, e: Enterprise) -> None:
        rng = self.rng
        if "commitment_breached" in e.cases:
            licence = rng.choice(_LICENCES)[0]
            self.commitment(e.uscc, "审批替代型", _COMMITMENTS[0][1].format(licence=licence),
                            self.days_ago(200, 900), "2")
        if rng.random() < _COMMITMENT_RATE:
            kind, matter = rng.choice(_COMMITMENTS)
            signed = self.days_ago(30, 1000)
            status = "1" if (self.today - signed).days > 365 else "0"
            self.commitment(e.uscc, kind, matter.format(licence=rng.choice(_LICENCES)[0],
                                                         industry=e.industry,
                                                         city=self.city + "市"), signed, status)

    def authorization(self, code: str, bank: str, categories: tuple[str, ...], valid_from: date,
                      valid_to: date, revoked: date | None = None) -> None:
        bank_code, bank_name = BANKS[bank]
        self.tables[authorizations].append({
            "sqbh": f"XYDSQ{valid_from:%Y%m%d}{next(self.serial):06d}", "dm": code,
            "bsqjg_dm": bank_code, "bsqjg_mc": bank_name, "sqyt": FINANCING_PURPOSE,
            "sjlb": ",".join(categories), "qsrq": _ymd(valid_from), "jzrq": _ymd(valid_to),
            "cxrq": _ymd(revoked),
        })

    def enterprise_authorizations(self, e: Enterprise, showcase: bool) -> None:
        rng, banks = self.rng, list(BANKS)
        for case in FINANCING_CASES:
            if case not in e.cases:
                continue
            if showcase:
                bank, categories = banks[0], CATEGORY_CODES
            else:
                bank = banks[next(self.granted[case]) % len(banks)]
                chosen = set(rng.sample(CATEGORY_CODES, rng.randrange(1, len(CATEGORY_CODES) + 1)))
                categories = tuple(c for c in CATEGORY_CODES if c in chosen)
            years = rng.choice((1, 2, 3))
            if case == "financing_expired":
                ended = self.days_ago(5, 700)
                self.authorization(e.uscc, bank, categories,
                                   _years_later(ended + timedelta(days=1), -years), ended)
                continue
            # Granted 10 to 329 days ago for whole years: still valid at least a month.
            granted = self.days_ago(10, 330)
            valid_to = _years_later(granted, years) - timedelta(days=1)
            revoked = None
            if case == "financing_revoked":  # strictly between the grant and today
                revoked = granted + timedelta(days=rng.randrange(1, (self.today - granted).days))
            self.authorization(e.uscc, bank, categories, granted, valid_to, revoked)


def rows(population: Population) -> Iterator[tuple[sa.Table, list[dict[str, Any]]]]:
    """The legacy rows of every table, table by table."""
    g = _Generator(population)
    showcases = {e.uscc for e in population.showcase.values()}
    for e in population.enterprises:
        if "licensed" in e.cases:
            for _ in range(g.rng.randrange(1, 4)):
                g.licence(e)
        g.enterprise_penalties(e)
        g.enterprise_lists(e, e.uscc in showcases)
        g.enterprise_commitments(e)
        g.enterprise_authorizations(e, e.uscc in showcases)
    for p in population.persons:
        if "person_penalty" in p.cases:
            template = g.rng.choice(_PERSON_PENALTIES)
            g.penalty(p.name, p.id_number, "2", g.days_ago(30, 300), template)
    for e in population.visitors:  # firms registered elsewhere: the city's penalties only
        g.enterprise_penalties(e)
    for uscc, number, decided, repaired in environment.repaired_penalties(population):
        g.repair(uscc, number, repaired - timedelta(days=5), "1", repaired, kind="环境行政处罚")
    yield from g.tables.items()
