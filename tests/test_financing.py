"""SME financing profiles: public parts for every bank, the others only with
the enterprise's authorization naming the bank, the purpose and the part's
data category, valid today; a failing source nulls its parts only."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from connectors import RECORD_TYPES
from resolvers.financing import MAX_PORTFOLIO, PART_RECORD_TYPES
from tests.gateway_fixtures import TODAY, Gateway, StatementCounter, with_source
from tests.test_audit_trail import audited, trail

ICBC = ("bank-icbc-huizhou", "FINANCING")
HZRCB = ("bank-hzrcb", "FINANCING")
RELEASE = "release { status reason dataCategory authorization asOf provenance { source } }"
PROFILE = f"""uscc asOf
  identity {{ {RELEASE} name registrationStatus divisionCode county ageMonths registeredCapital }}
  compliance {{ {RELEASE} activePenalties {{ minor general serious }}
    activeEnvironmentalPenalties abnormalOperationsListed seriousViolationListed
    dishonestDebtor blackListEntries }}
  tax {{ {RELEASE} ratings {{ year grade }} arrearsAnnounced arrearsAmount }}
  employment {{ {RELEASE} insuredHeadcount {{ period value }} monthsWithArrears }}
  housingFund {{ {RELEASE} contributingEmployees {{ period value }} monthsWithArrears }}
  utilities {{ {RELEASE} punctuality {{ utility billsDue onTimeRatio }}
    electricityUse {{ period value }} }}
  positiveSignals {{ {RELEASE} redListEntries keptCommitments taxGradeA
    yearsWithoutAdverseRecords threeYearsClean }}
  indicators {{ code value uses withheld }}"""
ONE = f"query($u: USCC!) {{ financingProfile(uscc: $u) {{ {PROFILE} }} }}"
MANY = f"query($u: [USCC!]!) {{ financingProfiles(usccs: $u) {{ {PROFILE} }} }}"
GATED = ("tax", "employment", "housingFund", "utilities")


def profile(gateway, case_or_code, population, as_=ICBC):
    code = population.showcase[case_or_code].uscc if case_or_code in population.showcase \
        else case_or_code
    body = gateway.query(ONE, as_, u=code)
    return body["data"]["financingProfile"], body.get("errors", [])


def indicators(found):
    return {i["code"]: i for i in found["indicators"]}


def test_a_clean_enterprise_with_a_valid_authorization(demo_settings, population):
    with Gateway(demo_settings) as gateway:
        found, errors = profile(gateway, "financing_authorized", population)
    assert errors == []
    firm = population.showcase["financing_authorized"]
    assert found["uscc"] == firm.uscc and found["asOf"] == TODAY.isoformat()
    assert found["identity"]["name"] == firm.name
    assert found["identity"]["divisionCode"] == firm.uscc[2:8]
    assert found["identity"]["county"].startswith("惠州市") or found["identity"]["county"] in (
        "博罗县", "惠东县", "龙门县")
    assert found["identity"]["ageMonths"] > 0
    compliance = found["compliance"]
    assert compliance["activePenalties"] == {"minor": 0, "general": 0, "serious": 0}
    assert (compliance["blackListEntries"], compliance["dishonestDebtor"]) == (0, False)
    for part in GATED:
        release = found[part]["release"]
        assert release["status"] == "AVAILABLE", part
        assert release["authorization"] and release["dataCategory"]
    assert len(found["employment"]["insuredHeadcount"]) == 12
    assert [r["year"] for r in found["tax"]["ratings"]] == sorted(
        (r["year"] for r in found["tax"]["ratings"]), reverse=True)
    assert found["positiveSignals"]["taxGradeA"] is not None
    values = indicators(found)
    assert not any(i["withheld"] for i in values.values())
    assert values["ACTIVE_ADVERSE_RECORDS"]["value"] == 0
    assert values["REGISTRATION_AGE_MONTHS"]["value"] == found["identity"]["ageMonths"]
    # Every part says where it comes from.
    assert {p["source"] for p in found["identity"]["release"]["provenance"]} == {"hz-market"}
    assert {p["source"] for p in found["tax"]["release"]["provenance"]} == {"hz-tax"}


@pytest.mark.parametrize(("case", "flag"), [
    ("black_list", ("compliance", "blackListEntries", 1)),
    ("dishonest_debtor", ("compliance", "dishonestDebtor", True)),
    ("abnormal_listed", ("compliance", "abnormalOperationsListed", True)),
    ("serious_violation_listed", ("compliance", "seriousViolationListed", True)),
])
def test_risky_enterprises_show_their_adverse_records(demo_settings, population, case, flag):
    part, field, expected = flag
    with Gateway(demo_settings) as gateway:
        found, errors = profile(gateway, case, population)
    assert errors == []
    assert found[part][field] == expected
    assert indicators(found)["ACTIVE_ADVERSE_RECORDS"]["value"] >= 1
    assert found["positiveSignals"]["yearsWithoutAdverseRecords"] is not None
    assert found["positiveSignals"]["threeYearsClean"] is False


def test_serious_penalties_count_while_in_window_and_unrepaired(demo_settings, population):
    with Gateway(demo_settings) as gateway:
        serious, _ = profile(gateway, "penalty_serious_in_window", population)
        repaired, _ = profile(gateway, "penalty_repaired", population)
        red, _ = profile(gateway, "red_list", population)
    assert serious["compliance"]["activePenalties"]["serious"] >= 1
    assert repaired["compliance"]["activePenalties"] == {"minor": 0, "general": 0, "serious": 0}
    assert red["positiveSignals"]["redListEntries"] == 1


def test_a_mixed_portfolio_answers_in_the_order_asked_with_each_authorization(
        demo_settings, population):
    cases = ["black_list", "financing_authorized", "clean", "financing_expired",
             "financing_authorized"]
    codes = [population.showcase[c].uscc for c in cases]
    with Gateway(demo_settings) as gateway:
        body = gateway.query(MANY, ICBC, u=codes)
    found = body["data"]["financingProfiles"]
    assert [p["uscc"] for p in found] == codes
    statuses = [p["tax"]["release"]["status"] for p in found]
    assert statuses[1] == statuses[4] == "AVAILABLE"
    assert statuses[3] == "WITHHELD"
    assert found[0]["compliance"]["blackListEntries"] == 1


@pytest.mark.parametrize(("case", "as_"), [
    ("financing_expired", ICBC),
    ("financing_revoked", ICBC),
    ("financing_authorized", HZRCB),  # granted to another bank
    ("clean", ICBC),  # no authorization at all
])
def test_without_a_valid_authorization_the_gated_parts_are_withheld(
        demo_settings, population, case, as_):
    with Gateway(demo_settings) as gateway:
        found, errors = profile(gateway, case, population, as_)
    assert errors == []  # withholding is not an error of the profile
    for part in GATED:
        assert found[part]["release"] == {
            "status": "WITHHELD", "reason": "NO_SUBJECT_AUTHORIZATION",
            "dataCategory": found[part]["release"]["dataCategory"], "authorization": None,
            "asOf": found[part]["release"]["asOf"], "provenance": []}
        assert all(v is None for k, v in found[part].items() if k != "release")
    assert found["identity"]["release"]["status"] == "AVAILABLE"
    assert found["positiveSignals"]["taxGradeA"] is None
    values = indicators(found)
    assert values["INSURED_HEADCOUNT_TREND"] == {**values["INSURED_HEADCOUNT_TREND"],
                                                  "value": None, "withheld": True}
    assert values["ACTIVE_ADVERSE_RECORDS"]["withheld"] is False


@pytest.fixture
def authorizations_of_clean(demo_settings, population, tmp_path):
    """The demo settings with a credit-office database holding, for the
    ``clean`` showcase (or the ``cases`` named), one more authorization of
    the kind the test names (each call adds one)."""
    office = next(s for s in demo_settings.sources if s.connector == "credit_office")
    database = Path(office.url.split("///", 1)[1])
    copy = tmp_path / "credit.db"
    shutil.copy(database, copy)

    def grant(cases=("clean",), **row):
        for case in cases:
            add(population.showcase[case].uscc, **row)
        return with_source(demo_settings, office.id, url=f"sqlite+aiosqlite:///{copy}")

    def add(code, **row):
        values = {"sqbh": f"SQ-TEST-{code}" if "sqbh" not in row else row.pop("sqbh"), "dm": code, "bsqjg_dm": "91441300MA4URFQ13W",
                  "bsqjg_mc": "中国工商银行股份有限公司惠州分行", "sqyt": "03",
                  "sjlb": "SW,SB", "qsrq": f"{TODAY - timedelta(days=30):%Y%m%d}",
                  "jzrq": f"{TODAY + timedelta(days=300):%Y%m%d}", "cxrq": None, **row}
        with sqlite3.connect(copy) as db:
            db.execute(f"INSERT INTO xy_sqxx ({', '.join(values)}) VALUES "
                       f"({', '.join('?' * len(values))})", list(values.values()))
    return grant


@pytest.mark.parametrize(("row", "tax", "employment"), [
    ({}, "AVAILABLE", "AVAILABLE"),
    ({"sjlb": "SW"}, "AVAILABLE", "WITHHELD"),  # social insurance not named
    ({"qsrq": f"{TODAY + timedelta(days=1):%Y%m%d}"}, "WITHHELD", "WITHHELD"),  # not yet valid
    ({"sqyt": "09"}, "WITHHELD", "WITHHELD"),  # granted for another purpose
    ({"jzrq": f"{TODAY - timedelta(days=1):%Y%m%d}"}, "WITHHELD", "WITHHELD"),  # expired
    ({"cxrq": f"{TODAY:%Y%m%d}"}, "WITHHELD", "WITHHELD"),  # revoked today
])
def test_each_part_needs_its_own_category_purpose_and_validity(
        authorizations_of_clean, population, row, tax, employment):
    settings = authorizations_of_clean(**row)
    with Gateway(settings) as gateway:
        found, errors = profile(gateway, "clean", population)
    assert errors == []
    assert found["tax"]["release"]["status"] == tax
    assert found["employment"]["release"]["status"] == employment
    if tax == "AVAILABLE":
        assert found["tax"]["release"]["authorization"].startswith("SQ-TEST")
    for part in ("housingFund", "utilities"):  # not named by these authorizations
        assert found[part]["release"]["status"] == "WITHHELD"


def test_housing_fund_and_utilities_show_arrears_late_bills_and_falling_use(
        authorizations_of_clean, population):
    cases = ("housing_fund_arrears", "utilities_late", "electricity_declining", "clean")
    settings = authorizations_of_clean(cases, sjlb="GJJ,SDQ")
    with Gateway(settings) as gateway:
        found = {case: profile(gateway, case, population)[0] for case in cases}
    values = {case: indicators(p) for case, p in found.items()}
    assert found["housing_fund_arrears"]["housingFund"]["monthsWithArrears"] >= 1
    assert values["housing_fund_arrears"]["HOUSING_FUND_ARREARS_MONTHS"]["value"] >= 1
    assert values["clean"]["HOUSING_FUND_ARREARS_MONTHS"]["value"] == 0
    assert values["utilities_late"]["UTILITY_ON_TIME_RATIO"]["value"] < 1
    assert values["clean"]["UTILITY_ON_TIME_RATIO"]["value"] == 1
    assert values["electricity_declining"]["ELECTRICITY_USE_TREND"]["value"] < -0.2
    electricity = found["electricity_declining"]["utilities"]["electricityUse"]
    assert len(electricity) == 12 and electricity[-1]["value"] < electricity[0]["value"]
    punctuality = {p["utility"]: p for p in found["utilities_late"]["utilities"]["punctuality"]}
    assert "ELECTRICITY" in punctuality and all(p["billsDue"] > 0 for p in punctuality.values())
    for profile_ in found.values():  # the parts not named stay withheld
        assert profile_["tax"]["release"]["status"] == "WITHHELD"


def test_other_purposes_may_not_ask_for_profiles(demo_settings, population):
    with Gateway(demo_settings) as gateway:
        body = gateway.post(ONE, ("hz-market-app", "SUPERVISION"),
                            u=population.showcase["clean"].uscc).json()
    assert body["data"]["financingProfile"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN_FOR_PURPOSE"


def test_unauthorized_parts_are_never_read(demo_settings, population):
    code = population.showcase["financing_expired"].uscc
    with Gateway(demo_settings) as gateway:
        counter = StatementCounter(gateway.registry)
        profile(gateway, code, population)
    tax_sources = {s.id for s in gateway.registry.serving("tax_ratings")}
    hrss_sources = {s.id for s in gateway.registry.serving("social_insurance")}
    assert all(counter.counts[s] == 0 for s in tax_sources | hrss_sources)


def test_a_source_down_nulls_its_parts_only(demo_settings, population, tmp_path):
    tax = next(s for s in demo_settings.sources if s.connector == "tax")
    settings = with_source(demo_settings, tax.id, url=f"sqlite+aiosqlite:///{tmp_path}/no/tax.db")
    with Gateway(settings) as gateway:
        found, errors = profile(gateway, "financing_authorized", population)
    assert found["tax"] is None
    assert found["employment"]["release"]["status"] == "AVAILABLE"
    assert found["identity"]["name"]
    paths = {tuple(e["path"]) for e in errors}
    assert ("financingProfile", "tax") in paths
    assert all(e["extensions"]["code"] == "SOURCE_UNAVAILABLE" for e in errors)


def test_the_authorization_used_goes_into_the_audit_record(demo_settings, population, tmp_path):
    settings = audited(demo_settings, f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
    with Gateway(settings) as gateway:
        found, _ = profile(gateway, "financing_authorized", population)
        profile(gateway, "financing_expired", population)
    granted, refused = (record.entry for record in trail(settings))
    number = found["tax"]["release"]["authorization"]
    assert f"enterprise_authorization:{number}" in granted.legal_basis
    assert "FinancingProfile.tax" in granted.released
    assert set(refused.denied) >= {"FinancingProfile.tax", "FinancingProfile.employment"}
    assert not any(b.startswith("enterprise_authorization:") for b in refused.legal_basis)


def test_a_portfolio_costs_a_constant_number_of_statements(demo_settings, population):
    authorized = population.showcase["financing_authorized"].uscc
    others = [e.uscc for e in population.enterprises if e.uscc != authorized]
    portfolios = ([authorized, *others[:19]], [authorized, *others[:MAX_PORTFOLIO - 1]])
    counts = []
    with Gateway(demo_settings) as gateway:
        counter = StatementCounter(gateway.registry)
        for codes in portfolios:
            before = dict(counter.counts)
            gateway.query(MANY, ICBC, u=codes)
            counts.append({s: n - before.get(s, 0) for s, n in counter.counts.items()})
    small, large = counts
    assert large == small
    # One statement per record type a source serves among those the parts
    # read, whatever the portfolio's size: with the authorizations, and the
    # credit repairs the gateway links to penalties (their publicity windows).
    read = {name for names in PART_RECORD_TYPES.values() for name in names} | {
        "authorizations", "repairs"}
    assert read <= set(RECORD_TYPES)
    for source_id, connector in gateway.registry.connectors.items():
        assert large.get(source_id, 0) == len(read & set(connector.record_types)), source_id


def test_a_portfolio_over_the_limit_is_refused(demo_settings, population):
    code = population.showcase["clean"].uscc
    with Gateway(demo_settings) as gateway:
        body = gateway.post(MANY, ICBC, u=[code] * (MAX_PORTFOLIO + 1)).json()
    assert body["errors"][0]["extensions"]["code"] in ("INVALID_INPUT", "BAD_USER_INPUT")
    assert str(MAX_PORTFOLIO) in body["errors"][0]["message"]
