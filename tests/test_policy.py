"""The policy catalog and the decision: every purpose against every data item,
row rule and mask of the shipped catalog, table-driven."""

from __future__ import annotations

import copy
import tomllib
from datetime import date, timedelta
from types import SimpleNamespace

import pytest

from connectors import RECORD_TYPES
from gateway.catalog import DEFAULT_CATALOG, load_catalog, parse_catalog
from core.errors import ConfigurationError
from gateway.policy import explain
from gateway.policy import add_months
from core.records.credit_office import CreditListKind, FulfilmentStatus, RepairStatus, Severity
from core.records.environment import EnvironmentalCreditGrade
from core.records.tax import TaxCreditGrade
from gateway.schema import build_policy

PURPOSES = ["PUBLIC_DISCLOSURE", "LICENSING_REVIEW", "JOINT_PUNISHMENT", "INCENTIVE_REVIEW",
            "FINANCING", "PROCUREMENT_REVIEW", "SUPERVISION", "CREDIT_REPAIR_REVIEW",
            "SELF_INQUIRY", "AUDIT"]

# A = allowed, Z = allowed only with the subject's authorization, - = denied.
# Columns follow PURPOSES: PD LR JP IR FI PR SU CR SI AU
ITEM_ACCESS = {
    "lookup":                  "AAAAAAAAAA",
    "access_info":             "AAAAAAAAAA",
    "provenance":              "AAAAAAAAAA",
    "registration":            "AAAAAAAAAA",
    "legal_representative_id": "-AA--AAA--",
    "abnormal_operations":     "AA--AAAAA-",
    "serious_violations":      "AAAAAAAAA-",
    "licences":                "AA--AAAAA-",
    "penalties":               "AA-AAAAAA-",
    "person_penalties":        "-A---AAA--",
    "tax_ratings":             "AAAAZAAAA-",
    "tax_arrears":             "-AA-ZAAAA-",
    "dishonest_debtors":       "AAAAAAAAA-",
    "debtor_id_number":        "AAA-AAAA--",
    "person_identity":         "AAAAAAAAAA",
    "legal_representative_of": "-AA--AAA--",
    "social_insurance":        "-A--ZAA-A-",
    "housing_fund":            "----Z-A-A-",
    "utilities":               "----Z-A-A-",
    "environmental_ratings":   "-AAAZAAAA-",
    "environmental_penalties": "AA--AAAAA-",
    "credit_lists":            "AAAAAAAAA-",
    "commitments":             "-A-A--AAA-",
    "repairs":                 "------AAA-",
    "access_history":          "--------AA",
    "audit_trail":             "---------A",
    "audit_proofs":            "--------AA",
    "financing_profile":       "----A-----",
    "financing_tax":           "----Z-----",
    "financing_employment":    "----Z-----",
    "financing_housing_fund":  "----Z-----",
    "financing_utilities":     "----Z-----",
    "saved_views":             "AAAAAAAAAA",
}
MASKED_FIELDS = {"Registration.legalRepresentativeIdNumber",
                 "DishonestDebtorRecord.subjectIdNumber", "Person.idNumber"}
FULL_NUMBER_PURPOSES = {"JOINT_PUNISHMENT", "CREDIT_REPAIR_REVIEW"}

TODAY = date(2026, 11, 28)


def days_ago(n: int) -> date:
    return TODAY - timedelta(days=n)


@pytest.fixture(scope="module")
def policy():
    return build_policy(load_catalog())


def test_the_shipped_catalog_decides_every_field_of_the_schema(policy):
    assert list(policy.catalog.purposes) == PURPOSES
    assert set(policy.catalog.items) == set(ITEM_ACCESS)
    # So ITEM_ACCESS covers every field a record type serves (connectors.RECORD_TYPES).
    served = {f"{key.owner}.{rt.field}" for rt in RECORD_TYPES.values() for key in rt.fields}
    assert served and served <= {c for item in policy.catalog.items.values() for c in item.fields}


LEGAL_BASES = {"PUBLIC_DISCLOSURE": "public_information", "FINANCING": "public_information",
               "SELF_INQUIRY": "data_subject_request"}


