"""The market-regulation connector maps its legacy tables into registrations and list entries."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from connectors.market import (
    MarketRegulationConnector,
    abnormal_operations,
    metadata,
    registrations,
    serious_violations,
)
from core.codes import compose_uscc
from core.records.market import AbnormalOperationReason, EntityStatus
from tests.connectors.legacy_db import assert_bad_source_data, connector_over

pytestmark = pytest.mark.anyio

A = "91441302MA4W0K3X17"
B = "91441300195971850Y"
MISSING = "91441303MA4W0K3X2Q"
PERSON = "441302198001010014"


def registration_row(uscc: str, **overrides):
    row = {
        "tyshxydm": uscc, "qymc": "惠州市测试电子有限公司", "fddbr": "王伟",
        "fddbr_zjhm": PERSON, "qylx": "1100", "clrq": "20150311", "zczb": Decimal("500.5"),
        "djzt": "1", "zs": "广东省惠州市惠城区江北文昌一路1号", "jyfw": "电子产品的研发",
        "djjg": "惠州市惠城区市场监督管理局",
    }
    return {**row, **overrides}


async def test_registrations_are_mapped_and_returned_in_key_order(database_url):
    connector = await connector_over(MarketRegulationConnector, database_url, metadata, {
        registrations: [registration_row(A), registration_row(B, qymc="惠州另一家股份有限公司",
                                                             qylx="1200", djzt="2", clrq=None,
                                                             zczb=None, fddbr_zjhm=None)],
    })
    try:
        b, missing, a = await connector.load_registrations([B, MISSING, A])
    finally:
        await connector.aclose()
    assert missing is None
    assert a.uscc == A and a.name == "惠州市测试电子有限公司"
    assert a.legal_representative == "王伟" and a.legal_representative_id_number == PERSON
    assert a.entity_type == "有限责任公司"
    assert a.established_on == date(2015, 3, 11)
    assert a.registered_capital == Decimal("500.5")
    assert a.status is EntityStatus.OPERATING
    assert a.registration_authority == "惠州市惠城区市场监督管理局"
    assert a.provenance.source == "test-source" and a.provenance.city == "惠州"
    assert b.entity_type == "股份有限公司" and b.status is EntityStatus.REVOKED
    assert b.established_on is None and b.registered_capital is None


async def test_registrations_by_legal_representative(database_url):
    connector = await connector_over(MarketRegulationConnector, database_url, metadata, {
        registrations: [registration_row(A), registration_row(B), registration_row(MISSING, fddbr_zjhm=None)],
    })
    try:
        (firms, none) = await connector.load_registrations_by_representative([PERSON, "11010519491231002X"])
    finally:
        await connector.aclose()
    assert [f.uscc for f in firms] == sorted([A, B])
    assert none == []


async def test_search_by_name_pages_by_code_and_escapes_wildcards(database_url):
    connector = await connector_over(MarketRegulationConnector, database_url, metadata, {
        registrations: [
            registration_row(A, qymc="惠州市鸿信电子有限公司"),
            registration_row(B, qymc="惠州市鸿信物流有限公司"),
            registration_row(MISSING, qymc="惠州市100%纯电子有限公司"),
        ],
    })
    try:
        first = await connector.search_by_name("鸿信", after=None, limit=1)
        second = await connector.search_by_name("鸿信", after=first[0].uscc, limit=5)
        percent = await connector.search_by_name("%", after=None, limit=5)
    finally:
        await connector.aclose()
    assert [r.uscc for r in first + second] == sorted([A, B])
    assert [r.uscc for r in percent] == [MISSING]


# Each name holds one character LIKE (or an engine's default escape) treats
# specially: searching for it, alone or between its neighbours, finds that name
# only, and a search made of such characters that no name holds finds none.
LITERAL_NAMES = {
    "%": "惠州市100%纯电子有限公司",
    "_": "惠州市A_B科技有限公司",
    "\\": "惠州市C\\D贸易有限公司",  # the default escape of PostgreSQL and MariaDB
    "/": "惠州市E/F物流有限公司",  # SQLAlchemy's autoescape character
    "[": "惠州市[G]餐饮有限公司",  # a character class in some engines' LIKE
    "'": "惠州市H'J咨询有限公司",
}
LITERAL_SEARCHES = {
    **{c: c for c in LITERAL_NAMES},
    "A_B": "_", "0%纯": "%", "C\\D": "\\", "E/F": "/", "[G]": "[",
    "%%": None, "__": None, "\\%": None, "/%": None, "\\_": None, "/_": None,
    "//": None, "\\\\": None, "%惠": None, "市_": None,
}


async def test_search_by_name_treats_wildcards_and_escapes_literally(database_url):
    codes = {c: compose_uscc("91441302", f"3123456{i}") for i, c in enumerate(LITERAL_NAMES)}
    plain = compose_uscc("91441302", "31234569")
    connector = await connector_over(MarketRegulationConnector, database_url, metadata, {
        registrations: [
            *(registration_row(codes[c], qymc=name) for c, name in LITERAL_NAMES.items()),
            registration_row(plain, qymc="惠州市普通有限公司"),
        ],
    })
    try:
        found = {text: [r.uscc for r in await connector.search_by_name(text, None, 20)]
                 for text in LITERAL_SEARCHES}
    finally:
        await connector.aclose()
    assert found == {text: [codes[c]] if c else [] for text, c in LITERAL_SEARCHES.items()}


async def test_search_by_name_for_nul_matches_nothing(database_url):
    # SQLite's LIKE stops reading its pattern at a NUL ('%' || '\0\0' || '%' is '%'),
    # PostgreSQL refuses NUL in text: no stored name contains one.
    connector = await connector_over(MarketRegulationConnector, database_url, metadata, {
        registrations: [registration_row(A), registration_row(B, qymc="惠州另一家股份有限公司")],
    })
    try:
        found = [await connector.search_by_name(text, after=None, limit=5)
                 for text in ("\x00\x00", "惠州\x00", "\x00")]
    finally:
        await connector.aclose()
    assert found == [[], [], []]


async def test_list_entries_are_grouped_per_code(database_url):
    connector = await connector_over(MarketRegulationConnector, database_url, metadata, {
        abnormal_operations: [
            {"tyshxydm": A, "lryy": "4", "lrrq": "20240105", "lrjg": "惠城区市场监管局",
             "ycrq": "20240112", "ycjg": "惠城区市场监管局", "ycyy": "已恢复联系"},
            {"tyshxydm": A, "lryy": "1", "lrrq": "20250701", "lrjg": "惠城区市场监管局",
             "ycrq": None, "ycjg": None, "ycyy": None},
        ],
        serious_violations: [
            {"tyshxydm": B, "lrsy": "列入经营异常名录届满3年", "lrrq": "20230301",
             "lrjg": "惠州市市场监督管理局", "ycrq": None, "ycjg": None},
        ],
    })
    try:
        abnormal = await connector.load_abnormal_operations([A, B])
        serious = await connector.load_serious_violations([A, B])
    finally:
        await connector.aclose()
    assert [e.reason for e in abnormal[0]] == [
        AbnormalOperationReason.UNREACHABLE_AT_ADDRESS, AbnormalOperationReason.NO_ANNUAL_REPORT,
    ]
    assert abnormal[0][0].removed_on == date(2024, 1, 12)
    assert abnormal[0][1].removed_on is None
    assert abnormal[1] == []
    assert serious[0] == []
    assert serious[1][0].listed_on == date(2023, 3, 1) and serious[1][0].removed_on is None


async def test_unknown_legacy_code_is_bad_source_data(database_url):
    connector = await connector_over(MarketRegulationConnector, database_url, metadata, {
        registrations: [registration_row(A, djzt="9")],
    })
    await assert_bad_source_data(connector, "load_registrations", [A])
