"""The synthetic population every demo department describes.

Deterministic: the same ``seed``, ``size``, ``persons`` and ``today`` give the
same enterprises, persons and case assignments. Each enterprise carries the
set of ``cases`` the departments' generators turn into records; the first
enterprises are *showcases*, one per case in ``CASES`` (plus a clean one),
then one per case a demo department declares (``DemoDepartment.cases``, in
the order of ``demo.department.discover_departments``), so every kind of
record exists whatever the size; persons likewise (``PERSON_CASES``, then
``DemoDepartment.person_cases``). Dates are relative to ``today`` so
publicity windows stay meaningful whenever the data is made.

A department's cases leave the rest of the data as it was: the rates of
``CASE_RATES`` and ``PERSON_CASE_RATES`` are drawn from the population's
stream for every subject past the listed showcases (the departments'
showcases too), a department's rates from a stream of each case's own. So
adding a department with cases changes only the subjects that become its
showcases and the cases drawn for it.

Every USCC passes both checks: its 18th character (GB 32100) and the
organization code in positions 9-17 (GB 11714). Organs' codes come from
``organ_uscc``.

A population may also hold ``visitors``: enterprises registered in another
city about which this city's organs and courts hold records (``with_visitors``;
Shenzhen's data holds penalties and dishonest-debtor records about Huizhou
firms, so that Huizhou's gateway has lists to merge).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from gateway.clock import china_today
from core.divisions import NAMES
from core.codes import USCC_ALPHABET, compose_uscc, resident_id_check_digit
from demo.department import DemoDepartment, discover_departments

HUIZHOU_DIVISIONS = ("441300", "441302", "441303", "441322", "441323", "441324")
DIVISION_NAMES = NAMES  # the division names the demo's addresses and organs use


@dataclass(frozen=True, slots=True)
class City:
    """A city whose synthetic population the demo can build."""

    name: str
    divisions: tuple[str, ...]
    seed: int


CITIES = {
    "huizhou": City("惠州", HUIZHOU_DIVISIONS, 441300),
    "shenzhen": City("深圳", ("440300", "440303", "440304", "440305", "440306", "440307"), 440300),
    "dongguan": City("东莞", ("441900",), 441900),
}

# Every kind of case the data set must contain, beside the departments' own
# (``DemoDepartment.cases``). Departments read these tags.
CASES = (
    "clean",
    "penalty_minor",
    "penalty_general_in_window",
    "penalty_general_expired",
    "penalty_serious_in_window",
    "penalty_serious_expired",
    "penalty_repaired",
    "dishonest_debtor",
    "dishonest_debtor_removed",
    "abnormal_listed",
    "abnormal_removed",
    "serious_violation_listed",
    "serious_violation_removed",
    "tax_a",
    "tax_d",
    "tax_arrears",
    "social_insurance_arrears",
    "environment_black",
    "environment_penalty",
    "environment_penalty_repaired",  # ... one with an approved credit repair (credit office)
    "red_list",
    "black_list",
    "commitment_breached",
    "licensed",
    "financing_authorized",  # credit office: a valid 信易贷 authorization for a bank
    "financing_expired",     # ... one whose validity has ended
    "financing_revoked",     # ... one the enterprise revoked
)

# Probability that an ordinary (non-showcase) enterprise has each case.
CASE_RATES = {
    "penalty_minor": 0.06,
    "penalty_general_in_window": 0.05,
    "penalty_general_expired": 0.05,
    "penalty_serious_in_window": 0.02,
    "penalty_serious_expired": 0.02,
    "penalty_repaired": 0.02,
    "dishonest_debtor": 0.03,
    "dishonest_debtor_removed": 0.02,
    "abnormal_listed": 0.05,
    "abnormal_removed": 0.04,
    "serious_violation_listed": 0.01,
    "serious_violation_removed": 0.01,
    "tax_a": 0.25,
    "tax_d": 0.03,
    "tax_arrears": 0.03,
    "social_insurance_arrears": 0.04,
    "environment_black": 0.01,
    "environment_penalty": 0.03,
    "environment_penalty_repaired": 0.01,
    "red_list": 0.03,
    "black_list": 0.02,
    "commitment_breached": 0.02,
    "licensed": 0.5,
    "financing_authorized": 0.04,
    "financing_expired": 0.04,
    "financing_revoked": 0.04,
}

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程苏魏吕丁任沈姚卢钟"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍建国志红文辉鹏飞晓东海燕宇浩俊"
_TRADE_NAMES = "鸿信达恒泰丰华润盛兴隆通宏远东升创新博源佳美嘉禾汇力安康瑞祥永德金科天成海腾中联开元"
_INDUSTRIES = (
    ("电子科技", "电子产品的研发、生产和销售"),
    ("新材料", "新材料技术研发；塑料制品制造"),
    ("石化", "石油化工产品的生产和销售（不含危险化学品）"),
    ("建筑工程", "房屋建筑工程施工；市政工程施工"),
    ("物流", "普通货运；仓储服务（不含危险品）"),
    ("食品", "食品生产；食品经营"),
    ("贸易", "国内贸易；货物进出口"),
    ("餐饮管理", "餐饮服务；餐饮管理"),
    ("环保科技", "环保技术开发；污水处理"),
    ("医药", "药品批发；医疗器械经营"),
)
_ENTITY_TYPES = ("1100", "1100", "1100", "1100", "1200", "4100", "4500", "5100", "9100", "9500")


@dataclass(frozen=True, slots=True)
class Person:
    id_number: str
    name: str
    sex: str
    birth_date: date
    cases: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Enterprise:
    uscc: str
    name: str
    division: str
    entity_type: str
    legal_representative: Person
    established_on: date
    registered_capital: int
    industry: str
    business_scope: str
    cases: frozenset[str]


@dataclass(slots=True)
class Population:
    seed: int
    today: date
    enterprises: list[Enterprise]
    persons: list[Person]
    showcase: dict[str, Enterprise] = field(default_factory=dict)
    person_showcase: dict[str, Person] = field(default_factory=dict)
    city: City = CITIES["huizhou"]
    # Enterprises of other cities with records here, tagged with those records' cases.
    visitors: list[Enterprise] = field(default_factory=list)

    def rng(self, department: str) -> random.Random:
        """A random generator of its own for one department's records."""
        return random.Random(f"{self.seed}:{department}")