@pytest.mark.parametrize("purpose", PURPOSES)
def test_purposes_carry_their_legal_basis_and_subject_binding(policy, purpose):
    declared = policy.catalog.purposes[purpose]
    assert declared.legal_basis == LEGAL_BASES.get(purpose, "statutory_duty")
    assert declared.own_subject_only == (purpose == "SELF_INQUIRY")


@pytest.mark.parametrize("purpose", PURPOSES)
@pytest.mark.parametrize("item_id", sorted(ITEM_ACCESS))
def test_item_access_per_purpose(policy, item_id, purpose):
    expected = ITEM_ACCESS[item_id][PURPOSES.index(purpose)]
    decision = policy.decisions[purpose]
    for coordinate in policy.catalog.items[item_id].fields:
        access = ("A" if coordinate in decision.allowed
                  else "Z" if coordinate in decision.authorized else "-")
        assert access == expected, f"{coordinate} for {purpose}"
        assert decision.permits(coordinate) == (expected != "-")


@pytest.mark.parametrize("purpose", PURPOSES)
def test_resident_ids_are_masked_unless_the_purpose_needs_the_full_number(policy, purpose):
    decision = policy.decisions[purpose]
    for coordinate in MASKED_FIELDS:
        if not decision.permits(coordinate):
            continue
        mask = decision.masks.get(coordinate)
        if purpose in FULL_NUMBER_PURPOSES:
            assert mask is None
        else:
            assert mask.apply("11010519491231002X") == "110105********002X"
    assert not set(decision.masks) - MASKED_FIELDS


def test_financing_gates_authorized_fields_by_category(policy):
    decision = policy.decisions["FINANCING"]
    assert decision.authorization_by_field == {
        ("Entity", "tax_ratings"): "tax", ("Entity", "tax_arrears"): "tax",
        ("Entity", "social_insurance"): "social_insurance",
        ("Entity", "environmental_ratings"): "environment",
        ("Entity", "housing_fund"): "housing_fund", ("Entity", "utility_bills"): "utilities",
    }
    assert all(not d.authorization_by_field
               for p, d in policy.decisions.items() if p != "FINANCING")


def penalty(severity: Severity, decided_days_ago: int, repaired: bool = False):
    return SimpleNamespace(severity=severity, decided_on=days_ago(decided_days_ago),
                           repaired_on=days_ago(1) if repaired else None)


PENALTIES = {
    "minor_recent": penalty(Severity.MINOR, 30),
    "minor_old": penalty(Severity.MINOR, 120),
    "general_recent": penalty(Severity.GENERAL, 100),
    "general_old": penalty(Severity.GENERAL, 400),
    "serious_2y": penalty(Severity.SERIOUS, 730),
    "serious_4y": penalty(Severity.SERIOUS, 1500),
    "general_repaired": penalty(Severity.GENERAL, 150, repaired=True),
}
LISTINGS = {
    "active": SimpleNamespace(removed_on=None, expires_on=days_ago(-300), kind=CreditListKind.BLACK),
    "removed": SimpleNamespace(removed_on=days_ago(10), expires_on=days_ago(-300), kind=CreditListKind.BLACK),
    "expired": SimpleNamespace(removed_on=None, expires_on=days_ago(5), kind=CreditListKind.BLACK),
    "red": SimpleNamespace(removed_on=None, expires_on=None, kind=CreditListKind.RED),
}
RATINGS = {grade.name: SimpleNamespace(grade=grade) for grade in TaxCreditGrade}
GREEN_CARDS = {grade.name: SimpleNamespace(grade=grade) for grade in EnvironmentalCreditGrade}
COMMITMENTS = {status.name: SimpleNamespace(fulfilment=status) for status in FulfilmentStatus}
SHARED_PENALTIES = {"minor_recent", "general_recent", "serious_2y"}

