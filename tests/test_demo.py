"""The synthetic population and the demo databases built from it."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import pkgutil
import re
import sqlite3
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

import demo as demo_package
from connectors import CONNECTORS, RECORD_TYPES
from connectors.court import dishonest_debtors
from connectors.credit_office import credit_lists, licences, penalties, repairs
from connectors.environment import penalties as environment_penalties
from connectors.market import ABNORMAL_REASONS, abnormal_operations, serious_violations
from demo import court, credit_office, dongguan, environment, market
from demo.dongguan import create_dongguan_app
from demo.department import DemoDepartment, discover_departments
from demo.federation import PARTNER_CLIENT_ID, gateway_with_token_endpoint, partner_sources_text
from demo.generate import create_demo_data, demo_sources
from demo.population import (
    CASES,
    CITIES,
    HUIZHOU_DIVISIONS,
    PERSON_CASES,
    VISITING_SHOWCASES,
    build_population,
    with_visitors,
)
from core.codes import organization_code_problem, validate_resident_id, validate_uscc
from gateway.settings import load_settings
from gateway.sources import SourceRegistry
from tests.connectors.http_server import LiveServer
from tests.gateway_fixtures import Gateway

TODAY = date(2026, 11, 28)


def assert_both_checks(code: str) -> None:
    """``code`` is a valid USCC whose organization code (positions 9-17) is valid too."""
    assert validate_uscc(code) == code
    assert organization_code_problem(code) is None, code


def shenzhen_with_huizhou_visitors(size: int = 120, persons: int = 30):
    huizhou = build_population(300, 50, today=TODAY)
    return huizhou, with_visitors(build_population(size, persons, today=TODAY, city="shenzhen"),
                                  huizhou)


def test_population_is_deterministic_and_codes_are_valid():
    first = build_population(300, 50, today=TODAY)
    again = build_population(300, 50, today=TODAY)
    assert first.enterprises == again.enterprises and first.persons == again.persons
    assert len({e.uscc for e in first.enterprises}) == 300
    for enterprise in first.enterprises:
        assert_both_checks(enterprise.uscc)
        assert enterprise.division in HUIZHOU_DIVISIONS
        assert enterprise.uscc[2:8] == enterprise.division
    for person in first.persons:
        assert validate_resident_id(person.id_number) == person.id_number
        assert person.id_number[6:14] == f"{person.birth_date:%Y%m%d}"
        assert (int(person.id_number[16]) % 2 == 1) == (person.sex == "男")


def test_every_case_has_a_showcase():
    population = build_population(100, 20, today=TODAY)
    departments = discover_departments()
    assert set(population.showcase) == set(CASES).union(*(d.cases for d in departments))
    assert population.showcase["clean"].cases == frozenset()
    for case, enterprise in population.showcase.items():
        if case != "clean":
            assert enterprise.cases == {case}
    assert set(population.person_showcase) == set(PERSON_CASES).union(
        *(d.person_cases for d in departments))
    for case, person in population.person_showcase.items():
        assert person.cases == {case}


def _supplies_rows(module) -> bool:
    return isinstance(getattr(module, "metadata", None), sa.MetaData) and callable(
        getattr(module, "rows", None))


def test_discovery_finds_every_demo_department_module():
    """Every module of ``demo`` that supplies legacy tables and their rows
    declares a department, and only those; each fills its connector's tables."""
    modules = [importlib.import_module(f"demo.{m.name}")
               for m in pkgutil.iter_modules(demo_package.__path__) if m.name != "__main__"]
    departments = discover_departments()
    assert [d.module for d in departments] == sorted(
        m.__name__ for m in modules if _supplies_rows(m))
    assert all(m.DEPARTMENT in departments for m in modules if hasattr(m, "DEPARTMENT"))
    for department in departments:
        connector = CONNECTORS[department.connector]  # a registered connector kind
        assert department.metadata is importlib.import_module(connector.__module__).metadata
        assert "惠州" in department.department  # other cities replace it by their name
    for city in ("huizhou", "shenzhen"):
        ids = [s.source_id for s in demo_sources(city)]
        assert len(set(ids)) == len(ids) == len(departments)


