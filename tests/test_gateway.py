"""End to end over HTTP: the six demo databases answered through one schema."""

from __future__ import annotations

import dataclasses
import time
from datetime import date

import pytest
from starlette.testclient import TestClient

from demo.generate import create_demo_data
from demo.population import build_population
from gateway.app import create_app
from gateway.settings import load_settings
from gateway.sources import SourceRegistry
from tests.gateway_fixtures import (
    DEMO_PERSONS,
    DEMO_SIZE,
    SOURCE_IDS,
    FetchTimeline,
    StatementCounter,
    with_all_sources,
    with_source,
)

TODAY = date(2026, 11, 28)

SELECTION = """{
    uscc
    registration { name legalRepresentative entityType status registeredCapital
                   establishedOn provenance { source department city asOf } }
    abnormalOperations { reason listedOn removedOn provenance { source } }
    seriousViolations { basis listedOn provenance { source } }
    licences { decisionNumber category licenceName validTo provenance { source } }
    penalties { decisionNumber severity decidedOn publicityEndsOn repairedOn provenance { source } }
    taxRatings { year grade provenance { source } }
    taxArrears { taxType amount provenance { source } }
    dishonestDebtorRecords { caseCode performance provenance { source } }
    socialInsurance { period insuredHeadcount amountPaid arrears provenance { source } }
    environmentalRatings { year grade provenance { source } }
    environmentalPenalties { decisionNumber fine provenance { source } }
    creditLists { kind listName provenance { source } }
    commitments { kind fulfilment provenance { source } }
    repairs { recordReference status provenance { source } }
}"""
FULL_RECORD = "query($uscc: USCC!) { entity(uscc: $uscc) " + SELECTION + " }"
FULL_RECORDS = "query($u: [USCC!]!) { entities(usccs: $u) " + SELECTION + " }"


@pytest.fixture(scope="session")
def population():
    return build_population(DEMO_SIZE, DEMO_PERSONS, today=TODAY)


@pytest.fixture(scope="session")
def demo_settings(tmp_path_factory, population):
    config = create_demo_data(
        tmp_path_factory.mktemp("demo"), size=DEMO_SIZE, persons=DEMO_PERSONS, today=TODAY
    )
    return load_settings(config, env={})


def serve(settings):
    """A test client and the registry behind it (to observe the sources)."""
    registry = SourceRegistry.from_settings(settings)
    return TestClient(create_app(settings, registry)), registry


def post(client, query, **variables):
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return response.json()


def sources_in(value) -> set[str]:
    """Every provenance source id found anywhere in a response value."""
    found = set()
    if isinstance(value, dict):
        if "provenance" in value and value["provenance"]:
            found.add(value["provenance"]["source"])
        for item in value.values():
            found |= sources_in(item)
    elif isinstance(value, list):
        for item in value:
            found |= sources_in(item)
    return found


def test_one_request_returns_records_from_all_six_sources(demo_settings, population):
    # One showcase firm per department-specific case; gather them in one request.
    cases = ["dishonest_debtor", "tax_d", "social_insurance_arrears", "environment_black",
             "penalty_general_in_window", "abnormal_listed"]
    usccs = [population.showcase[case].uscc for case in cases]
    query = FULL_RECORDS
    client, _ = serve(demo_settings)
    with client:
        body = post(client, query, u=usccs)
    assert "errors" not in body, body["errors"]
    entities = body["data"]["entities"]
    assert [e["uscc"] for e in entities] == usccs
    assert sources_in(entities) == SOURCE_IDS
    court = entities[0]
    assert court["dishonestDebtorRecords"] and court["registration"]["name"]
    assert entities[1]["taxRatings"][0]["grade"] == "D"
    assert entities[3]["environmentalRatings"][0]["grade"] == "BLACK"
    provenance = court["registration"]["provenance"]
    assert provenance == {**provenance, "source": "hz-market", "city": "惠州",
                          "department": "惠州市市场监督管理局"}


def test_invalid_code_is_rejected_before_any_source_is_touched(demo_settings):
    client, registry = serve(demo_settings)
    counter = StatementCounter(registry)
    with client:
        body = post(client, FULL_RECORD, uscc="91110000600037341N")
    assert body.get("data") is None
    (error,) = body["errors"]
    assert "check character 'N', expected 'L'" in error["message"]
    assert counter.total == 0