def make_uscc(rng: random.Random, division: str, entity_type: str) -> str:
    """A valid USCC registered by market regulation (authority 9) in ``division``,
    its organization code (positions 9-17) valid too."""
    category = {"9100": "2", "9500": "3"}.get(entity_type, "1")
    # Nine draws, as when position 17 was drawn too: the random stream, and so
    # every other field of the data set, stays what it was.
    body = "".join(rng.choice(USCC_ALPHABET) for _ in range(9))[:8]
    return compose_uscc("9" + category + division, body)


def organ_uscc(division: str, name: str) -> str:
    """The synthetic USCC of the government organ ``name`` of ``division``
    (11: 机构编制, 机关), the same for the same name: a digit body and both
    check characters."""
    rng = random.Random(f"organ:{division}:{name}")
    return compose_uscc("11" + division, "".join(rng.choice("0123456789") for _ in range(8)))


def make_resident_id(rng: random.Random, birth: date, male: bool,
                     regions: tuple[str, ...] = HUIZHOU_DIVISIONS[1:]) -> str:
    region = rng.choice(regions)
    sequence = rng.randrange(0, 999)
    if (sequence % 2 == 1) != male:
        sequence = (sequence + 1) % 1000
    first17 = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return first17 + resident_id_check_digit(first17)