@pytest.mark.parametrize("city", ["huizhou", "shenzhen"])
def test_the_generated_sources_serve_every_record_type(tmp_path, city):
    config = create_demo_data(tmp_path, size=40, persons=10, today=TODAY, city=city,
                              neighbour=build_population(40, 10, today=TODAY))
    settings = load_settings(config, env={})
    expected = demo_sources(city)
    assert [s.id for s in settings.sources] == [s.source_id for s in expected]
    assert [s.department for s in settings.sources] == [s.department_name for s in expected]
    assert all(s.connector in CONNECTORS for s in settings.sources)
    registry = SourceRegistry.from_settings(settings)
    try:
        local = {name for name, sources in registry.by_record_type.items()
                 if any(not source.is_partner for source in sources)}
        assert set(RECORD_TYPES) <= local
    finally:
        asyncio.run(registry.aclose())


def test_a_department_s_own_cases_get_showcases_and_leave_the_rest_as_it_was():
    new = DemoDepartment(module="demo.new_department", source="new", connector="market",
                         department="惠州市新局", database="new",
                         cases={"new_case": 0.2}, person_cases={"person_new_case": 0.2})
    before = build_population(300, 50, today=TODAY)
    after = build_population(300, 50, today=TODAY, departments=(*discover_departments(), new))
    again = build_population(300, 50, today=TODAY, departments=(*discover_departments(), new))
    assert (after.enterprises, after.persons) == (again.enterprises, again.persons)
    showcase, person_showcase = len(before.showcase), len(before.person_showcase)
    assert after.showcase["new_case"] is after.enterprises[showcase]
    assert after.showcase["new_case"].cases == {"new_case"}
    assert after.person_showcase["person_new_case"] is after.persons[person_showcase]
    assert after.person_showcase["person_new_case"].cases == {"person_new_case"}
    assert {case: e.uscc for case, e in before.showcase.items()} == {
        case: e.uscc for case, e in after.showcase.items() if case != "new_case"}
    for index, (old, now) in enumerate(zip(before.enterprises, after.enterprises)):
        if index != showcase:
            assert (old.uscc, old.name, old.legal_representative.id_number) == (
                now.uscc, now.name, now.legal_representative.id_number)
            assert now.cases - {"new_case"} == old.cases
    for index, (old, now) in enumerate(zip(before.persons, after.persons)):
        assert (old.id_number, old.name) == (now.id_number, now.name)
        if index != person_showcase:
            assert now.cases - {"person_new_case"} == old.cases
    assert sum("new_case" in e.cases for e in after.enterprises) > 20
    assert sum("person_new_case" in p.cases for p in after.persons) > 3
    listed = dataclasses.replace(new, cases={"tax_a": 0.1})
    with pytest.raises(ValueError, match="tax_a"):
        build_population(300, 50, today=TODAY, departments=(listed,))
    with pytest.raises(ValueError, match="two departments"):
        build_population(300, 50, today=TODAY, departments=(new, dataclasses.replace(new, source="x")))


def test_too_small_a_population_is_refused():
    with pytest.raises(ValueError, match="at least"):
        build_population(5, 20)


def test_demo_data_is_created_once_and_reused(tmp_path):
    config = create_demo_data(tmp_path, size=40, persons=10, today=TODAY)
    settings = load_settings(config, env={})
    assert [s.id for s in settings.sources] == [
        d.source_id("hz") for d in discover_departments()]
    assert settings.graphiql is True
    databases = sorted(p.name for p in tmp_path.glob("*.db"))
    assert databases == sorted(f"{d.database}.db" for d in discover_departments())
    stamp = (tmp_path / "market.db").stat().st_mtime_ns
    assert create_demo_data(tmp_path, size=40, persons=10, today=TODAY) == config
    assert (tmp_path / "market.db").stat().st_mtime_ns == stamp
    create_demo_data(tmp_path, size=41, persons=10, today=TODAY)
    assert (tmp_path / "market.db").stat().st_mtime_ns != stamp


