"""The policy enforced end to end: denied fields are null with an error and
never fetched, withheld records are counted, identifiers are masked, banks see
authorized data only with the enterprise's authorization, and no query shape
gets around any of it."""

from __future__ import annotations

import re

import pytest

from tests.gateway_fixtures import Gateway, StatementCounter, demo_token

PUBLIC = ("xinyong-huizhou", "PUBLIC_DISCLOSURE")
LICENSING = ("hz-market-app", "LICENSING_REVIEW")
PUNISHMENT = ("hz-market-app", "JOINT_PUNISHMENT")
REPAIR = ("hz-credit-office", "CREDIT_REPAIR_REVIEW")
PROCUREMENT = ("hz-procurement", "PROCUREMENT_REVIEW")
ICBC = ("bank-icbc-huizhou", "FINANCING")
HZRCB = ("bank-hzrcb", "FINANCING")
MASKED_ID = re.compile(r"^\d{6}\*{8}[\dX]{4}$")


@pytest.fixture
def gateway(demo_settings):
    with Gateway(demo_settings) as gateway:
        yield gateway


def _headers(gateway, as_):
    return {"Authorization": f"Bearer {demo_token(gateway.settings, as_[0])}",
            "X-Purpose-Of-Use": as_[1]}


def forbidden(body, purpose):
    """path -> extensions of every FORBIDDEN_FOR_PURPOSE error."""
    return {tuple(e["path"]): e["extensions"] for e in body.get("errors", [])
            if e["extensions"]["code"] == "FORBIDDEN_FOR_PURPOSE"
            and e["extensions"]["purpose"] == purpose}


def test_denied_fields_are_null_with_errors_and_never_fetched(gateway, population):
    counter = StatementCounter(gateway.registry)
    uscc = population.showcase["social_insurance_arrears"].uscc
    body = gateway.query("""query($u: USCC!) { entity(uscc: $u) {
        registration { name } socialInsurance { period } repairs { status }
        penalties { decisionNumber } } }""", PUBLIC, u=uscc)
    entity = body["data"]["entity"]
    assert list(entity) == ["registration", "socialInsurance", "repairs", "penalties"]
    assert entity["registration"]["name"] and entity["penalties"] == []
    assert entity["socialInsurance"] is None and entity["repairs"] is None
    assert forbidden(body, "PUBLIC_DISCLOSURE") == {
        ("entity", "socialInsurance"): {"code": "FORBIDDEN_FOR_PURPOSE", "purpose": "PUBLIC_DISCLOSURE"},
        ("entity", "repairs"): {"code": "FORBIDDEN_FOR_PURPOSE", "purpose": "PUBLIC_DISCLOSURE"},
    }
    assert body["errors"][0]["message"] == (
        "Entity.socialInsurance may not be used for purpose PUBLIC_DISCLOSURE")
    # Social insurance was never read; the credit office answered penalties and
    # the repairs they are checked against (read for the rule, never released).
    assert counter.counts["hz-hrss"] == 0
    assert counter.counts["hz-credit"] == 2
    assert counter.counts["hz-market"] == 1


def test_a_plan_is_reused_only_for_the_same_operation_and_purpose(gateway, population, monkeypatch):
    import gateway.enforcement as enforcement

    planned = []
    original = enforcement.plan_operation

    def counting(schema, document, operation_name, variables, decision):
        planned.append(decision.purpose.code)
        return original(schema, document, operation_name, variables, decision)

    monkeypatch.setattr(enforcement, "plan_operation", counting)
    uscc = population.showcase["social_insurance_arrears"].uscc
    query = "query($u: USCC!) { entity(uscc: $u) { registration { name } socialInsurance { period } } }"
    for _ in range(3):
        body = gateway.query(query, PUBLIC, u=uscc)
        assert set(forbidden(body, "PUBLIC_DISCLOSURE")) == {("entity", "socialInsurance")}
        assert body["data"]["entity"]["socialInsurance"] is None
    assert planned == ["PUBLIC_DISCLOSURE"]
    gateway.query(query, PUNISHMENT, u=uscc)
    assert planned == ["PUBLIC_DISCLOSURE", "JOINT_PUNISHMENT"]

    planned.clear()
    skippable = """query($u: USCC!, $s: Boolean!) { entity(uscc: $u) {
        registration { name } socialInsurance @skip(if: $s) { period } } }"""
    skipped = gateway.query(skippable, PUBLIC, u=uscc, s=True)
    kept = gateway.query(skippable, PUBLIC, u=uscc, s=False)
    assert "errors" not in skipped
    assert set(forbidden(kept, "PUBLIC_DISCLOSURE")) == {("entity", "socialInsurance")}
    assert planned == ["PUBLIC_DISCLOSURE", "PUBLIC_DISCLOSURE"]  # depends on $s: not kept


