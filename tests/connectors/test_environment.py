"""The environment connector maps grade codes and compact dates into ratings and penalties."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

import demo.environment
from connectors.environment import EnvironmentConnector, metadata, penalties, ratings
from demo.population import build_population
from core.codes import complete_uscc
from core.records.environment import EnvironmentalCreditGrade as Grade
from tests.connectors.legacy_db import assert_bad_source_data, connector_over

pytestmark = pytest.mark.anyio


A = complete_uscc("91441302MA4W0K3X1")
B = "91441300195971850Y"
MISSING = complete_uscc("91441303MA4W0K3X2")
ORGAN = "惠州市生态环境局"


def rating(code: str, year: int, grade: str):
    return {"qydm": code, "pjnd": year, "pjdj": grade, "pjjg": ORGAN}


def penalty(code: str, number: str, decided: str, fine: Decimal | None):
    return {"qydm": code, "cfwh": number, "wfxw": "超过大气污染物排放标准排放大气污染物",
            "cfnr": "责令改正违法行为，罚款", "fkje": fine, "cfrq": decided, "cfjg": ORGAN}


async def test_ratings_map_every_grade_code_newest_year_first(database_url):
    connector = await connector_over(EnvironmentConnector, database_url, metadata, {
        ratings: [rating(A, 2021, "1"), rating(A, 2023, "3"), rating(A, 2025, "5"),
                  rating(A, 2022, "2"), rating(A, 2024, "4"), rating(B, 2025, "2")],
    })
    try:
        b, missing, a = await connector.load_environmental_ratings([B, MISSING, A])
    finally:
        await connector.aclose()
    assert missing == []
    assert [(r.year, r.grade) for r in a] == [
        (2025, Grade.BLACK), (2024, Grade.RED), (2023, Grade.YELLOW),
        (2022, Grade.BLUE), (2021, Grade.GREEN),
    ]
    assert a[0].rated_by == ORGAN and a[0].provenance.source == "test-source"
    assert [(r.year, r.grade) for r in b] == [(2025, Grade.BLUE)]


async def test_penalties_are_mapped_newest_first(database_url):
    connector = await connector_over(EnvironmentConnector, database_url, metadata, {
        penalties: [
            penalty(A, "惠市环（博罗）罚〔2024〕45号", "20240828", Decimal("41.75")),
            penalty(A, "惠市环（博罗）罚〔2025〕3号", "20250105", None),
        ],
    })
    try:
        a, b = await connector.load_environmental_penalties([A, B])
    finally:
        await connector.aclose()
    assert b == []
    assert [p.decision_number for p in a] == ["惠市环（博罗）罚〔2025〕3号", "惠市环（博罗）罚〔2024〕45号"]
    assert a[0].decided_on == date(2025, 1, 5) and a[0].fine is None
    assert a[1].decided_on == date(2024, 8, 28) and a[1].fine == Decimal("41.75")
    assert a[1].violation == "超过大气污染物排放标准排放大气污染物"
    assert a[1].penalty == "责令改正违法行为，罚款" and a[1].decided_by == ORGAN


async def test_unknown_grade_code_is_bad_source_data(database_url):
    connector = await connector_over(EnvironmentConnector, database_url, metadata, {
        ratings: [rating(A, 2025, "6")],
    })
    await assert_bad_source_data(connector, "load_environmental_ratings", [A])


async def test_demo_cases_produce_their_records(tmp_path):
    population = build_population(size=60, persons=20, today=date(2026, 11, 28))
    connector = await connector_over(
        EnvironmentConnector, f"sqlite+aiosqlite:///{tmp_path / 'environment.db'}", metadata,
        dict(demo.environment.rows(population)),
    )
    show = population.showcase
    never = [e for e in population.enterprises
             if e.industry not in demo.environment.INDUSTRIAL and not e.cases & {
                 "environment_black", "environment_penalty", "environment_penalty_repaired"}]
    try:
        (black,) = await connector.load_environmental_ratings([show["environment_black"].uscc])
        (penalized,) = await connector.load_environmental_penalties(
            [show["environment_penalty"].uscc])
        unrated = await connector.load_environmental_ratings([e.uscc for e in never])
        unpunished = await connector.load_environmental_penalties([e.uscc for e in never])
    finally:
        await connector.aclose()
    assert demo.environment.latest_rated_year(population.today) == 2025
    assert [r.year for r in black] == [2025, 2024, 2023] and black[0].grade is Grade.BLACK
    assert penalized and all(p.fine > 0 and p.decided_on < population.today for p in penalized)
    assert [p.decided_on for p in penalized] == sorted((p.decided_on for p in penalized), reverse=True)
    assert never and all(r == [] for r in unrated) and all(p == [] for p in unpunished)