def test_every_demo_code_passes_both_checks():
    huizhou, shenzhen = shenzhen_with_huizhou_visitors()
    dongguan_population = build_population(300, 50, today=TODAY, city="dongguan")
    for population in (huizhou, shenzhen, dongguan_population):
        assert population.enterprises
        for enterprise in population.enterprises + population.visitors:
            assert_both_checks(enterprise.uscc)
            assert enterprise.uscc[2:8] == enterprise.division
    # The organs' codes: each city's distinct, of the city's division.
    organ_codes = {}
    for key, city in CITIES.items():
        organs = credit_office.city_organs(city)
        codes = [code for _, code, _ in organs.values()]
        assert len(set(codes)) == len(codes) == len(organs)
        organ_codes[key] = set(codes)
        for code in codes:
            assert_both_checks(code)
            assert code[:2] == "11" and code[2:8] == city.divisions[0]
    dongguan_codes = [code for code, _ in dongguan._ORGANS.values()]
    assert len(set(dongguan_codes)) == len(dongguan_codes)
    for code in dongguan_codes:
        assert_both_checks(code)
        assert code[:8] == "11441900"
    assert set(dongguan_codes) <= organ_codes["dongguan"]  # the same organ, the same code
    assert not organ_codes["huizhou"] & organ_codes["shenzhen"]
    bank_codes = [code for code, _ in credit_office.BANKS.values()]
    for code in bank_codes:
        assert_both_checks(code)
    assert len(set(bank_codes)) == len(bank_codes)
    assert not set(bank_codes) & organ_codes["huizhou"]
    # ... and every code the generated records carry.
    for population in (huizhou, shenzhen):
        rows = dict(credit_office.rows(population))
        persons = {p.id_number for p in population.persons}
        for row in rows[penalties]:
            if row["xdr_dm"] not in persons:
                assert_both_checks(row["xdr_dm"])
            assert_both_checks(row["cfjgdm"])
        for row in rows[licences]:
            assert_both_checks(row["xkjgdm"])
    held = create_dongguan_app(clients={}, huizhou_usccs=[e.uscc for e in huizhou.enterprises],
                               size=80, today=TODAY).state.data
    for code, rows in held.penalties.items():
        assert_both_checks(code)
        for row in rows:
            assert_both_checks(row["cfjgdm"])


SHENZHEN_NUMBER = re.compile(r"^深[^〔惠]+罚〔\d{4}〕\d+号$")


def test_shenzhen_records_name_shenzhen_organs_and_decision_numbers():
    huizhou, shenzhen = shenzhen_with_huizhou_visitors()
    organs = {name: code for name, code, _ in credit_office.city_organs(shenzhen.city).values()}
    rows = dict(credit_office.rows(shenzhen))
    assert rows[penalties]
    for row in rows[penalties]:
        assert SHENZHEN_NUMBER.match(row["cfjdsh"]), row["cfjdsh"]
        assert row["cfjg"] in organs and row["cfjgdm"] == organs[row["cfjg"]]
        assert row["cfjgdm"][2:6] == "4403" and row["sjly"] == row["cfjg"]
    numbers = [row["cfjdsh"] for row in rows[penalties]]
    assert any(n.startswith(f"深市监罚〔{TODAY.year}〕") for n in numbers)
    for row in rows[licences]:
        assert row["xkjg"] in organs and row["xkjgdm"] == organs[row["xkjg"]]
        assert row["xkwsh"].startswith("深") and "惠" not in (row["xkbh"] or "")
    for row in rows[credit_lists]:
        assert row["rdjg"] in organs and "惠州" not in row["mdmc"]
    assert {row["xfjg"] for row in rows[repairs]} == {"深圳市发展和改革委员会"}
    for row in dict(environment.rows(shenzhen))[environment_penalties]:
        assert row["cfwh"].startswith("深环（") and row["cfjg"] == "深圳市生态环境局"
    for row in dict(court.rows(shenzhen))[dishonest_debtors]:
        assert row["zxfy"].startswith("深圳市") and "惠" not in row["ah"] + row["zxyjwh"]
    for row in dict(market.rows(shenzhen))[serious_violations]:
        assert row["lrjg"] == "深圳市市场监督管理局"
    # Huizhou's own records keep Huizhou's organs.
    for row in dict(credit_office.rows(huizhou))[penalties]:
        assert row["cfjdsh"].startswith("惠") and row["cfjgdm"][2:8] == "441300"