BYPASSES = {
    "alias": ("query($u: USCC!) { entity(uscc: $u) { si: socialInsurance { period } } }",
              {("entity", "si")}),
    "named fragment": ("""fragment F on Entity { socialInsurance { period } }
        query($u: USCC!) { entity(uscc: $u) { ...F } }""", {("entity", "socialInsurance")}),
    "nested fragments": ("""fragment Inner on Entity { socialInsurance { period } }
        fragment Outer on Entity { ... on Entity { ...Inner } }
        query($u: USCC!) { e1: entity(uscc: $u) { ...Outer } }""", {("e1", "socialInsurance")}),
    "fragment on an interface": ("""query($u: USCC!) { entity(uscc: $u) { registration {
        ... on CreditRecord { ... on Registration { legalRepresentativeIdNumber } } } } }""",
        {("entity", "registration", "legalRepresentativeIdNumber")}),
    "allowed and denied alias side by side": (
        "query($u: USCC!) { entity(uscc: $u) { uscc si: socialInsurance { period } } }",
        {("entity", "si")}),
    "another path to the same data": ("""query($u: USCC!) { entities(usccs: [$u, $u]) {
        socialInsurance { period } } }""",
        {("entities", 0, "socialInsurance"), ("entities", 1, "socialInsurance")}),
}


@pytest.mark.parametrize("shape", sorted(BYPASSES))
def test_query_shapes_do_not_bypass_the_policy(gateway, population, shape):
    query, paths = BYPASSES[shape]
    counter = StatementCounter(gateway.registry)
    body = gateway.query(query, PUBLIC, u=population.showcase["social_insurance_arrears"].uscc)
    assert set(forbidden(body, "PUBLIC_DISCLOSURE")) == paths
    assert counter.counts["hz-hrss"] == 0
    for path in paths:
        value = body["data"]
        for step in path:
            value = value[step]
        assert value is None


def test_nested_selections_through_a_person_are_checked_per_field(gateway, population):
    person = population.enterprises[30].legal_representative
    firms = [e for e in population.enterprises if e.legal_representative == person]
    counter = StatementCounter(gateway.registry)
    body = gateway.query("""query($id: ResidentId!) { person(idNumber: $id) {
        legalRepresentativeOf { uscc socialInsurance { period } penalties { facts } } } }""",
        PUNISHMENT, id=person.id_number)
    expected = {("person", "legalRepresentativeOf", i, field)
                for i in range(len(firms)) for field in ("socialInsurance", "penalties")}
    assert set(forbidden(body, "JOINT_PUNISHMENT")) == expected
    assert counter.counts["hz-hrss"] == 0 and counter.counts["hz-credit"] == 0


def test_search_results_are_checked_like_any_entity(gateway, population):
    name = population.enterprises[0].name[3:7]
    body = gateway.query("""query($n: String!) { searchEntities(name: $n, first: 3) {
        entities { socialInsurance { period } } } }""", PUBLIC, n=name)
    paths = set(forbidden(body, "PUBLIC_DISCLOSURE"))
    count = len(body["data"]["searchEntities"]["entities"])
    assert count >= 1
    assert paths == {("searchEntities", "entities", i, "socialInsurance") for i in range(count)}