PERSON_CASES = ("person_dishonest_debtor", "person_dishonest_debtor_removed", "person_penalty")
PERSON_CASE_RATES = {
    "person_dishonest_debtor": 0.05,
    "person_dishonest_debtor_removed": 0.03,
    "person_penalty": 0.04,
}


@dataclass(frozen=True)
class CaseDraw:
    """How the subjects of one kind (enterprises or persons) get their cases:
    the first ``len(showcased)`` are showcases, one case each (``"clean"``:
    none); the others draw ``listed_rates`` from the population's stream and
    ``own_rates`` (the departments' cases) from one stream per case. Made
    afresh for each population: ``cases`` advances the streams, and must be
    called for the subjects in order."""

    listed: tuple[str, ...]
    listed_rates: Mapping[str, float]
    own_rates: Mapping[str, float]
    own_streams: Mapping[str, random.Random]

    @classmethod
    def of(cls, seed: int, kind: str, listed: tuple[str, ...], listed_rates: Mapping[str, float],
           own_rates: Mapping[str, float]) -> CaseDraw:
        clashes = set(listed) & set(own_rates)
        if clashes:
            raise ValueError(
                f"demo department cases {sorted(clashes)} are listed in demo.population")
        streams = {case: random.Random(f"{seed}:{kind}-case:{case}") for case in own_rates}
        return cls(listed, listed_rates, own_rates, streams)

    @property
    def showcased(self) -> tuple[str, ...]:
        return self.listed + tuple(self.own_rates)

    def cases(self, index: int, rng: random.Random) -> frozenset[str]:
        """The cases of the ``index``-th subject; ``rng`` is the population's stream."""
        if index < len(self.listed):
            return frozenset({self.listed[index]}) - {"clean"}
        drawn = {c for c, p in self.listed_rates.items() if rng.random() < p}
        drawn |= {c for c, p in self.own_rates.items() if self.own_streams[c].random() < p}
        if index < len(self.showcased):
            return frozenset({self.showcased[index]})
        return frozenset(drawn)


def department_cases(
    departments: Sequence[DemoDepartment],
) -> tuple[dict[str, float], dict[str, float]]:
    """The enterprise and person cases ``departments`` declare, with their rates,
    in the departments' order; a case declared twice is a ``ValueError``."""
    enterprise_cases: dict[str, float] = {}
    person_cases: dict[str, float] = {}
    for department in departments:
        for declared, merged in ((department.cases, enterprise_cases),
                                 (department.person_cases, person_cases)):
            twice = set(declared) & set(merged)
            if twice:
                raise ValueError(f"demo cases {sorted(twice)} are declared by two departments")
            merged.update(declared)
    return enterprise_cases, person_cases