# record type -> purpose -> records kept (purposes not listed keep what "*" says);
# purposes that may not use the list at all are checked to have no filter.
ROW_OUTCOMES = {
    "penalties": (PENALTIES, {
        "PUBLIC_DISCLOSURE": {"general_recent", "serious_2y"},
        "CREDIT_REPAIR_REVIEW": set(PENALTIES),
        "*": SHARED_PENALTIES,
    }),
    "credit_lists": (LISTINGS, {
        "JOINT_PUNISHMENT": {"active"},
        "INCENTIVE_REVIEW": {"red"},
        "CREDIT_REPAIR_REVIEW": set(LISTINGS),
        "*": {"active", "red"},
    }),
    "dishonest_debtors": (LISTINGS, {
        "CREDIT_REPAIR_REVIEW": set(LISTINGS),
        "*": {"active", "red"},
    }),
    "tax_ratings": (RATINGS, {
        "PUBLIC_DISCLOSURE": {"A", "D"},
        "JOINT_PUNISHMENT": {"D"},
        "INCENTIVE_REVIEW": {"A"},
        "PROCUREMENT_REVIEW": {"D"},
        "*": set(RATINGS),
    }),
    "commitments": (COMMITMENTS, {"INCENTIVE_REVIEW": {"KEPT"}, "*": set(COMMITMENTS)}),
    # Red and black cards face joint punishment, green cards incentives.
    "environmental_ratings": (GREEN_CARDS, {
        "JOINT_PUNISHMENT": {"RED", "BLACK"},
        "INCENTIVE_REVIEW": {"GREEN"},
        "*": set(GREEN_CARDS),
    }),
}
# record type -> the Entity field serving it (its declaration in connectors.RECORD_TYPES)
LIST_FIELDS = {name: f"Entity.{RECORD_TYPES[name].field}" for name in ROW_OUTCOMES}


@pytest.mark.parametrize("purpose", PURPOSES)
@pytest.mark.parametrize("record_type", sorted(ROW_OUTCOMES))
def test_row_rules_withhold_records_per_purpose(policy, record_type, purpose):
    records, outcomes = ROW_OUTCOMES[record_type]
    decision = policy.decisions[purpose]
    row_filter = decision.row_filters.get(record_type)
    if not decision.permits(LIST_FIELDS[record_type]):
        assert row_filter is None
        return
    expected = outcomes.get(purpose, outcomes["*"])
    names = list(records)
    if row_filter is None:
        kept, withheld = list(records.values()), 0
    else:
        kept, withheld = row_filter.apply(list(records.values()), TODAY)
    assert {names[list(records.values()).index(r)] for r in kept} == expected
    assert withheld == len(records) - len(expected)


def test_environmental_penalties_follow_the_general_window(policy):
    row_filter = policy.decisions["PUBLIC_DISCLOSURE"].row_filters["environmental_penalties"]
    recent = SimpleNamespace(decided_on=days_ago(200))
    old = SimpleNamespace(decided_on=days_ago(366))
    assert row_filter.apply([recent, old], TODAY) == ([recent], 1)
    assert "environmental_penalties" not in policy.decisions["CREDIT_REPAIR_REVIEW"].row_filters


def test_window_edges_are_inclusive_of_the_last_day(policy):
    row_filter = policy.decisions["LICENSING_REVIEW"].row_filters["penalties"]
    last_day = penalty(Severity.GENERAL, 365)
    day_after = penalty(Severity.GENERAL, 366)
    assert row_filter.apply([last_day, day_after], TODAY) == ([last_day], 1)


def test_windows_are_calendar_periods_with_their_last_day_included(policy):
    window = policy.decisions["LICENSING_REVIEW"].windows["penalties"]
    row_filter = policy.decisions["LICENSING_REVIEW"].row_filters["penalties"]
    # Three years from 2024-01-10 cross 29 February 2024: 1,096 days.
    serious = SimpleNamespace(severity=Severity.SERIOUS, decided_on=date(2024, 1, 10),
                              publicity_ends_on=None, repaired_on=None)
    window.prepare([serious])
    assert serious.publicity_ends_on == date(2027, 1, 10) == date(2024, 1, 10) + timedelta(days=1096)
    assert row_filter.apply([serious], date(2027, 1, 10)) == ([serious], 0)
    assert row_filter.apply([serious], date(2027, 1, 11)) == ([], 1)
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert add_months(date(2025, 8, 31), 6) == date(2026, 2, 28)
    assert add_months(date(2025, 11, 30), 3) == date(2026, 2, 28)