@pytest.mark.parametrize(("flag", "denied"), [(True, True), (False, False)])
def test_include_directives_with_variables(gateway, population, flag, denied):
    counter = StatementCounter(gateway.registry)
    body = gateway.query("""query($u: USCC!, $with: Boolean!) { entity(uscc: $u) {
        uscc socialInsurance @include(if: $with) { period }
        repairs @skip(if: $with) { status } } }""", PUBLIC,
        u=population.showcase["clean"].uscc, **{"with": flag})
    paths = set(forbidden(body, "PUBLIC_DISCLOSURE"))
    assert paths == ({("entity", "socialInsurance")} if denied else {("entity", "repairs")})
    assert counter.counts["hz-hrss"] == 0 and counter.counts["hz-credit"] == 0


def test_several_operations_in_one_document_are_each_checked(gateway, population):
    document = """query Private($u: USCC!) { entity(uscc: $u) { socialInsurance { period } } }
                  query Public($u: USCC!) { entity(uscc: $u) { uscc } }"""
    uscc = population.showcase["clean"].uscc

    def run(operation_name):
        return gateway.client.post("/graphql", json={
            "query": document, "variables": {"u": uscc}, "operationName": operation_name},
            headers=_headers(gateway, PUBLIC)).json()

    # Without a name nothing runs (the GraphQL spec), before any source is asked.
    unnamed = run(None)
    assert "data" not in unnamed
    assert unnamed["errors"][0]["extensions"]["code"] == "OPERATION_NAME_REQUIRED"
    assert set(forbidden(run("Private"), "PUBLIC_DISCLOSURE")) == {("entity", "socialInsurance")}
    public = run("Public")
    assert "errors" not in public and public["data"]["entity"]["uscc"] == uscc


def test_batched_requests_are_refused(gateway, population):
    query = {"query": "{ __typename }"}
    response = gateway.client.post("/graphql", json=[query, query], headers=_headers(gateway, PUBLIC))
    assert response.status_code == 400
    assert "data" not in response.text


def test_a_rejecting_client_gets_403_for_the_whole_operation(gateway, population):
    counter = StatementCounter(gateway.registry)
    uscc = population.showcase["penalty_serious_in_window"].uscc
    response = gateway.post("""query($u: USCC!) { entity(uscc: $u) {
        penalties { decisionNumber } repairs { status } commitments { kind } } }""",
        PROCUREMENT, u=uscc)
    assert response.status_code == 403
    body = response.json()
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"] == {
        "code": "FORBIDDEN_FOR_PURPOSE", "purpose": "PROCUREMENT_REVIEW",
        "fields": ["Entity.commitments", "Entity.repairs"],
    }
    assert counter.total == 0
    allowed = gateway.query("query($u: USCC!) { entity(uscc: $u) { penalties { severity } } }",
                            PROCUREMENT, u=uscc)
    assert allowed["data"]["entity"]["penalties"][0]["severity"] == "SERIOUS"


@pytest.mark.parametrize(("case", "as_", "visible", "withheld"), [
    ("penalty_minor", PUBLIC, 0, 1),
    ("penalty_minor", LICENSING, 1, 0),
    ("penalty_general_in_window", PUBLIC, 1, 0),
    ("penalty_general_expired", LICENSING, 0, 1),
    ("penalty_general_expired", REPAIR, 1, 0),
    ("penalty_serious_in_window", PUBLIC, 1, 0),
    ("penalty_serious_expired", PUBLIC, 0, 1),
    ("penalty_repaired", PUBLIC, 0, 1),
    ("penalty_repaired", LICENSING, 0, 1),
    ("penalty_repaired", REPAIR, 1, 0),
])
def test_withheld_penalties_are_absent_and_counted(gateway, population, case, as_, visible, withheld):
    body = gateway.query("""query($u: USCC!) { entity(uscc: $u) {
        penalties { decisionNumber repairedOn } } }""", as_, u=population.showcase[case].uscc)
    assert "errors" not in body
    assert len(body["data"]["entity"]["penalties"]) == visible
    assert body["extensions"]["policy"]["purpose"] == as_[1]
    assert body["extensions"]["policy"]["withheldRecords"].get("penalties", 0) == withheld
    if case == "penalty_repaired" and visible:
        assert body["data"]["entity"]["penalties"][0]["repairedOn"] is not None


