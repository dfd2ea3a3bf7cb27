"""The credit office connector maps the double-publicity tables, lists,
commitments and repairs; penalties carry the date of their approved repair."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

import demo.credit_office
from connectors.credit_office import (
    CreditOfficeConnector,
    commitments,
    credit_lists,
    licences,
    metadata,
    penalties,
    repairs,
)
from demo.population import build_population
from gateway.errors import BadSourceData
from resolvers.records import (
    CreditListKind,
    FulfilmentStatus,
    LicenceCategory,
    PenaltyType,
    RepairStatus,
    Severity,
)
from tests.connectors.legacy_db import connector_over

pytestmark = pytest.mark.anyio

A = "91441300195971850Y"
B = "91441900708017879M"
PERSON = "440524188001010014"
MISSING = "91110000600037341L"
ORGAN = "惠州市市场监督管理局"
ORGAN_CODE = "11441300202466335X"


def licence_row(code: str, **overrides):
    row = {
        "xdr_mc": "惠州市测试食品有限公司", "xdr_dm": code, "xkwsh": "惠市监许〔2023〕101号",
        "xklb": "01", "xkzsmc": "食品经营许可证", "xkbh": "JY14413020012345",
        "xknr": "预包装食品销售", "xkjdrq": "20230410", "yxqz": "20230410", "yxqzhi": "20280409",
        "xkjg": ORGAN, "xkjgdm": ORGAN_CODE, "sjly": ORGAN,
    }
    return {**row, **overrides}


def penalty_row(code: str, number: str, **overrides):
    row = {
        "xdr_mc": "惠州市测试食品有限公司", "xdr_dm": code, "cfjdsh": number,
        "wflx": "销售不符合食品安全标准的食品", "wfss": "经查，当事人销售过期食品。",
        "cfyj": "《中华人民共和国食品安全法》第一百二十四条", "cflb": "03,04",
        "fkje": Decimal("12.5"), "mswfsd": Decimal("0.35"), "cfjdrq": "20250602",
        "gsjzq": "20260602", "yzcd": "2", "cfjg": ORGAN, "cfjgdm": ORGAN_CODE, "sjly": ORGAN,
    }
    return {**row, **overrides}


def repair_row(code: str, number: str, status: str, repaired: str | None, **overrides):
    row = {
        "dm": code, "xfdxlx": "行政处罚", "xfdxbh": number, "sqrq": "20250905",
        "xfrq": repaired, "xfzt": status, "xfjg": "惠州市发展和改革局",
    }
    return {**row, **overrides}


async def test_licences_are_mapped_newest_first(database_url):
    connector = await connector_over(CreditOfficeConnector, database_url, metadata, {
        licences: [
            licence_row(A),
            licence_row(A, xkwsh="惠市自然资源许〔2025〕7号", xklb="04", xkzsmc="建设工程规划许可证",
                        xkjdrq="20250101", yxqz="20250101", yxqzhi=None, xkbh=None, xkjgdm=None),
        ],
    })
    try:
        missing, a = await connector.load_licences([MISSING, A])
    finally:
        await connector.aclose()
    assert missing == []
    newest, older = a
    assert newest.category is LicenceCategory.APPROVAL and newest.valid_to is None
    assert newest.licence_number is None and newest.issuing_organ_code is None
    assert older.decision_number == "惠市监许〔2023〕101号"
    assert older.category is LicenceCategory.ORDINARY and older.licence_name == "食品经营许可证"
    assert older.decided_on == date(2023, 4, 10) and older.valid_from == date(2023, 4, 10)
    assert older.valid_to == date(2028, 4, 9)
    assert older.issuing_organ_code == ORGAN_CODE and older.reporting_department == ORGAN


async def test_penalties_carry_their_approved_repair_only(database_url):
    connector = await connector_over(CreditOfficeConnector, database_url, metadata, {
        penalties: [
            penalty_row(A, "惠市监罚〔2025〕1号"),
            penalty_row(A, "惠市监罚〔2024〕2号", cfjdrq="20240303", cflb="01", fkje=None,
                        mswfsd=None, gsjzq=None, yzcd="1"),
            penalty_row(A, "惠市环罚〔2023〕3号", cfjdrq="20230115", cflb="03, 09",
                        gsjzq="20260115", yzcd="3"),
            penalty_row(PERSON, "惠市城管罚〔2025〕4号", xdr_mc="陈静", cflb="03"),
        ],
        repairs: [
            repair_row(A, "惠市监罚〔2025〕1号", "1", "20250912"),
            repair_row(A, "惠市环罚〔2023〕3号", "2", None),  # rejected
            repair_row(A, "惠市监罚〔2024〕2号", "1", "20240901", xfdxlx="行政许可"),  # other kind
            repair_row(B, "惠市城管罚〔2025〕4号", "1", "20250910"),  # another subject
        ],
    })
    try:
        a, missing, person = await connector.load_penalties([A, MISSING, PERSON])
    finally:
        await connector.aclose()
    assert missing == []
    assert [p.decision_number for p in a] == [
        "惠市监罚〔2025〕1号", "惠市监罚〔2024〕2号", "惠市环罚〔2023〕3号",
    ]
    general, minor, serious = a
    assert general.repaired_on == date(2025, 9, 12)
    assert general.penalty_types == [PenaltyType.FINE, PenaltyType.CONFISCATION]
    assert general.fine == Decimal("12.5") and general.confiscated == Decimal("0.35")
    assert general.decided_on == date(2025, 6, 2) and general.publicity_ends_on == date(2026, 6, 2)
    assert general.severity is Severity.GENERAL and general.issuing_organ_code == ORGAN_CODE
    assert general.violation_type == "销售不符合食品安全标准的食品"
    assert general.legal_basis == "《中华人民共和国食品安全法》第一百二十四条"
    assert minor.severity is Severity.MINOR and minor.penalty_types == [PenaltyType.WARNING]
    assert minor.fine is None and minor.publicity_ends_on is None and minor.repaired_on is None
    assert serious.severity is Severity.SERIOUS and serious.repaired_on is None
    assert serious.penalty_types == [PenaltyType.FINE, PenaltyType.BUSINESS_SUSPENSION]
    (p,) = person
    assert p.subject_name == "陈静" and p.repaired_on is None


async def test_lists_commitments_and_repairs(database_url):
    connector = await connector_over(CreditOfficeConnector, database_url, metadata, {
        credit_lists: [
            {"dm": A, "mdlx": "R", "mdmc": "广东省守合同重信用企业", "lryy": "合同信用良好",
             "lrrq": "20250110", "rdjg": ORGAN, "yxqz": "20270110", "ycrq": None},
            {"dm": A, "mdlx": "B", "mdmc": "安全生产严重失信主体名单", "lryy": "发生较大事故",
             "lrrq": "20220301", "rdjg": "惠州市应急管理局", "yxqz": None, "ycrq": "20230601"},
        ],
        commitments: [
            {"dm": B, "cnlx": "审批替代型", "cnsx": "食品经营许可告知承诺", "qsrq": "20240505",
             "lxzt": "2"},
            {"dm": B, "cnlx": "主动型", "cnsx": "依法诚信经营", "qsrq": "20250505", "lxzt": "0"},
        ],
        repairs: [
            repair_row(A, "惠市监罚〔2025〕1号", "0", None, sqrq="20251001"),
            repair_row(A, "惠市监罚〔2024〕2号", "1", "20240915", sqrq="20240901"),
        ],
    })
    try:
        lists = await connector.load_credit_lists([A, B])
        promised = await connector.load_commitments([A, B])
        repaired = await connector.load_repairs([B, A])
    finally:
        await connector.aclose()
    red, black = lists[0]
    assert lists[1] == []
    assert red.kind is CreditListKind.RED and red.list_name == "广东省守合同重信用企业"
    assert red.listed_on == date(2025, 1, 10) and red.expires_on == date(2027, 1, 10)
    assert red.removed_on is None and red.listed_by == ORGAN
    assert black.kind is CreditListKind.BLACK and black.removed_on == date(2023, 6, 1)
    assert black.expires_on is None
    assert promised[0] == []
    assert [(c.kind, c.fulfilment, c.signed_on) for c in promised[1]] == [
        ("主动型", FulfilmentStatus.PENDING, date(2025, 5, 5)),
        ("审批替代型", FulfilmentStatus.BREACHED, date(2024, 5, 5)),
    ]
    assert repaired[0] == []
    pending, approved = repaired[1]
    assert pending.status is RepairStatus.PENDING and pending.repaired_on is None
    assert pending.applied_on == date(2025, 10, 1) and pending.record_kind == "行政处罚"
    assert approved.status is RepairStatus.APPROVED and approved.repaired_on == date(2024, 9, 15)
    assert approved.record_reference == "惠市监罚〔2024〕2号"
    assert approved.decided_by == "惠州市发展和改革局"


@pytest.mark.parametrize("table, row, load", [
    (licences, licence_row(A, xklb="07"), "load_licences"),
    (penalties, penalty_row(A, "惠市监罚〔2025〕1号", cflb="03,14"), "load_penalties"),
    (penalties, penalty_row(A, "惠市监罚〔2025〕1号", yzcd="4"), "load_penalties"),
    (penalties, penalty_row(A, "惠市监罚〔2025〕1号", cfjdrq="20251302"), "load_penalties"),
    (credit_lists, {"dm": A, "mdlx": "G", "mdmc": "x", "lryy": "x", "lrrq": "20250101",
                    "rdjg": ORGAN, "yxqz": None, "ycrq": None}, "load_credit_lists"),
    (commitments, {"dm": A, "cnlx": "主动型", "cnsx": "x", "qsrq": "20250101", "lxzt": "3"},
     "load_commitments"),
    (repairs, repair_row(A, "x", "9", None), "load_repairs"),
])
async def test_unknown_legacy_code_is_bad_source_data(database_url, table, row, load):
    connector = await connector_over(CreditOfficeConnector, database_url, metadata, {table: [row]})
    try:
        with pytest.raises(BadSourceData) as caught:
            await getattr(connector, load)([A])
    finally:
        await connector.aclose()
    assert caught.value.extensions == {"code": "BAD_UPSTREAM_RESPONSE", "source": "test-source"}


async def test_demo_rows_produce_each_case(tmp_path):
    population = build_population(size=60, persons=20, today=date(2026, 11, 28))
    today = population.today
    connector = await connector_over(
        CreditOfficeConnector, f"sqlite+aiosqlite:///{tmp_path / 'credit.db'}", metadata,
        dict(demo.credit_office.rows(population)),
    )
    cases = ("penalty_minor", "penalty_general_in_window", "penalty_general_expired",
             "penalty_serious_in_window", "penalty_serious_expired", "penalty_repaired",
             "red_list", "black_list", "commitment_breached", "licensed", "clean")
    codes = [population.showcase[c].uscc for c in cases]
    person = population.person_showcase["person_penalty"]
    try:
        fined = dict(zip(cases, await connector.load_penalties(codes)))
        lists = dict(zip(cases, await connector.load_credit_lists(codes)))
        promised = dict(zip(cases, await connector.load_commitments(codes)))
        repaired = dict(zip(cases, await connector.load_repairs(codes)))
        licensed = dict(zip(cases, await connector.load_licences(codes)))
        (person_penalties,) = await connector.load_penalties([person.id_number])
    finally:
        await connector.aclose()

    def only(case):
        (penalty,) = fined[case]
        return penalty, (today - penalty.decided_on).days

    minor, age = only("penalty_minor")
    assert minor.severity is Severity.MINOR and minor.publicity_ends_on is None and age <= 60
    for case, severity, ages, in_window in (
        ("penalty_general_in_window", Severity.GENERAL, (30, 300), True),
        ("penalty_general_expired", Severity.GENERAL, (400, 700), False),
        ("penalty_serious_in_window", Severity.SERIOUS, (400, 900), True),
        ("penalty_serious_expired", Severity.SERIOUS, (1100, 1500), False),
    ):
        penalty, age = only(case)
        assert penalty.severity is severity and ages[0] <= age <= ages[1]
        assert (penalty.publicity_ends_on > today) is in_window and penalty.repaired_on is None
    repaired_penalty, age = only("penalty_repaired")
    assert repaired_penalty.severity is Severity.GENERAL and 120 <= age <= 300
    assert repaired_penalty.decided_on + timedelta(days=92) <= repaired_penalty.repaired_on < today
    (repair,) = repaired["penalty_repaired"]
    assert repair.status is RepairStatus.APPROVED
    assert repair.record_reference == repaired_penalty.decision_number
    assert repair.repaired_on == repaired_penalty.repaired_on
    for case, kind in (("red_list", CreditListKind.RED), ("black_list", CreditListKind.BLACK)):
        (entry,) = lists[case]
        assert entry.kind is kind and entry.removed_on is None
        assert entry.listed_on < today < entry.expires_on
    assert lists["clean"] == [] and fined["clean"] == []
    assert FulfilmentStatus.BREACHED in {c.fulfilment for c in promised["commitment_breached"]}
    assert 1 <= len(licensed["licensed"]) <= 3
    assert all(lic.valid_from == lic.decided_on for lic in licensed["licensed"])
    (person_penalty,) = person_penalties
    assert person_penalty.subject_name == person.name