def test_a_department_end_date_counts_only_when_earlier(policy):
    window = policy.decisions["LICENSING_REVIEW"].windows["penalties"]
    earlier = SimpleNamespace(severity=Severity.GENERAL, decided_on=date(2026, 1, 5),
                              publicity_ends_on=date(2026, 7, 5), repaired_on=None)
    later = SimpleNamespace(severity=Severity.GENERAL, decided_on=date(2026, 1, 5),
                            publicity_ends_on=date(2028, 1, 5), repaired_on=None)
    window.prepare([earlier, later])
    assert earlier.publicity_ends_on == date(2026, 7, 5)
    assert later.publicity_ends_on == date(2027, 1, 5)
    row_filter = policy.decisions["SUPERVISION"].row_filters["penalties"]
    assert row_filter.apply([earlier, later], date(2026, 7, 6)) == ([later], 1)


def general(decided: date, repaired: date | None):
    return SimpleNamespace(severity=Severity.GENERAL, decided_on=decided, repaired_on=repaired,
                           publicity_ends_on=None)


def test_a_repair_takes_effect_no_earlier_than_the_minimum_window(policy):
    row_filter = policy.decisions["LICENSING_REVIEW"].row_filters["penalties"]
    too_early = general(date(2026, 10, 1), date(2026, 10, 15))  # minimum ends 2027-01-01
    effective = general(date(2026, 8, 1), date(2026, 8, 15))  # minimum ended 2026-11-01
    future = general(date(2026, 3, 1), date(2026, 12, 5))  # approved for a later day
    kept, withheld = row_filter.apply([too_early, effective, future], TODAY)
    assert kept == [too_early, future] and withheld == 1
    assert row_filter.apply([too_early], date(2027, 1, 1)) == ([], 1)


def repair(kind: str, reference: str, status: RepairStatus, repaired: date | None):
    return SimpleNamespace(record_kind=kind, record_reference=reference, status=status,
                           repaired_on=repaired)


@pytest.mark.parametrize(("record_type", "field", "kind"), [
    ("penalties", "Entity.penalties", "行政处罚"),
    ("environmental_penalties", "Entity.environmentalPenalties", "环境行政处罚")])
def test_every_penalty_like_record_is_linked_to_its_repair(policy, record_type, field, kind):
    window = policy.decisions["SUPERVISION"].windows[record_type]
    records = [SimpleNamespace(decision_number=n, severity=Severity.GENERAL,
                               decided_on=date(2026, 3, 1), repaired_on=None,
                               publicity_ends_on=None) for n in ("N1", "N2", "N3", "N4")]
    window.prepare(records, [
        repair(kind, "N1", RepairStatus.APPROVED, date(2026, 7, 1)),
        repair(kind, "N1", RepairStatus.APPROVED, date(2026, 8, 1)),  # the latest counts
        repair(kind, "N2", RepairStatus.REJECTED, None),
        repair(kind, "N3", RepairStatus.PENDING, None),
        repair("行政许可", "N4", RepairStatus.APPROVED, date(2026, 7, 1)),  # another kind
    ])
    assert [r.repaired_on for r in records] == [date(2026, 8, 1), None, None, None]
    for purpose, decision in policy.decisions.items():
        row_filter = decision.row_filters.get(record_type)
        if purpose == "CREDIT_REPAIR_REVIEW":
            assert row_filter is None  # sees repaired records
        elif decision.permits(field):
            assert records[0] not in row_filter.apply(records, TODAY)[0], purpose


def test_explain_lists_every_field_once(policy):
    rows = explain(policy.catalog, policy.decisions["FINANCING"])
    assert len(rows) == len({r.coordinate for r in rows}) == sum(
        len(item.fields) for item in policy.catalog.items.values())
    by_field = {r.coordinate: r for r in rows}
    assert by_field["Entity.taxRatings"].access == "REQUIRES_AUTHORIZATION"
    assert by_field["Entity.taxRatings"].authorization_category == "tax"
    assert by_field["Entity.repairs"].access == "DENIED"
    assert by_field["DishonestDebtorRecord.subjectIdNumber"].masked is True


# --- catalog validation: every way a catalog can be wrong is a clear start-up error


