"""The court connector maps its enforcement table into dishonest debtor records."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

import demo.court
from connectors.court import CourtConnector, dishonest_debtors, metadata
from connectors.legacy import to_epoch
from demo.population import build_population
from core.records.court import PerformanceStatus, SubjectKind
from tests.connectors.legacy_db import assert_bad_source_data, connector_over

pytestmark = pytest.mark.anyio

FIRM = "91441300195971850Y"
PERSON = "440524188001010014"
MISSING = "11010519491231002X"


def debtor_row(code: str, **overrides):
    row = {
        "ah": "(2025)粤13执123号", "bzxrmc": "惠州市测试电子有限公司", "bzxrlx": "1",
        "zjhm": code, "fddbr": "王伟", "xb": None, "nl": None,
        "zxfy": "惠州市中级人民法院", "zxyjwh": "(2024)粤13民终456号",
        "zxyjdw": "惠州市中级人民法院", "flwsqdyw": "支付货款人民币120000元", "lxqk": "1",
        "sxxwqx": "违反财产报告制度", "lasj": to_epoch(date(2025, 1, 6)),
        "fbsj": to_epoch(date(2025, 3, 1)), "jzrq": to_epoch(date(2027, 3, 1)), "ycrq": None,
    }
    return {**row, **overrides}


async def test_records_are_mapped_newest_first_in_key_order(database_url):
    connector = await connector_over(CourtConnector, database_url, metadata, {
        dishonest_debtors: [
            debtor_row(FIRM, ah="(2022)粤1302执9号", lxqk="3", fbsj=to_epoch(date(2022, 5, 4)),
                       jzrq=to_epoch(date(2024, 5, 4)), ycrq=to_epoch(date(2023, 1, 9))),
            # half past midnight in Beijing is still the same calendar day there
            debtor_row(FIRM, fbsj=to_epoch(date(2025, 3, 1)) + 1800),
            debtor_row(PERSON, bzxrmc="陈静", bzxrlx="2", fddbr=None, xb="2", nl=44,
                       lxqk="2", jzrq=None),
        ],
    })
    try:
        person, missing, firm = await connector.load_dishonest_debtors([PERSON, MISSING, FIRM])
    finally:
        await connector.aclose()
    assert missing == []
    assert [r.case_code for r in firm] == ["(2025)粤13执123号", "(2022)粤1302执9号"]
    newest, removed = firm
    assert newest.subject_kind is SubjectKind.ORGANIZATION and newest.subject_uscc == FIRM
    assert newest.subject_id_number is None
    assert newest.subject_name == "惠州市测试电子有限公司" and newest.legal_representative == "王伟"
    assert newest.sex is None and newest.age is None
    assert newest.filed_on == date(2025, 1, 6) and newest.published_on == date(2025, 3, 1)
    assert newest.expires_on == date(2027, 3, 1) and newest.removed_on is None
    assert newest.performance is PerformanceStatus.NOT_PERFORMED
    assert newest.basis_document == "(2024)粤13民终456号" and newest.basis_issuer == "惠州市中级人民法院"
    assert newest.duty == "支付货款人民币120000元" and newest.behaviour == "违反财产报告制度"
    assert newest.provenance is removed.provenance and newest.provenance.source == "test-source"
    assert removed.performance is PerformanceStatus.PERFORMED
    assert removed.removed_on == date(2023, 1, 9)
    (p,) = person
    assert p.subject_kind is SubjectKind.PERSON and p.subject_name == "陈静"
    assert p.subject_id_number == PERSON and p.subject_uscc is None
    assert p.sex == "女" and p.age == 44 and p.legal_representative is None
    assert p.performance is PerformanceStatus.PARTIALLY_PERFORMED and p.expires_on is None


@pytest.mark.parametrize("column, code", [("lxqk", "9"), ("bzxrlx", "3"), ("xb", "0")])
async def test_unknown_legacy_code_is_bad_source_data(database_url, column, code):
    connector = await connector_over(CourtConnector, database_url, metadata, {
        dishonest_debtors: [debtor_row(FIRM, **{column: code})],
    })
    await assert_bad_source_data(connector, "load_dishonest_debtors", [FIRM])


async def test_demo_rows_produce_each_case(tmp_path):
    population = build_population(size=60, persons=20, today=date(2026, 11, 28))
    today = population.today
    connector = await connector_over(
        CourtConnector, f"sqlite+aiosqlite:///{tmp_path / 'court.db'}", metadata,
        dict(demo.court.rows(population)),
    )
    firms = [population.showcase[c]
             for c in ("dishonest_debtor", "dishonest_debtor_removed", "clean")]
    persons = [population.person_showcase[c] for c in
               ("person_dishonest_debtor", "person_dishonest_debtor_removed", "person_penalty")]
    try:
        active, removed, clean = await connector.load_dishonest_debtors([f.uscc for f in firms])
        p_active, p_removed, p_clean = await connector.load_dishonest_debtors(
            [p.id_number for p in persons])
    finally:
        await connector.aclose()
    assert clean == [] and p_clean == []
    for (record,), subject in ((active, firms[0]), (p_active, persons[0])):
        assert today - timedelta(days=730) <= record.published_on <= today
        assert record.expires_on > today and record.removed_on is None
        assert record.filed_on < record.published_on
        assert record.subject_name == subject.name
    for (record,) in (removed, p_removed):
        taken_down = record.removed_on is not None and record.removed_on <= today
        assert taken_down or record.expires_on < today
    assert active[0].subject_kind is SubjectKind.ORGANIZATION
    assert active[0].legal_representative == firms[0].legal_representative.name
    person = persons[0]
    birthday_passed = (p_active[0].published_on.month, p_active[0].published_on.day) >= (
        person.birth_date.month, person.birth_date.day)
    assert p_active[0].subject_kind is SubjectKind.PERSON and p_active[0].sex == person.sex
    assert p_active[0].age == (
        p_active[0].published_on.year - person.birth_date.year - (not birthday_passed))
    assert p_removed[0].sex == persons[1].sex and p_removed[0].age is not None