def test_literal_invalid_code_is_rejected_too(demo_settings):
    client, registry = serve(demo_settings)
    counter = StatementCounter(registry)
    with client:
        body = post(client, '{ entity(uscc: "91110000600037341N") { penalties { facts } } }')
    assert "expected 'L'" in body["errors"][0]["message"]
    assert counter.total == 0


@pytest.mark.parametrize(("batch", "statements_per_record_type"), [(500, 1), (200, 3)])
def test_statements_per_source_do_not_grow_with_the_number_of_entities(
    demo_settings, population, batch, statements_per_record_type
):
    settings = dataclasses.replace(demo_settings, max_batch_keys=batch)
    usccs = [e.uscc for e in population.enterprises[:500]]
    query = FULL_RECORDS
    client, registry = serve(settings)
    counter = StatementCounter(registry)
    with client:
        body = post(client, query, u=usccs)
        assert "errors" not in body
        assert len(body["data"]["entities"]) == 500
        record_types = {sid: len(c.record_types) for sid, c in registry.connectors.items()}
        # Person-keyed record types are not asked for here.
        record_types["hz-market"] -= 1
        expected = {sid: n * statements_per_record_type for sid, n in record_types.items()}
        assert dict(counter.counts) == expected

        counter.counts.clear()
        post(client, query, u=usccs[:20])
        assert dict(counter.counts) == {sid: n for sid, n in record_types.items()}


def test_more_entities_than_the_maximum_is_a_clear_error(demo_settings, population):
    settings = dataclasses.replace(demo_settings, max_entities_per_request=3)
    client, registry = serve(settings)
    counter = StatementCounter(registry)
    usccs = [e.uscc for e in population.enterprises[:4]]
    with client:
        body = post(client, "query($u: [USCC!]!) { entities(usccs: $u) { penalties { facts } } }", u=usccs)
    (error,) = body["errors"]
    assert error["message"] == "entities accepts at most 3 codes per request, got 4"
    assert error["extensions"] == {"code": "TOO_MANY_KEYS", "limit": 3}
    assert counter.total == 0


def test_sibling_sources_are_read_concurrently(demo_settings, population):
    delay_ms = 300
    settings = with_all_sources(demo_settings, simulated_latency_ms=delay_ms)
    client, registry = serve(settings)
    timeline = FetchTimeline(registry)
    with client:
        started = time.perf_counter()
        body = post(client, FULL_RECORD, uscc=population.showcase["dishonest_debtor"].uscc)
        elapsed = time.perf_counter() - started
    assert "errors" not in body
    assert set(timeline.intervals) == SOURCE_IDS
    intervals = [i for per_source in timeline.intervals.values() for i in per_source]
    # Every source's statements were in flight at the same moment.
    assert max(start for start, _ in intervals) < min(end for _, end in intervals)
    # About one delay, not six (generous bound: this is not a benchmark).
    assert elapsed < 3 * delay_ms / 1000


def test_a_failing_source_fails_only_its_own_fields(demo_settings, population, tmp_path):
    secret_path = tmp_path / "no-such-dir" / "court.db"
    settings = with_source(demo_settings, "hz-court", url=f"sqlite+aiosqlite:///{secret_path}")
    client, _ = serve(settings)
    with client:
        body = post(client, FULL_RECORD, uscc=population.showcase["dishonest_debtor"].uscc)
    entity = body["data"]["entity"]
    assert entity["dishonestDebtorRecords"] is None
    assert entity["registration"]["name"] and entity["taxRatings"]
    assert all(value is not None for field, value in entity.items()
               if field != "dishonestDebtorRecords")
    assert "hz-court" not in sources_in(entity)
    (error,) = body["errors"]
    assert error["path"] == ["entity", "dishonestDebtorRecords"]
    assert error["extensions"] == {"code": "SOURCE_UNAVAILABLE", "source": "hz-court"}
    text = str(body)
    assert "no-such-dir" not in text and "sqlite" not in text.lower() and "SELECT" not in text


