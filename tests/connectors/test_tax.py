"""The tax connector maps its UPPERCASE legacy tables into ratings and arrears."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

import demo.tax
from connectors.tax import TaxConnector, arrears, metadata, ratings
from demo.population import build_population
from core.codes import complete_uscc
from core.records.tax import TaxCreditGrade
from tests.connectors.legacy_db import assert_bad_source_data, connector_over

pytestmark = pytest.mark.anyio


A = complete_uscc("91441302MA4W0K3X1")
B = "91441300195971850Y"
MISSING = complete_uscc("91441303MA4W0K3X2")


def rating(code: str, year: int, grade: str, score: str | None, published: str):
    return {"NSRSBH": code, "PJND": year, "XYJB": grade,
            "PF": None if score is None else Decimal(score), "FBRQ": published}


async def test_ratings_are_mapped_newest_year_first_in_key_order(database_url):
    connector = await connector_over(TaxConnector, database_url, metadata, {
        ratings: [
            rating(A, 2023, "B", "85.5", "2024-04-20"),
            rating(A, 2025, "A", "96.0", "2026-04-20"),
            rating(A, 2024, "M", "72.25", "2025-04-20"),
            rating(B, 2025, "D", None, "2026-04-20"),
        ],
    })
    try:
        b, missing, a = await connector.load_tax_ratings([B, MISSING, A])
    finally:
        await connector.aclose()
    assert missing == []
    assert [(r.year, r.grade) for r in a] == [
        (2025, TaxCreditGrade.A), (2024, TaxCreditGrade.M), (2023, TaxCreditGrade.B),
    ]
    assert [r.score for r in a] == [Decimal("96"), Decimal("72.25"), Decimal("85.5")]
    assert a[0].published_on == date(2026, 4, 20)
    assert a[0].provenance.source == "test-source"
    assert b[0].grade is TaxCreditGrade.D and b[0].score is None


async def test_arrears_are_mapped_newest_announcement_first(database_url):
    connector = await connector_over(TaxConnector, database_url, metadata, {
        arrears: [
            {"NSRSBH": A, "SZ": "增值税", "QSJE": Decimal("12345.67"), "SKSSQZ": "2025-03-31",
             "GGRQ": "2025-04-10", "ZGSWJG": "国家税务总局惠州市惠城区税务局"},
            {"NSRSBH": A, "SZ": "企业所得税", "QSJE": Decimal("2000000.05"), "SKSSQZ": None,
             "GGRQ": "2026-01-10", "ZGSWJG": "国家税务总局惠州市税务局"},
        ],
    })
    try:
        a, b = await connector.load_tax_arrears([A, B])
    finally:
        await connector.aclose()
    assert b == []
    assert [r.tax_type for r in a] == ["企业所得税", "增值税"]
    assert a[0].amount == Decimal("2000000.05") and a[0].period_end is None
    assert a[0].announced_on == date(2026, 1, 10)
    assert a[1].amount == Decimal("12345.67") and a[1].period_end == date(2025, 3, 31)
    assert a[1].tax_authority == "国家税务总局惠州市惠城区税务局"


@pytest.mark.parametrize("grade, published", [("E", "2026-04-20"), ("A", "2026/04/20")])
async def test_unknown_grade_or_unreadable_date_is_bad_source_data(database_url, grade, published):
    connector = await connector_over(TaxConnector, database_url, metadata, {
        ratings: [rating(A, 2025, grade, "91", published)],
    })
    await assert_bad_source_data(connector, "load_tax_ratings", [A])


async def test_demo_cases_produce_their_records(tmp_path):
    population = build_population(size=200, persons=20, today=date(2026, 11, 28))
    connector = await connector_over(
        TaxConnector, f"sqlite+aiosqlite:///{tmp_path / 'tax.db'}", metadata,
        dict(demo.tax.rows(population)),
    )
    show = population.showcase
    try:
        rated = await connector.load_tax_ratings(
            [show["tax_a"].uscc, show["tax_d"].uscc, show["clean"].uscc])
        (owed,) = await connector.load_tax_arrears([show["tax_arrears"].uscc])
        unrated = await connector.load_tax_ratings(
            [e.uscc for e in population.enterprises
             if e.entity_type == "9100" and not e.cases & {"tax_a", "tax_d"}])
    finally:
        await connector.aclose()
    assert demo.tax.latest_published_year(population.today) == 2025
    a, d, clean = rated
    assert [r.year for r in a] == [2025, 2024, 2023]
    assert a[0].grade is TaxCreditGrade.A and a[0].score >= 90
    assert a[0].published_on == date(2026, 4, 20)
    assert d[0].year == 2025 and d[0].grade is TaxCreditGrade.D
    assert len(clean) == 3  # showcases are companies
    assert all(r.published_on <= population.today for r in a + d + clean)
    assert owed and all(r.amount > 0 and r.announced_on <= population.today for r in owed)
    assert unrated and all(r == [] for r in unrated)
