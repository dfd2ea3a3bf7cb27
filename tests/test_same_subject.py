"""One subject met at several places of one operation: every place gets the
same data, and each (source, record type) is read once for it."""

from __future__ import annotations

from tests.gateway_fixtures import Gateway, StatementCounter
from tests.test_federation import dongguan, federated, shenzhen  # noqa: F401 (fixtures)

RECORD = """registration { name status } penalties { decisionNumber severity }
  taxRatings { year grade } dishonestDebtorRecords { caseCode }
  socialInsurance { period insuredHeadcount } environmentalRatings { year grade }
  creditLists { kind } commitments { kind } licences { decisionNumber }"""


def _statements(gateway: Gateway, query: str, **variables) -> tuple[dict, int]:
    counter = StatementCounter(gateway.registry)
    body = gateway.query(query, **variables)
    return body, counter.total


def test_one_subject_under_two_aliases_gets_the_same_data_read_once(demo_settings, population):
    uscc = population.showcase["dishonest_debtor"].uscc
    with Gateway(demo_settings) as gateway:
        single, once = _statements(
            gateway, f"query($u: USCC!) {{ a: entity(uscc: $u) {{ {RECORD} }} }}", u=uscc)
        body, twice = _statements(
            gateway, f"query($u: USCC!) {{ a: entity(uscc: $u) {{ {RECORD} }} "
                     f"b: entity(uscc: $u) {{ {RECORD} }} }}", u=uscc)
    assert "errors" not in body, body["errors"]
    a, b = body["data"]["a"], body["data"]["b"]
    assert a == b == single["data"]["a"]
    assert a["registration"] is not None and a["dishonestDebtorRecords"]
    assert twice == once


def test_entity_beside_entities_with_the_same_code(demo_settings, population):
    firm = population.showcase["tax_d"].uscc
    other = population.showcase["clean"].uscc
    query = (f"query($u: USCC!, $l: [USCC!]!) {{ one: entity(uscc: $u) {{ uscc {RECORD} }} "
             f"many: entities(usccs: $l) {{ uscc {RECORD} }} }}")
    with Gateway(demo_settings) as gateway:
        single, once = _statements(
            gateway, f"query($u: USCC!) {{ entity(uscc: $u) {{ uscc {RECORD} }} }}", u=firm)
        body, statements = _statements(gateway, query, u=firm, l=[firm, firm])
        mixed = gateway.query(query, u=firm, l=[other, firm, firm])
    assert "errors" not in body, body["errors"]
    assert body["data"]["many"] == [body["data"]["one"]] * 2
    assert body["data"]["one"] == single["data"]["entity"]
    assert body["data"]["one"]["taxRatings"][0]["grade"] == "D"
    assert statements == once
    assert "errors" not in mixed, mixed["errors"]
    assert [e["uscc"] for e in mixed["data"]["many"]] == [other, firm, firm]
    assert mixed["data"]["many"][1:] == [mixed["data"]["one"]] * 2


def test_a_search_hit_beside_the_same_entity(demo_settings, population):
    firm = population.showcase["clean"]
    query = """query($n: String!, $u: USCC!) {
      found: searchEntities(name: $n, first: 100) { entities { uscc registration { name status } } }
      entity(uscc: $u) { uscc registration { name status } } }"""
    with Gateway(demo_settings) as gateway:
        body = gateway.query(query, n=firm.name, u=firm.uscc)
    assert "errors" not in body, body["errors"]
    hits = {e["uscc"]: e for e in body["data"]["found"]["entities"]}
    assert hits[firm.uscc] == body["data"]["entity"]
    assert body["data"]["entity"]["registration"]["name"] == firm.name


def test_a_person_and_an_organization_they_represent(demo_settings, population):
    firm = population.showcase["dishonest_debtor"]
    person = firm.legal_representative
    query = f"""query($id: ResidentId!, $u: USCC!) {{
      person(idNumber: $id) {{ legalRepresentativeOf {{ uscc {RECORD} }} }}
      entity(uscc: $u) {{ uscc {RECORD} }} }}"""
    with Gateway(demo_settings) as gateway:
        body = gateway.query(query, id=person.id_number, u=firm.uscc)
    assert "errors" not in body, body["errors"]
    represented = {e["uscc"]: e for e in body["data"]["person"]["legalRepresentativeOf"]}
    assert represented[firm.uscc] == body["data"]["entity"]
    assert body["data"]["entity"]["dishonestDebtorRecords"]


def test_lists_merged_from_partners_for_one_subject_twice(federated, dongguan, population):
    from tests.test_federation import huizhou_code_dongguan_penalized

    uscc = huizhou_code_dongguan_penalized(dongguan, population)
    one = "registration { name } penalties { decisionNumber provenance { source city } }"
    with Gateway(federated) as gateway:
        single = gateway.query(f"query($u: USCC!) {{ a: entity(uscc: $u) {{ {one} }} }}", u=uscc)
        body = gateway.query(f"query($u: USCC!, $l: [USCC!]!) {{ a: entity(uscc: $u) {{ {one} }} "
                             f"b: entity(uscc: $u) {{ {one} }} c: entities(usccs: $l) {{ {one} }} }}",
                             u=uscc, l=[uscc])
    assert "errors" not in body, body["errors"]
    data = body["data"]
    assert data["a"] == data["b"] == data["c"][0] == single["data"]["a"]
    assert "东莞" in {p["provenance"]["city"] for p in data["a"]["penalties"]}


def test_repairs_are_read_once_for_every_record_linked_to_them(demo_settings, population):
    uscc = population.showcase["penalty_repaired"].uscc
    query = """query($u: USCC!) { entity(uscc: $u) { penalties { decisionNumber repairedOn }
      environmentalPenalties { decisionNumber } repairs { recordReference status } } }"""
    with Gateway(demo_settings) as gateway:
        counter = StatementCounter(gateway.registry)
        body = gateway.query(query, ("hz-credit-office", "CREDIT_REPAIR_REVIEW"), u=uscc)
    assert "errors" not in body, body["errors"]
    entity = body["data"]["entity"]
    (repair,) = [r for r in entity["repairs"] if r["status"] == "APPROVED"]
    (penalty,) = [p for p in entity["penalties"] if p["decisionNumber"] == repair["recordReference"]]
    assert penalty["repairedOn"] is not None
    assert counter.counts["hz-credit"] == 2  # penalties, and repairs once for all three uses
    assert counter.counts["hz-environment"] == 1


def test_a_repaired_environmental_penalty_is_shown_only_to_credit_repair_review(
        demo_settings, population):
    uscc = population.showcase["environment_penalty_repaired"].uscc
    query = """query($u: USCC!) { entity(uscc: $u) {
      environmentalPenalties { decisionNumber decidedOn publicityEndsOn repairedOn } } }"""
    with Gateway(demo_settings) as gateway:
        review = gateway.query(query, ("hz-credit-office", "CREDIT_REPAIR_REVIEW"), u=uscc)
        others = [gateway.query(query, as_, u=uscc) for as_ in (
            ("hz-market-app", "SUPERVISION"), ("hz-market-app", "LICENSING_REVIEW"),
            ("xinyong-huizhou", "PUBLIC_DISCLOSURE"))]
    (penalty,) = review["data"]["entity"]["environmentalPenalties"]
    assert penalty["repairedOn"] is not None and penalty["publicityEndsOn"] is not None
    for body in others:
        assert body["data"]["entity"]["environmentalPenalties"] == []
        assert body["extensions"]["policy"]["withheldRecords"] == {"environmental_penalties": 1}