def test_shenzhen_holds_records_about_some_huizhou_firms():
    huizhou, shenzhen = shenzhen_with_huizhou_visitors()
    huizhou_codes = {e.uscc for e in huizhou.enterprises}
    rows = dict(credit_office.rows(shenzhen))
    fined = {row["xdr_dm"] for row in rows[penalties]} & huizhou_codes
    debtors = {row["zjhm"] for row in dict(court.rows(shenzhen))[dishonest_debtors]} & huizhou_codes
    assert len(fined) >= 5 and len(debtors) >= 5
    assert {v.uscc for v in shenzhen.visitors} == fined | debtors
    assert huizhou.showcase["penalty_general_in_window"].uscc in fined
    assert huizhou.showcase["dishonest_debtor"].uscc in debtors
    assert set(VISITING_SHOWCASES) == {"penalty_general_in_window", "dishonest_debtor"}
    # Only penalties and enforcement cases: no registration, licence or list.
    assert not {row["xdr_dm"] for row in rows[licences]} & huizhou_codes
    assert not {row["dm"] for row in rows[credit_lists]} & huizhou_codes
    registered = {row["tyshxydm"] for table, table_rows in market.rows(shenzhen)
                  for row in table_rows}
    assert not registered & huizhou_codes
    # The merged case: the Huizhou showcase's own penalty and Shenzhen's.
    showcase = huizhou.showcase["penalty_general_in_window"].uscc
    huizhou_numbers = [row["cfjdsh"] for row in dict(credit_office.rows(huizhou))[penalties]
                       if row["xdr_dm"] == showcase]
    shenzhen_numbers = [row["cfjdsh"] for row in rows[penalties] if row["xdr_dm"] == showcase]
    assert huizhou_numbers[0].startswith("惠") and shenzhen_numbers[0].startswith("深")
    # Deterministic, and the same Huizhou firm gets the same cases whatever the sizes.
    _, again = shenzhen_with_huizhou_visitors()
    assert again.visitors == shenzhen.visitors
    assert dict(credit_office.rows(again))[penalties] == rows[penalties]
    bigger = with_visitors(build_population(150, 30, today=TODAY, city="shenzhen"),
                           build_population(400, 50, today=TODAY))
    assert bigger.visitors[:len(shenzhen.visitors)] == shenzhen.visitors


def test_shenzhen_demo_data_holds_the_given_huizhou_firms(tmp_path):
    huizhou = build_population(60, 20, today=TODAY)
    create_demo_data(tmp_path, size=40, persons=10, today=TODAY, city="shenzhen",
                     neighbour=huizhou)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["visitors_from"] == ["惠州", 60, 20, 441300]
    with sqlite3.connect(tmp_path / "credit_office.db") as db:
        fined = {code for (code,) in db.execute("SELECT xdr_dm FROM xy_xzcf")}
    with sqlite3.connect(tmp_path / "court.db") as db:
        debtors = {code for (code,) in db.execute("SELECT zjhm FROM fy_sxbzxr")}
    assert huizhou.showcase["penalty_general_in_window"].uscc in fined
    assert huizhou.showcase["dishonest_debtor"].uscc in debtors
    # Another Huizhou population is another data set.
    stamp = (tmp_path / "credit_office.db").stat().st_mtime_ns
    create_demo_data(tmp_path, size=40, persons=10, today=TODAY, city="shenzhen",
                     neighbour=build_population(61, 20, today=TODAY))
    assert (tmp_path / "credit_office.db").stat().st_mtime_ns != stamp


