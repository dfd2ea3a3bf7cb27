"""The synthetic population and the demo databases built from it."""

from __future__ import annotations

from datetime import date

import pytest

from demo.generate import create_demo_data
from demo.population import CASES, HUIZHOU_DIVISIONS, PERSON_CASES, build_population
from gateway.codes import validate_resident_id, validate_uscc
from gateway.settings import load_settings

TODAY = date(2026, 11, 28)


def test_population_is_deterministic_and_codes_are_valid():
    first = build_population(300, 50, today=TODAY)
    again = build_population(300, 50, today=TODAY)
    assert first.enterprises == again.enterprises and first.persons == again.persons
    assert len({e.uscc for e in first.enterprises}) == 300
    for enterprise in first.enterprises:
        assert validate_uscc(enterprise.uscc) == enterprise.uscc
        assert enterprise.division in HUIZHOU_DIVISIONS
        assert enterprise.uscc[2:8] == enterprise.division
    for person in first.persons:
        assert validate_resident_id(person.id_number) == person.id_number
        assert person.id_number[6:14] == f"{person.birth_date:%Y%m%d}"
        assert (int(person.id_number[16]) % 2 == 1) == (person.sex == "男")


def test_every_case_has_a_showcase():
    population = build_population(100, 20, today=TODAY)
    assert set(population.showcase) == set(CASES)
    assert population.showcase["clean"].cases == frozenset()
    for case, enterprise in population.showcase.items():
        if case != "clean":
            assert enterprise.cases == {case}
    assert set(population.person_showcase) == set(PERSON_CASES)


def test_too_small_a_population_is_refused():
    with pytest.raises(ValueError, match="at least"):
        build_population(5, 20)


def test_demo_data_is_created_once_and_reused(tmp_path):
    config = create_demo_data(tmp_path, size=40, persons=10, today=TODAY)
    settings = load_settings(config, env={})
    assert {s.id for s in settings.sources} == {
        "hz-market", "hz-tax", "hz-court", "hz-hrss", "hz-environment", "hz-credit",
    }
    assert settings.graphiql is True
    databases = sorted(p.name for p in tmp_path.glob("*.db"))
    assert len(databases) == 6
    stamp = (tmp_path / "market.db").stat().st_mtime_ns
    assert create_demo_data(tmp_path, size=40, persons=10, today=TODAY) == config
    assert (tmp_path / "market.db").stat().st_mtime_ns == stamp
    create_demo_data(tmp_path, size=41, persons=10, today=TODAY)
    assert (tmp_path / "market.db").stat().st_mtime_ns != stamp