@pytest.fixture
def raw_catalog():
    return tomllib.loads(DEFAULT_CATALOG.read_text(encoding="utf-8"))


def _broken(raw, change):
    data = copy.deepcopy(raw)
    change(data)
    return data


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["items"]["penalties"].update(colour="red"), r"\[items.penalties\]: unknown key\(s\) \['colour'\]"),
    (lambda d: d["items"]["penalties"].update(purposes=["FINANCE"]), r"unknown purpose\(s\) \['FINANCE'\]"),
    (lambda d: d["items"]["penalties"].update({"class": "secret"}), "class 'secret' is not one of"),
    (lambda d: d["items"]["penalties"].update(rows=["nope"]), r"unknown row rule\(s\) \['nope'\]"),
    (lambda d: d["items"]["penalties"].update(mask="nope"), "unknown mask 'nope'"),
    (lambda d: d["items"]["licences"]["fields"].append("Penalty.facts"), "Penalty.facts already belongs to item"),
    (lambda d: d["items"]["tax_ratings"].pop("authorization_category"), "go together"),
    (lambda d: d["masks"]["resident_id"].update(keep_start=8), "would show the birth date"),
    (lambda d: d["rows"]["penalty_publicity"].update(kind="magic"), "kind must be one of"),
    (lambda d: d["rows"]["tax_rating_grades"]["allowed"].update(NOPE=["A"]), r"unknown key\(s\) \['NOPE'\]"),
    (lambda d: d["purposes"]["FINANCING"].update(label="x"), r"unknown key\(s\) \['label'\]"),
    (lambda d: d["purposes"]["FINANCING"].update(legal_basis="because"), "legal_basis must be one of"),
    (lambda d: d["items"]["lookup"].update(reported="no"), "reported must be true or false"),
    (lambda d: d.update(extra={}), r"unknown key\(s\) \['extra'\]"),
])
def test_malformed_catalogs_are_refused(raw_catalog, change, message):
    with pytest.raises(ConfigurationError, match=message):
        parse_catalog(_broken(raw_catalog, change))


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["items"]["penalties"]["fields"].remove("Penalty.facts"),
     r"no policy entry for field\(s\) \['Penalty.facts'\]"),
    (lambda d: d["items"]["penalties"]["fields"].append("Penalty.secretNotes"),
     r"unknown field\(s\) \['Penalty.secretNotes'\]"),
    (lambda d: d["items"]["penalties"].update(mask="resident_id"), "cannot apply it"),
    (lambda d: (d["items"]["registration"]["fields"].remove("Registration.name"),
                d["items"]["repairs"]["fields"].append("Registration.name")),
     "denies non-null field Registration.name but may use \\['Entity.registration'\\]"),
    (lambda d: d["items"]["lookup"].update(purposes=["FINANCING"]),
     "denies non-null field Query.entity"),
    (lambda d: d["items"]["person_penalties"].update(rows=[]), "different row rules"),
])
def test_catalogs_that_cannot_be_enforced_stop_start_up(raw_catalog, change, message):
    catalog = parse_catalog(_broken(raw_catalog, change))
    with pytest.raises(ConfigurationError, match=message):
        build_policy(catalog)



def test_what_the_policy_reads_of_each_record_type_per_purpose(policy):
    public = policy.decisions["PUBLIC_DISCLOSURE"].reads
    assert public["penalties"] == {"decided_on", "severity", "publicity_ends_on", "repaired_on"}
    assert public["tax_ratings"] == {"grade"}
    assert policy.decisions["JOINT_PUNISHMENT"].reads["credit_lists"] == {
        "removed_on", "expires_on", "kind"}
    assert "penalties" not in policy.decisions["CREDIT_REPAIR_REVIEW"].reads  # no row rule


def test_a_record_without_its_decision_date_cannot_be_judged_and_is_withheld(policy):
    window = policy.decisions["SUPERVISION"].windows["penalties"]
    undated = SimpleNamespace(severity=Severity.GENERAL, decided_on=None, publicity_ends_on=None,
                              repaired_on=None)
    window.prepare([undated])
    assert undated.publicity_ends_on is None
    assert policy.decisions["SUPERVISION"].row_filters["penalties"].apply([undated], TODAY) == ([], 1)