@pytest.mark.parametrize(("case", "field", "as_", "visible"), [
    ("dishonest_debtor", "dishonestDebtorRecords", PUBLIC, 1),
    ("dishonest_debtor_removed", "dishonestDebtorRecords", PUBLIC, 0),
    ("dishonest_debtor_removed", "dishonestDebtorRecords", REPAIR, 1),
    ("abnormal_listed", "abnormalOperations", PUBLIC, 1),
    ("abnormal_removed", "abnormalOperations", PUBLIC, 0),
    ("serious_violation_removed", "seriousViolations", PUNISHMENT, 0),
    ("serious_violation_listed", "seriousViolations", PUNISHMENT, 1),
    ("black_list", "creditLists", PUNISHMENT, 1),
    ("red_list", "creditLists", PUNISHMENT, 0),
    ("red_list", "creditLists", ("hz-credit-office", "INCENTIVE_REVIEW"), 1),
])
def test_list_entries_count_until_removal_or_expiry(gateway, population, case, field, as_, visible):
    body = gateway.query(f"query($u: USCC!) {{ entity(uscc: $u) {{ {field} {{ __typename }} }} }}",
                         as_, u=population.showcase[case].uscc)
    assert "errors" not in body
    assert len(body["data"]["entity"][field]) == visible


def test_only_a_and_d_tax_ratings_are_public(gateway, population):
    uscc = population.showcase["tax_d"].uscc
    query = "query($u: USCC!) { entity(uscc: $u) { taxRatings { year grade } } }"
    public = gateway.query(query, PUBLIC, u=uscc)["data"]["entity"]["taxRatings"]
    shared = gateway.query(query, LICENSING, u=uscc)["data"]["entity"]["taxRatings"]
    assert shared[0]["grade"] == "D"
    assert public == [r for r in shared if r["grade"] in ("A", "D")]


def test_resident_ids_are_masked_by_purpose(gateway, population):
    person = population.person_showcase["person_dishonest_debtor"]
    query = """query($id: ResidentId!) { person(idNumber: $id) { idNumber
        dishonestDebtorRecords { subjectIdNumber } } }"""
    public = gateway.query(query, PUBLIC, id=person.id_number)["data"]["person"]
    punishment = gateway.query(query, PUNISHMENT, id=person.id_number)["data"]["person"]
    assert MASKED_ID.match(public["idNumber"])
    assert public["idNumber"][:6] == person.id_number[:6]
    assert public["idNumber"][-4:] == person.id_number[-4:]
    assert MASKED_ID.match(public["dishonestDebtorRecords"][0]["subjectIdNumber"])
    assert punishment["idNumber"] == person.id_number
    assert punishment["dishonestDebtorRecords"][0]["subjectIdNumber"] == person.id_number

    firm = population.showcase["clean"]
    query = "query($u: USCC!) { entity(uscc: $u) { registration { legalRepresentativeIdNumber } } }"
    licensing = gateway.query(query, LICENSING, u=firm.uscc)
    assert MASKED_ID.match(licensing["data"]["entity"]["registration"]["legalRepresentativeIdNumber"])
    full = gateway.query(query, PUNISHMENT, u=firm.uscc)
    assert full["data"]["entity"]["registration"]["legalRepresentativeIdNumber"] == (
        firm.legal_representative.id_number)


FINANCING_QUERY = """query($u: USCC!) { entity(uscc: $u) {
    registration { name } penalties { decisionNumber }
    taxRatings { grade } taxArrears { amount } socialInsurance { period }
    environmentalRatings { grade } repairs { status } } }"""


