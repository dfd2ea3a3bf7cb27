"""The social insurance connector maps monthly contributions in fen to yuan months."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

import demo.hrss
from connectors.hrss import SocialInsuranceConnector, contributions, metadata
from demo.population import build_population
from core.codes import complete_uscc
from tests.connectors.legacy_db import assert_bad_source_data, connector_over

pytestmark = pytest.mark.anyio


A = complete_uscc("91441302MA4W0K3X1")
B = "91441300195971850Y"
MISSING = complete_uscc("91441303MA4W0K3X2")


def month(code: str, jfny: str, headcount: int, paid: int, owed: int = 0):
    return {"dwbh": code, "jfny": jfny, "cbrs": headcount, "sjje": paid, "qjje": owed}


async def test_months_are_mapped_to_yuan_newest_first_in_key_order(database_url):
    connector = await connector_over(SocialInsuranceConnector, database_url, metadata, {
        contributions: [
            month(A, "202511", 12, 12345),
            month(A, "202601", 11, 0, 3_000_000_001),
            month(A, "202512", 12, 2_000_000, 5),
            month(B, "202601", 300, 90_000_000),
        ],
    })
    try:
        b, missing, a = await connector.load_social_insurance([B, MISSING, A])
    finally:
        await connector.aclose()
    assert missing == []
    assert [m.period for m in a] == ["2026-01", "2025-12", "2025-11"]
    assert [m.insured_headcount for m in a] == [11, 12, 12]
    assert [m.amount_paid for m in a] == [Decimal("0"), Decimal("20000"), Decimal("123.45")]
    assert str(a[2].amount_paid) == "123.45"
    assert [m.arrears for m in a] == [Decimal("30000000.01"), Decimal("0.05"), Decimal("0")]
    assert b[0].amount_paid == Decimal("900000") and b[0].provenance.source == "test-source"


@pytest.mark.parametrize("jfny", ["2025-1", "202513"])
async def test_unreadable_month_is_bad_source_data(database_url, jfny):
    connector = await connector_over(SocialInsuranceConnector, database_url, metadata, {
        contributions: [month(A, jfny, 3, 100)],
    })
    await assert_bad_source_data(connector, "load_social_insurance", [A])


async def test_demo_cases_produce_their_records(tmp_path):
    population = build_population(size=60, persons=20, today=date(2026, 11, 28))
    connector = await connector_over(
        SocialInsuranceConnector, f"sqlite+aiosqlite:///{tmp_path / 'hrss.db'}", metadata,
        dict(demo.hrss.rows(population)),
    )
    show = population.showcase
    others = [e for e in population.enterprises if e.entity_type != "9100"
              and "social_insurance_arrears" not in e.cases]
    individual = [e for e in population.enterprises if e.entity_type == "9100"
                  and "social_insurance_arrears" not in e.cases]
    try:
        owing, *paying = await connector.load_social_insurance(
            [show["social_insurance_arrears"].uscc] + [e.uscc for e in others])
        uninsured = await connector.load_social_insurance([e.uscc for e in individual])
    finally:
        await connector.aclose()
    expected = [f"2026-{m:02d}" for m in range(10, 0, -1)] + ["2025-12", "2025-11"]
    assert [m.period for m in owing] == expected
    assert owing[0].arrears > 0 and owing[-1].arrears == 0
    assert paying and all([m.period for m in months] == expected for months in paying)
    assert all(m.arrears == 0 and m.amount_paid > 0 for months in paying for m in months)
    assert uninsured and all(months == [] for months in uninsured)