def test_a_slow_source_times_out_with_its_own_code(demo_settings, population):
    settings = with_source(demo_settings, "hz-tax", simulated_latency_ms=2000, timeout_seconds=0.1)
    client, _ = serve(settings)
    with client:
        body = post(client, FULL_RECORD, uscc=population.showcase["tax_d"].uscc)
    entity = body["data"]["entity"]
    assert entity["taxRatings"] is None and entity["taxArrears"] is None
    assert entity["registration"] is not None
    codes = {(tuple(e["path"]), e["extensions"]["code"], e["extensions"]["source"]) for e in body["errors"]}
    assert codes == {
        (("entity", "taxRatings"), "SOURCE_TIMEOUT", "hz-tax"),
        (("entity", "taxArrears"), "SOURCE_TIMEOUT", "hz-tax"),
    }


def test_unexpected_errors_are_masked(demo_settings, population, monkeypatch):
    client, registry = serve(demo_settings)
    connector = registry.serving("commitments")

    async def broken(keys):
        raise RuntimeError("password=hunter2 host=10.0.0.1")

    monkeypatch.setattr(connector, connector.record_types["commitments"], broken)
    with client:
        body = post(client, FULL_RECORD, uscc=population.showcase["clean"].uscc)
    (error,) = body["errors"]
    assert error["message"] == "Internal error."
    assert "hunter2" not in str(body)
    assert body["data"]["entity"]["registration"] is not None


def test_name_search_pages_through_results(demo_settings, population):
    query = """query($name: String!, $after: String) {
      searchEntities(name: $name, first: 2, after: $after) {
        entities { uscc registration { name } } endCursor hasNextPage } }"""
    name = population.enterprises[0].name[3:7]
    expected = sorted(e.uscc for e in population.enterprises if name in e.name)
    assert len(expected) >= 1
    client, registry = serve(demo_settings)
    seen, after = [], None
    with client:
        while True:
            page = post(client, query, name=name, after=after)["data"]["searchEntities"]
            seen += [e["uscc"] for e in page["entities"]]
            assert all(name in e["registration"]["name"] for e in page["entities"])
            if not page["hasNextPage"]:
                assert page["endCursor"] is None
                break
            after = page["endCursor"]
        short = post(client, '{ searchEntities(name: " a ") { hasNextPage } }')
        bad_cursor = post(client, '{ searchEntities(name: "惠州", after: "zzz") { hasNextPage } }')
    assert seen == expected
    assert short["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert bad_cursor["errors"][0]["message"] == "after is not a cursor returned by searchEntities"


def test_person_records_and_companies(demo_settings, population):
    person = population.person_showcase["person_dishonest_debtor"]
    firms = sorted(e.uscc for e in population.enterprises if e.legal_representative == person)
    query = """query($id: ResidentId!) { person(idNumber: $id) {
      idNumber dishonestDebtorRecords { subjectKind subjectName removedOn }
      legalRepresentativeOf { uscc registration { legalRepresentative } } } }"""
    client, _ = serve(demo_settings)
    with client:
        body = post(client, query, id=person.id_number)
        invalid = post(client, query, id="110105194912310021")
    assert "errors" not in body
    record = body["data"]["person"]
    assert record["dishonestDebtorRecords"][0] == {
        "subjectKind": "PERSON", "subjectName": person.name, "removedOn": None,
    }
    assert [f["uscc"] for f in record["legalRepresentativeOf"]] == firms
    assert all(f["registration"]["legalRepresentative"] == person.name
               for f in record["legalRepresentativeOf"])
    assert "expected 'X'" in invalid["errors"][0]["message"]


def test_health_and_request_id(demo_settings, tmp_path):
    settings = with_source(demo_settings, "hz-hrss", url=f"sqlite+aiosqlite:///{tmp_path}/x/y.db")
    client, _ = serve(settings)
    with client:
        health = client.get("/healthz").json()
        response = client.post("/graphql", json={"query": "{ __typename }"},
                               headers={"X-Request-Id": "trace-12345678"})
        fresh = client.post("/graphql", json={"query": "{ __typename }"})
    assert health["status"] == "degraded"
    assert health["sources"]["hz-hrss"] == "unavailable"
    assert health["sources"]["hz-market"] == "ok"
    assert response.headers["X-Request-Id"] == "trace-12345678"
    assert len(fresh.headers["X-Request-Id"]) == 32


def test_graphiql_is_served_when_enabled(demo_settings):
    client, _ = serve(demo_settings)
    with client:
        page = client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
