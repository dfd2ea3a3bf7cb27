"""The credit office connector maps the double-publicity tables, lists,
commitments, repairs and financing authorizations; penalties carry the date
of their approved repair."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

import demo.credit_office
from connectors.credit_office import (
    CreditOfficeConnector,
    authorizations,
    commitments,
    credit_lists,
    licences,
    metadata,
    penalties,
    repairs,
)
from demo.credit_office import BANKS
from demo.population import build_population
from core.codes import validate_uscc
from core.records.credit_office import (
    CreditListKind,
    FulfilmentStatus,
    LicenceCategory,
    PenaltyType,
    RepairStatus,
    Severity,
)
from gateway.catalog import load_catalog
from tests.connectors.legacy_db import assert_bad_source_data, connector_over

pytestmark = pytest.mark.anyio

A = "91441300195971850Y"
B = "91441900708017879M"
PERSON = "440524188001010014"
MISSING = "91110000600037341L"
ORGAN = "惠州市市场监督管理局"
ORGAN_CODE = "11441300202466335X"
BANK, BANK_NAME = "91441300MA4URFQ13W", "中国工商银行股份有限公司惠州分行"
OTHER_BANK = "91441300MA4W7K2H84"
# What the authorization records' codes mean is the policy catalog's data.
CATALOG = load_catalog()
CATEGORY_CODES = {c.id: c.authorization_codes for c in CATALOG.categories.values()}
ALL_CATEGORIES = frozenset(CATEGORY_CODES)
ALL_CODES = frozenset().union(*CATEGORY_CODES.values())


def grants(auth, bank, category, day, purpose="FINANCING"):
    """Whether ``auth`` lets ``bank`` see ``category`` for ``purpose`` on ``day``."""
    return auth.covers(bank, CATALOG.purposes[purpose].authorization_codes,
                       CATEGORY_CODES[category], day)


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


def authorization_row(code: str, number: str, **overrides):
    row = {
        "sqbh": number, "dm": code, "bsqjg_dm": BANK, "bsqjg_mc": BANK_NAME, "sqyt": "03",
        "sjlb": "SW,SB,HB", "qsrq": "20250301", "jzrq": "20260228", "cxrq": None,
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


async def test_penalties_in_the_order_of_the_keys_newest_first(database_url):
    connector = await connector_over(CreditOfficeConnector, database_url, metadata, {
        penalties: [
            penalty_row(A, "惠市监罚〔2025〕1号"),
            penalty_row(A, "惠市监罚〔2024〕2号", cfjdrq="20240303", cflb="01", fkje=None,
                        mswfsd=None, gsjzq=None, yzcd="1"),
            penalty_row(A, "惠市环罚〔2023〕3号", cfjdrq="20230115", cflb="03, 09",
                        gsjzq="20260115", yzcd="3"),
            penalty_row(PERSON, "惠市城管罚〔2025〕4号", xdr_mc="陈静", cflb="03"),
        ],
        # The gateway links repairs (policy.PublicityWindow.prepare), not the connector.
        repairs: [repair_row(A, "惠市监罚〔2025〕1号", "1", "20250912")],
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
    assert all(p.repaired_on is None for p in a)
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


async def test_authorizations_are_mapped_newest_first(database_url):
    connector = await connector_over(CreditOfficeConnector, database_url, metadata, {
        authorizations: [
            authorization_row(A, "SQ2024001", qsrq="20240115", jzrq="20250114",
                              sjlb="SW, HB"),
            authorization_row(A, "SQ2025001"),
            authorization_row(A, "SQ2025002", qsrq="20250601", jzrq="20270531", cxrq="20251010",
                              bsqjg_dm=OTHER_BANK.lower(), bsqjg_mc="惠州农村商业银行股份有限公司",
                              sjlb="SB"),
            authorization_row(B, "SQ2025003"),
        ],
    })
    try:
        missing, a, b = await connector.load_authorizations([MISSING, A, B])
    finally:
        await connector.aclose()
    assert missing == []
    assert [x.number for x in a] == ["SQ2025002", "SQ2025001", "SQ2024001"]
    revoked, current, old = a
    assert current.enterprise_uscc == A and current.purpose_code == "03"
    assert current.grantee_code == BANK and current.grantee_name == BANK_NAME
    assert current.category_codes == {"SW", "SB", "HB"}
    assert isinstance(current.category_codes, frozenset)
    assert current.valid_from == date(2025, 3, 1) and current.valid_to == date(2026, 2, 28)
    assert current.revoked_on is None
    assert old.category_codes == frozenset({"SW", "HB"})
    assert old.valid_from == date(2024, 1, 15) and old.valid_to == date(2025, 1, 14)
    assert revoked.revoked_on == date(2025, 10, 10)
    assert revoked.grantee_code == OTHER_BANK  # normalized to the registry's upper case
    assert revoked.category_codes == frozenset({"SB"})
    (only,) = b
    assert only.number == "SQ2025003" and only.enterprise_uscc == B


async def test_authorization_covers_its_bank_categories_and_days_only(database_url):
    connector = await connector_over(CreditOfficeConnector, database_url, metadata, {
        authorizations: [
            authorization_row(A, "SQ1", sjlb="SW,SB"),
            authorization_row(B, "SQ2", cxrq="20250801"),
        ],
    })
    try:
        ((partial,), (revoked,)) = await connector.load_authorizations([A, B])
    finally:
        await connector.aclose()

    def covers(auth, day, bank=BANK, purpose="FINANCING", category="tax"):
        return grants(auth, bank, category, day, purpose)

    # Validity is inclusive at both ends.
    assert covers(partial, date(2025, 3, 1)) and covers(partial, date(2026, 2, 28))
    assert covers(partial, date(2025, 9, 1), category="social_insurance")
    assert not covers(partial, date(2025, 2, 28)) and not covers(partial, date(2026, 3, 1))
    assert not covers(partial, date(2025, 9, 1), category="environment")  # not granted
    assert not covers(partial, date(2025, 9, 1), bank=OTHER_BANK)
    assert not covers(partial, date(2025, 9, 1), purpose="SUPERVISION")
    # Revocation ends it from the revocation day on.
    assert covers(revoked, date(2025, 7, 31), category="environment")
    assert not covers(revoked, date(2025, 8, 1)) and not covers(revoked, date(2025, 12, 1))


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
    await assert_bad_source_data(connector, load, [A])


@pytest.mark.parametrize("bad", [
    {"jzrq": ""}, {"qsrq": "2025"}, {"cxrq": "20250230"},
], ids=lambda bad: ",".join(f"{k}={v}" for k, v in bad.items()))
async def test_an_unreadable_authorization_is_left_out_and_the_others_apply(
        database_url, bad, caplog):
    connector = await connector_over(CreditOfficeConnector, database_url, metadata, {
        authorizations: [authorization_row(A, "SQ-BAD", **bad), authorization_row(A, "SQ-OK"),
                         authorization_row(B, "SQ-B")],
    })
    try:
        a, b = await connector.load_authorizations([A, B])
    finally:
        await connector.aclose()
    assert [x.number for x in a] == ["SQ-OK"] and [x.number for x in b] == ["SQ-B"]
    assert any("left out" in r.getMessage() and A in r.getMessage() for r in caplog.records)


async def test_authorization_codes_are_passed_on_and_unknown_ones_grant_nothing(database_url):
    connector = await connector_over(CreditOfficeConnector, database_url, metadata, {
        authorizations: [authorization_row(A, "SQ-09", sqyt="09"),
                         authorization_row(A, "SQ-GJJ", sjlb="SW, GJJ"),
                         authorization_row(A, "SQ-NONE", sjlb="")],
    })
    try:
        (found,) = await connector.load_authorizations([A])
    finally:
        await connector.aclose()
    by_number = {auth.number: auth for auth in found}
    assert by_number["SQ-09"].purpose_code == "09"
    assert by_number["SQ-GJJ"].category_codes == {"SW", "GJJ"}
    assert by_number["SQ-NONE"].category_codes == frozenset()
    day = date(2025, 9, 1)
    assert not any(grants(by_number["SQ-09"], BANK, c, day) for c in ALL_CATEGORIES)
    assert grants(by_number["SQ-GJJ"], BANK, "tax", day)
    assert not grants(by_number["SQ-GJJ"], BANK, "social_insurance", day)
    assert not any(grants(by_number["SQ-NONE"], BANK, c, day) for c in ALL_CATEGORIES)


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
    (repair,) = repaired["penalty_repaired"]
    assert repair.status is RepairStatus.APPROVED
    assert repair.record_reference == repaired_penalty.decision_number
    assert repaired_penalty.decided_on + timedelta(days=92) <= repair.repaired_on < today
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


async def test_demo_financing_showcases(tmp_path):
    population = build_population(size=60, persons=20, today=date(2026, 11, 28))
    today = population.today
    connector = await connector_over(
        CreditOfficeConnector, f"sqlite+aiosqlite:///{tmp_path / 'credit.db'}", metadata,
        dict(demo.credit_office.rows(population)),
    )
    cases = ("financing_authorized", "financing_expired", "financing_revoked", "clean")
    try:
        granted = dict(zip(cases, await connector.load_authorizations(
            [population.showcase[c].uscc for c in cases]
        )))
    finally:
        await connector.aclose()
    bank, bank_name = BANKS["bank-icbc-huizhou"]
    other_bank = BANKS["bank-hzrcb"][0]
    for case in cases[:3]:
        (auth,) = granted[case]
        assert auth.enterprise_uscc == population.showcase[case].uscc
        assert auth.grantee_code == bank and auth.grantee_name == bank_name
        assert auth.purpose_code == "03" and auth.category_codes == ALL_CODES
        assert auth.valid_from < auth.valid_to
        assert not any(grants(auth, other_bank, c, today) for c in ALL_CATEGORIES)
    (valid,) = granted["financing_authorized"]
    assert valid.valid_from <= today <= valid.valid_to and valid.revoked_on is None
    assert all(grants(valid, bank, c, today) for c in ALL_CATEGORIES)
    (expired,) = granted["financing_expired"]
    assert expired.valid_to < today and expired.revoked_on is None
    assert grants(expired, bank, "tax", expired.valid_to)
    assert not any(grants(expired, bank, c, today) for c in ALL_CATEGORIES)
    (revoked,) = granted["financing_revoked"]
    assert revoked.valid_from < revoked.revoked_on < today <= revoked.valid_to
    assert grants(revoked, bank, "tax", revoked.revoked_on - timedelta(days=1))
    assert not any(grants(revoked, bank, c, today) for c in ALL_CATEGORIES)
    assert granted["clean"] == []


async def test_demo_authorizations_vary_over_both_banks(tmp_path):
    assert [validate_uscc(code) for code, _ in BANKS.values()] == [BANK, OTHER_BANK]
    population = build_population(size=400, persons=20, today=date(2026, 11, 28))
    today = population.today
    connector = await connector_over(
        CreditOfficeConnector, f"sqlite+aiosqlite:///{tmp_path / 'credit.db'}", metadata,
        {authorizations: dict(demo.credit_office.rows(population))[authorizations]},
    )
    try:
        found = await connector.load_authorizations([e.uscc for e in population.enterprises])
    finally:
        await connector.aclose()

    def state(auth):
        if auth.revoked_on is not None and auth.revoked_on <= today:
            return "revoked"
        return "expired" if auth.valid_to < today else "valid"

    everything = [auth for auths in found for auth in auths]
    seen = {(auth.grantee_code, state(auth)) for auth in everything}
    states = ("valid", "expired", "revoked")
    assert seen == {(code, s) for code, _ in BANKS.values() for s in states}
    assert any(auth.category_codes < ALL_CODES for auth in everything)
    assert all(auth.category_codes and auth.category_codes <= ALL_CODES for auth in everything)