def build_population(size: int = 2000, persons: int = 500, seed: int | None = None,
                     today: date | None = None, city: str = "huizhou",
                     departments: Sequence[DemoDepartment] | None = None) -> Population:
    """The deterministic population of ``size`` enterprises and ``persons``
    persons of ``city`` (a key of ``CITIES``; its seed unless ``seed`` is given),
    holding the cases of ``departments`` (default: every demo department)."""
    home = CITIES[city]
    seed = home.seed if seed is None else seed
    own_cases, own_person_cases = department_cases(
        discover_departments() if departments is None else departments)
    enterprise_draw = CaseDraw.of(seed, "enterprise", CASES, CASE_RATES, own_cases)
    person_draw = CaseDraw.of(seed, "person", PERSON_CASES, PERSON_CASE_RATES, own_person_cases)
    showcased, person_showcased = enterprise_draw.showcased, person_draw.showcased
    if size < len(showcased) or persons < len(person_showcased) + 1:
        raise ValueError(
            f"the demo needs at least {len(showcased)} enterprises and "
            f"{len(person_showcased) + 1} persons to hold every kind of case"
        )
    today = today or china_today()
    rng = random.Random(seed)
    people: list[Person] = []
    seen_ids: set[str] = set()
    for i in range(persons):
        cases = person_draw.cases(i, rng)
        while True:
            male = rng.random() < 0.6
            birth = today - timedelta(days=rng.randrange(22 * 365, 70 * 365))
            id_number = make_resident_id(rng, birth, male, home.divisions[1:] or home.divisions)
            if id_number not in seen_ids:
                seen_ids.add(id_number)
                break
        name = rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2))))
        people.append(Person(id_number, name, "男" if male else "女", birth, cases))

    enterprises: list[Enterprise] = []
    seen: set[str] = set()
    names: set[str] = set()
    for i in range(size):
        cases = enterprise_draw.cases(i, rng)
        division = rng.choice(home.divisions)
        entity_type = rng.choice(_ENTITY_TYPES)
        if i < len(showcased):
            entity_type = "1100"  # showcases are companies, which every department records
        while True:
            uscc = make_uscc(rng, division, entity_type)
            if uscc not in seen:
                seen.add(uscc)
                break
        industry, scope = rng.choice(_INDUSTRIES)
        suffix = {"1200": "股份有限公司", "4100": "（有限合伙）", "4500": "经营部",
                  "9100": "商行", "9500": "专业合作社"}.get(entity_type, "有限公司")
        trade = "".join(rng.choice(_TRADE_NAMES) for _ in range(2))
        while (name := f"{DIVISION_NAMES[division][:3]}{trade}{industry}{suffix}") in names:
            trade += rng.choice(_TRADE_NAMES)
        names.add(name)
        enterprises.append(Enterprise(
            uscc=uscc,
            name=name,
            division=division,
            entity_type=entity_type,
            legal_representative=people[rng.randrange(len(people))],
            established_on=today - timedelta(days=rng.randrange(400, 30 * 365)),
            registered_capital=rng.choice((10, 50, 100, 200, 500, 1000, 3000, 10000)),
            industry=industry,
            business_scope=scope,
            cases=cases,
        ))
    population = Population(seed, today, enterprises, people, city=home)
    population.showcase = {case: enterprises[i] for i, case in enumerate(showcased)}
    population.person_showcase = {case: people[i] for i, case in enumerate(person_showcased)}
    return population


# A city's organs and courts hold records about every VISITOR_EVERY-th
# ordinary enterprise of a neighbouring city, and about two of its showcases.
VISITOR_EVERY = 8
# Cases a visitor's records may have (the records a city keeps about firms
# registered elsewhere: its penalties and its courts' enforcement cases).
VISITOR_CASES = (
    "penalty_minor", "penalty_general_in_window", "penalty_general_expired",
    "penalty_serious_in_window", "dishonest_debtor", "dishonest_debtor_removed",
)
# Showcases of the neighbouring city given the same case here as well: their
# lists are merged across the two cities in every data set, whatever its size.
VISITING_SHOWCASES = ("penalty_general_in_window", "dishonest_debtor")


def with_visitors(population: Population, neighbour: Population) -> Population:
    """``population`` with visitors from ``neighbour``: its ``VISITING_SHOWCASES``
    (with the same case) and every ``VISITOR_EVERY``-th of its ordinary
    enterprises (one or two of ``VISITOR_CASES``, drawn from the code, so the
    same firm gets the same cases whatever the sizes)."""
    showcases = {e.uscc for e in neighbour.showcase.values()}
    visitors = [dataclasses.replace(neighbour.showcase[case], cases=frozenset({case}))
                for case in VISITING_SHOWCASES]
    ordinary = [e for e in neighbour.enterprises if e.uscc not in showcases]
    for e in ordinary[::VISITOR_EVERY]:
        rng = random.Random(f"{population.seed}:visitor:{e.uscc}")
        cases = frozenset(rng.sample(VISITOR_CASES, rng.choice((1, 1, 2))))
        visitors.append(dataclasses.replace(e, cases=cases))
    population.visitors = visitors
    return population
