"""The housing fund connector maps unit accounts' monthly contributions (yuan) to months per USCC."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

import demo.housing_fund
from connectors.housing_fund import HousingFundConnector, contributions, metadata, units
from core.codes import complete_uscc
from demo.population import build_population
from tests.connectors.legacy_db import assert_bad_source_data, connector_over

pytestmark = pytest.mark.anyio


A = complete_uscc("91441302MA4W0K3X1")
B = "91441300195971850Y"
C = complete_uscc("91441322MA4W0K3X3")  # an account without months
MISSING = complete_uscc("91441303MA4W0K3X2")


def unit(account: str, code: str, status: str = "1"):
    return {"dwzh": account, "dwmc": "惠州市测试有限公司", "tyshxydm": code,
            "khrq": "20200115", "dwzhzt": status}


def month(account: str, jcny: str, contributors: int, paid: str, owed: str = "0"):
    return {"dwzh": account, "jcny": jcny, "jcrs": contributors,
            "sjje": Decimal(paid), "qjje": Decimal(owed)}


LEGACY = {
    units: [unit("441302000001", A, "9"), unit("441302000002", A), unit("441300000003", B),
            unit("441322000004", C)],
    contributions: [
        month("441302000001", "202511", 12, "1234.50"),
        month("441302000002", "202601", 11, "0", "30000000.01"),
        month("441302000001", "202512", 12, "20000", "0.05"),
        month("441300000003", "202601", 300, "900000"),
    ],
}


async def test_months_of_every_account_are_mapped_newest_first_in_key_order(database_url):
    connector = await connector_over(HousingFundConnector, database_url, metadata, LEGACY)
    try:
        b, missing, a, c = await connector.load_housing_fund([B, MISSING, A, C])
    finally:
        await connector.aclose()
    assert missing == [] and c == []
    # The closed account's months and its successor's, as one history.
    assert [m.period for m in a] == ["2026-01", "2025-12", "2025-11"]
    assert [m.contributing_employees for m in a] == [11, 12, 12]
    assert [m.amount_paid for m in a] == [Decimal("0"), Decimal("20000"), Decimal("1234.50")]
    assert str(a[2].amount_paid) == "1234.50"
    assert [m.arrears for m in a] == [Decimal("30000000.01"), Decimal("0.05"), Decimal("0")]
    assert b[0].amount_paid == Decimal("900000") and b[0].contributing_employees == 300
    assert b[0].provenance.source == "test-source"


async def test_a_batch_is_one_statement(database_url):
    connector = await connector_over(HousingFundConnector, database_url, metadata, LEGACY)
    try:
        rows = await connector.load_housing_fund([A, B, C, MISSING])
        assert connector.statements_sent == 1 and len(rows) == 4
        many = [complete_uscc(f"91441302MA4W{n:04d}X") for n in range(400)]
        await connector.load_housing_fund([A, *many])
        assert connector.statements_sent == 2
    finally:
        await connector.aclose()


@pytest.mark.parametrize("bad", [{"jcny": "2025-1"}, {"jcny": "202513"}, {"jcrs": -1}])
async def test_unreadable_month_or_headcount_is_bad_source_data(database_url, bad):
    connector = await connector_over(HousingFundConnector, database_url, metadata, {
        units: [unit("441302000001", A)],
        contributions: [{**month("441302000001", "202511", 3, "100"), **bad}],
    })
    await assert_bad_source_data(connector, "load_housing_fund", [A])


async def test_demo_cases_produce_their_records(tmp_path):
    population = build_population(size=200, persons=20, today=date(2026, 11, 28))
    connector = await connector_over(
        HousingFundConnector, f"sqlite+aiosqlite:///{tmp_path / 'housing_fund.db'}", metadata,
        dict(demo.housing_fund.rows(population)),
    )
    show = population.showcase
    insured = demo.housing_fund.insured_headcounts(population)
    others = [e for e in population.enterprises if "housing_fund_arrears" not in e.cases]
    uninsured = [e for e in others if e.uscc not in insured]
    try:
        (owing,) = await connector.load_housing_fund([show["housing_fund_arrears"].uscc])
        paying = await connector.load_housing_fund([e.uscc for e in others])
        showcases = await connector.load_housing_fund([e.uscc for e in show.values()])
    finally:
        await connector.aclose()
    expected = [f"2026-{m:02d}" for m in range(10, 0, -1)] + ["2025-12", "2025-11"]
    assert [m.period for m in owing] == expected
    assert owing[0].arrears > 0 and owing[-1].arrears == 0
    assert all(m.amount_paid + m.arrears > 0 for m in owing)
    with_account = [(e, months) for e, months in zip(others, paying) if months]
    assert 0.6 * len(others) < len(with_account) < len(others)
    for e, months in with_account:
        assert [m.period for m in months] == expected
        assert all(m.arrears == 0 and m.amount_paid > 0 for m in months)
        # Contributors are some or all of the insured staff, every month.
        assert all(1 <= m.contributing_employees <= insured[e.uscc][m.period.replace("-", "")]
                   for m in months)
        per_head = [m.amount_paid / m.contributing_employees for m in months]
        assert all(Decimal("190") <= amount <= Decimal("1680") for amount in per_head)
    assert uninsured and all(months == [] for e, months in zip(others, paying)
                             if e in uninsured)
    assert all(showcases)  # every showcase has an account