MERGED = """query($u: [USCC!]!) { entities(usccs: $u) { uscc
  penalties { decisionNumber issuingOrgan provenance { source city } }
  dishonestDebtorRecords { caseCode enforcementCourt provenance { source city } } } }"""


def test_huizhou_merges_shenzhen_records_about_its_firms(demo_settings, population, tmp_path):
    """The demo's federated Huizhou gateway lists Shenzhen's records beside its own."""
    secret = "merged-case-secret-0123456789"
    sz_config = create_demo_data(tmp_path / "shenzhen", size=40, persons=10, city="shenzhen",
                                 neighbour=population)
    shenzhen = gateway_with_token_endpoint(load_settings(sz_config, env={}),
                                           {PARTNER_CLIENT_ID: secret})
    huizhou_config = Path(demo_settings.auth.jwks_file).with_name("gateway.toml")
    federated = huizhou_config.with_name(f"merged-{tmp_path.name}.toml")
    fined = population.showcase["penalty_general_in_window"].uscc
    indebted = population.showcase["dishonest_debtor"].uscc
    with LiveServer(shenzhen, lifespan="on") as server:
        partners = partner_sources_text(server.url, "http://127.0.0.1:9", secret,
                                        timeout_seconds=10)
        federated.write_text(huizhou_config.read_text(encoding="utf-8") + "\n" + partners,
                             encoding="utf-8")
        settings = load_settings(federated, env={})
        settings = dataclasses.replace(settings, audit=demo_settings.audit, sources=tuple(
            s for s in settings.sources if s.id != "dg-gateway"))
        with Gateway(settings) as gateway:
            body = gateway.query(MERGED, u=[fined, indebted])
    assert "errors" not in body, body["errors"]
    first, second = body["data"]["entities"]
    assert {p["provenance"]["city"] for p in first["penalties"]} == {"惠州", "深圳"}
    assert any(p["decisionNumber"].startswith("深") and p["issuingOrgan"].startswith("深圳市")
               for p in first["penalties"] if p["provenance"]["source"] == "sz-gateway")
    assert {d["provenance"]["city"] for d in second["dishonestDebtorRecords"]} == {"惠州", "深圳"}
    assert any(d["enforcementCourt"].startswith("深圳市")
               for d in second["dishonestDebtorRecords"] if d["provenance"]["city"] == "深圳")


def test_removal_reasons_follow_the_listing_ground():
    assert set(market.REMOVAL_REASONS) == set(ABNORMAL_REASONS)  # the four grounds
    reasons = [set(r) for r in market.REMOVAL_REASONS.values()]
    assert all(reasons) and sum(map(len, reasons)) == len(set().union(*reasons))  # disjoint
    population = build_population(1000, 50, today=TODAY)
    rows = dict(market.rows(population))[abnormal_operations]
    removed = [row for row in rows if row["ycrq"]]
    assert removed and {row["lryy"] for row in removed} == set(ABNORMAL_REASONS)
    for row in rows:
        if row["ycrq"]:
            assert row["ycyy"] in market.REMOVAL_REASONS[row["lryy"]], row
            assert row["ycjg"]
        else:
            assert row["ycyy"] is None and row["ycjg"] is None
    assert rows == dict(market.rows(build_population(1000, 50, today=TODAY)))[abnormal_operations]