def test_a_bank_sees_authorized_data_with_a_valid_authorization(gateway, population):
    counter = StatementCounter(gateway.registry)
    body = gateway.query(FINANCING_QUERY, ICBC, u=population.showcase["financing_authorized"].uscc)
    entity = body["data"]["entity"]
    assert entity["registration"]["name"]
    assert entity["taxRatings"] is not None and entity["socialInsurance"] is not None
    assert entity["taxArrears"] is not None and entity["environmentalRatings"] is not None
    assert set(forbidden(body, "FINANCING")) == {("entity", "repairs")}
    assert counter.counts["hz-tax"] == 2 and counter.counts["hz-hrss"] == 1


@pytest.mark.parametrize(("case", "as_"), [
    ("financing_expired", ICBC),
    ("financing_revoked", ICBC),
    ("financing_authorized", HZRCB),  # the authorization names the other bank
    ("clean", ICBC),  # no authorization at all
])
def test_without_a_valid_authorization_a_bank_gets_public_data_only(gateway, population, case, as_):
    counter = StatementCounter(gateway.registry)
    body = gateway.query(FINANCING_QUERY, as_, u=population.showcase[case].uscc)
    entity = body["data"]["entity"]
    assert entity["registration"]["name"] and entity["penalties"] is not None
    gated = {("entity", f) for f in ("taxRatings", "taxArrears", "socialInsurance",
                                     "environmentalRatings")}
    errors = forbidden(body, "FINANCING")
    assert set(errors) == gated | {("entity", "repairs")}
    assert all(errors[path]["reason"] == "NO_SUBJECT_AUTHORIZATION" for path in gated)
    assert all(entity[path[1]] is None for path in gated)
    assert counter.counts["hz-tax"] == 0 and counter.counts["hz-hrss"] == 0
    assert counter.counts["hz-environment"] == 0


def test_my_access_describes_the_callers_view(gateway):
    body = gateway.query("""{ myAccess { client { id kind } purpose { code name }
        grantedPurposes { code } fields { field access masked authorizationCategory }
        rowRules { recordType rules } } }""", ICBC)
    access = body["data"]["myAccess"]
    assert access["client"] == {"id": "bank-icbc-huizhou", "kind": "bank"}
    assert access["purpose"] == {"code": "FINANCING", "name": "融资授信"}
    assert access["grantedPurposes"] == [{"code": "FINANCING"}]
    fields = {f["field"]: f for f in access["fields"]}
    assert fields["Entity.taxRatings"] == {"field": "Entity.taxRatings",
                                           "access": "REQUIRES_AUTHORIZATION", "masked": False,
                                           "authorizationCategory": "tax"}
    assert fields["Entity.repairs"]["access"] == "DENIED"
    assert fields["Entity.penalties"]["access"] == "ALLOWED"
    assert {"recordType": "penalties", "rules": ["penalty_publicity"]} in access["rowRules"]


def test_an_operation_the_planner_cannot_determine_is_never_run(gateway, population, monkeypatch):
    import gateway.enforcement as enforcement

    monkeypatch.setattr(enforcement, "plan_operation", lambda *args: None)
    counter = StatementCounter(gateway.registry)
    response = gateway.post("query($u: USCC!) { entity(uscc: $u) { socialInsurance { period } } }",
                            PUBLIC, u=population.showcase["clean"].uscc)
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "OPERATION_NAME_REQUIRED"
    assert counter.total == 0


def test_the_plan_cache_is_bounded_by_entries_and_by_text():
    from gateway.enforcement import Plan, PlanCache

    cache = PlanCache(size=3, text_budget=100)
    for i in range(5):
        cache.put((f"q{i}", None, "P"), Plan(None))
    assert [cache.get((f"q{i}", None, "P")) is not None for i in range(5)] == [
        False, False, True, True, True]
    cache.put(("x" * 60, None, "P"), Plan(None))
    cache.put(("y" * 60, None, "P"), Plan(None))
    assert cache.get(("x" * 60, None, "P")) is None  # over the text budget: the oldest go
    assert cache.get(("y" * 60, None, "P")) is not None
    cache.put(("z" * 20_000, None, "P"), Plan(None))
    assert cache.get(("z" * 20_000, None, "P")) is None  # too long to keep at all
