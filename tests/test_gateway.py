"""End to end over HTTP: the demo databases answered through one schema."""

from __future__ import annotations

import dataclasses

import pytest
from graphql import get_named_type, is_leaf_type

from core.errors import SourceUnavailable
from gateway.schema import graphql_schema, source_record_types

from tests.gateway_fixtures import (
    ENTITY_RECORD_TYPES,
    SOURCE_IDS,
    Gateway,
    FetchTimeline,
    replace_batch,
    source_ids,
    StatementCounter,
    statements_per_source,
    with_all_sources,
    with_source,
)


def _leaves(type_name: str, seen: frozenset[str] = frozenset()) -> str:
    """A selection of every field of ``type_name`` without arguments, objects
    (a record's provenance) selected whole in turn."""
    parts = []
    for name, field in graphql_schema().type_map[type_name].fields.items():
        named = get_named_type(field.type)
        if field.args:
            continue
        if is_leaf_type(named):
            parts.append(name)
        elif named.name not in seen | {type_name}:
            parts.append(f"{name} {_leaves(named.name, seen | {type_name})}")
    return "{ " + " ".join(parts) + " }"


def _entity_field(field: str) -> str:
    entity = graphql_schema().type_map["Entity"]
    return f"{field} {_leaves(get_named_type(entity.fields[field].type).name)}"


# Every Entity field a record type serves (connectors.RECORD_TYPES), each
# with all its record's fields and provenance: the whole record.
SELECTION = "{ uscc " + " ".join(_entity_field(field) for field in ENTITY_RECORD_TYPES) + " }"
FULL_RECORD = "query($uscc: USCC!) { entity(uscc: $uscc) " + SELECTION + " }"
FULL_RECORDS = "query($u: [USCC!]!) { entities(usccs: $u) " + SELECTION + " }"


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


def test_the_derived_sources_and_entity_fields_are_those_configured_and_served(demo_settings):
    assert SOURCE_IDS == source_ids(demo_settings)
    assert len(SOURCE_IDS) > 1
    assert {f"Entity.{field}": rt.name for field, rt in ENTITY_RECORD_TYPES.items()} == {
        c: r for c, r in source_record_types().items() if c.startswith("Entity.")}


def test_one_request_returns_records_from_every_source(demo_settings, population):
    # Every showcase firm (each case a department declares has one) in one
    # request, the ones looked at below first.
    looked_at = ["dishonest_debtor", "tax_d", "environment_black"]
    cases = looked_at + [case for case in population.showcase if case not in looked_at]
    usccs = [population.showcase[case].uscc for case in cases]
    query = FULL_RECORDS
    gateway = Gateway(demo_settings)
    with gateway:
        body = gateway.query(query, u=usccs)
    assert "errors" not in body, body["errors"]
    entities = body["data"]["entities"]
    assert [e["uscc"] for e in entities] == usccs
    assert sources_in(entities) == source_ids(demo_settings)
    court = entities[0]
    assert court["dishonestDebtorRecords"] and court["registration"]["name"]
    assert entities[1]["taxRatings"][0]["grade"] == "D"
    assert entities[2]["environmentalRatings"][0]["grade"] == "BLACK"
    provenance = court["registration"]["provenance"]
    assert provenance == {**provenance, "source": "hz-market", "city": "惠州",
                          "department": "惠州市市场监督管理局"}


def test_invalid_code_is_rejected_before_any_source_is_touched(demo_settings):
    gateway = Gateway(demo_settings)
    counter = StatementCounter(gateway.registry)
    with gateway:
        body = gateway.query(FULL_RECORD, uscc="91110000600037341N")
    assert body.get("data") is None
    (error,) = body["errors"]
    assert "check character 'N', expected 'L'" in error["message"]
    assert counter.total == 0


def test_literal_invalid_code_is_rejected_too(demo_settings):
    gateway = Gateway(demo_settings)
    counter = StatementCounter(gateway.registry)
    with gateway:
        response = gateway.post('{ entity(uscc: "91110000600037341N") { penalties { facts } } }')
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    assert "expected 'L'" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert counter.total == 0


@pytest.mark.parametrize(("batch", "statements_per_record_type"), [(500, 1), (200, 3)])
def test_statements_per_source_do_not_grow_with_the_number_of_entities(
    demo_settings, population, batch, statements_per_record_type
):
    settings = dataclasses.replace(demo_settings, max_batch_keys=batch)
    usccs = [e.uscc for e in population.enterprises[:500]]
    query = FULL_RECORDS
    gateway = Gateway(settings)
    counter = StatementCounter(gateway.registry)
    with gateway:
        body = gateway.query(query, u=usccs)
        assert "errors" not in body
        assert len(body["data"]["entities"]) == 500
        # One statement per record type the query asks for, per batch of keys.
        asked = statements_per_source(
            gateway.registry.connectors, [rt.name for rt in ENTITY_RECORD_TYPES.values()])
        assert set(asked) == source_ids(settings)  # the query reads every source
        assert dict(counter.counts) == {
            sid: n * statements_per_record_type for sid, n in asked.items()
        }

        counter.clear()
        gateway.query(query, u=usccs[:20])
        assert dict(counter.counts) == asked


def test_only_the_record_types_selected_are_read(demo_settings, population):
    """Entities load what their selection reads before their fields resolve:
    through fragments, and not what @skip/@include leave out."""
    query = """query($u: [USCC!]!, $skip: Boolean!) { entities(usccs: $u) {
        uscc ...Lists ... on Entity { taxRatings { grade } }
        penalties @skip(if: $skip) { decisionNumber }
        licences @include(if: false) { decisionNumber } } }
      fragment Lists on Entity { creditLists { kind } }"""
    usccs = [e.uscc for e in population.enterprises[:30]]
    gateway = Gateway(demo_settings)
    counter = StatementCounter(gateway.registry)
    with gateway:
        skipped = gateway.query(query, u=usccs, skip=True)
        assert dict(counter.counts) == {"hz-credit": 1, "hz-tax": 1}
        counter.clear()
        kept = gateway.query(query, u=usccs, skip=False)
        # lists, penalties and the repairs penalties are checked against
        assert dict(counter.counts) == {"hz-credit": 3, "hz-tax": 1}
    assert "errors" not in skipped and "errors" not in kept
    assert set(skipped["data"]["entities"][0]) == {"uscc", "creditLists", "taxRatings"}
    assert "penalties" in kept["data"]["entities"][0]


def test_every_source_backed_entity_field_can_be_prefetched():
    from resolvers.entity import _ENTITY_RECORD_TYPES
    from gateway.schema import source_record_types

    entity_fields = {c: r for c, r in source_record_types().items() if c.startswith("Entity.")}
    assert {f"Entity.{name}": r for name, r in _ENTITY_RECORD_TYPES.items()} == entity_fields


def test_entities_prefetch_their_records_so_record_fields_complete_without_awaiting(
        demo_settings, population, monkeypatch):
    """Every record type an entity selection reads is read before its fields
    resolve: no field falls back to a DataLoader (an awaited completion each)."""
    from gateway.loaders import Loaders

    made = []
    original = Loaders.loader

    def loader(self, source, record_type):
        made.append(record_type)
        return original(self, source, record_type)

    monkeypatch.setattr(Loaders, "loader", loader)
    usccs = [population.showcase[c].uscc for c in ("dishonest_debtor", "tax_d", "clean")]
    with Gateway(demo_settings) as gateway:
        one = gateway.query(FULL_RECORD, uscc=usccs[0])
        many = gateway.query(FULL_RECORDS, u=usccs)
    assert "errors" not in one and "errors" not in many
    assert one["data"]["entity"]["dishonestDebtorRecords"]
    assert many["data"]["entities"][1]["taxRatings"][0]["grade"] == "D"
    assert made == []


def test_a_failing_source_is_asked_once_per_request(demo_settings, population, monkeypatch):
    gateway = Gateway(demo_settings)
    (connector,) = gateway.registry.serving("commitments")
    calls = []

    async def failing(keys):
        calls.append(list(keys))
        raise SourceUnavailable(connector.id, f"source {connector.id} is unavailable")

    replace_batch(monkeypatch, connector, "commitments", failing)
    usccs = [e.uscc for e in population.enterprises[:3]]
    with gateway:
        body = gateway.query("""query($u: [USCC!]!) { entities(usccs: $u) {
            commitments { kind } registration { name } } }""", u=usccs)
    assert calls == [usccs]
    assert [e["path"] for e in body["errors"]] == [
        ["entities", i, "commitments"] for i in range(3)]
    assert all(e["registration"]["name"] for e in body["data"]["entities"])


def test_more_subjects_than_the_maximum_is_a_clear_error(demo_settings, population):
    settings = dataclasses.replace(demo_settings, max_subjects_per_request=3)
    gateway = Gateway(settings)
    counter = StatementCounter(gateway.registry)
    usccs = [e.uscc for e in population.enterprises[:4]]
    with gateway:
        response = gateway.post(
            "query($u: [USCC!]!) { entities(usccs: $u) { penalties { facts } } }", u=usccs)
        aliased = gateway.post(
            "query($u: [USCC!]!, $v: USCC!) { a: entity(uscc: $v) { uscc } "
            "b: entity(uscc: $v) { uscc } c: entities(usccs: $u) { uscc } }",
            u=usccs[:2], v=usccs[0])
    for refused, found in ((response, 4), (aliased, 4)):
        assert refused.status_code == 400
        body = refused.json()
        assert "data" not in body
        (error,) = body["errors"]
        assert error["message"] == (
            f"the number of subjects asked about exceeds the limit of 3 (got {found})")
        assert error["extensions"] == {"code": "TOO_MANY_SUBJECTS", "limit": 3}
    assert counter.total == 0


def test_sibling_sources_are_read_concurrently(demo_settings, population):
    delay_ms = 300
    settings = with_all_sources(demo_settings, simulated_latency_ms=delay_ms)
    gateway = Gateway(settings)
    timeline = FetchTimeline(gateway.registry)
    with gateway:
        body = gateway.query(FULL_RECORD, uscc=population.showcase["dishonest_debtor"].uscc)
    assert "errors" not in body
    assert set(timeline.intervals) == source_ids(settings)
    intervals = [i for per_source in timeline.intervals.values() for i in per_source]
    # Every source's statements were in flight at the same moment.
    assert max(start for start, _ in intervals) < min(end for _, end in intervals)


def test_a_failing_source_fails_only_its_own_fields(demo_settings, population, tmp_path):
    secret_path = tmp_path / "no-such-dir" / "court.db"
    settings = with_source(demo_settings, "hz-court", url=f"sqlite+aiosqlite:///{secret_path}")
    gateway = Gateway(settings)
    with gateway:
        body = gateway.query(FULL_RECORD, uscc=population.showcase["dishonest_debtor"].uscc)
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
    gateway = Gateway(settings)
    tax = gateway.registry.connectors["hz-tax"].record_types
    tax_fields = {field for field, rt in ENTITY_RECORD_TYPES.items() if rt.name in tax}
    assert "taxRatings" in tax_fields
    with gateway:
        body = gateway.query(FULL_RECORD, uscc=population.showcase["tax_d"].uscc)
    entity = body["data"]["entity"]
    assert all(entity[field] is None for field in tax_fields)
    assert entity["registration"] is not None
    assert all(value is not None for field, value in entity.items() if field not in tax_fields)
    codes = {(tuple(e["path"]), e["extensions"]["code"], e["extensions"]["source"]) for e in body["errors"]}
    assert codes == {(("entity", field), "SOURCE_TIMEOUT", "hz-tax") for field in tax_fields}


def test_unexpected_errors_are_masked(demo_settings, population, monkeypatch):
    gateway = Gateway(demo_settings)
    (connector,) = gateway.registry.serving("commitments")

    async def broken(keys):
        raise RuntimeError("password=hunter2 host=10.0.0.1")

    replace_batch(monkeypatch, connector, "commitments", broken)
    with gateway:
        body = gateway.query(FULL_RECORD, uscc=population.showcase["clean"].uscc)
    (error,) = body["errors"]
    assert error["message"] == "Internal error."
    assert "hunter2" not in str(body)
    assert body["data"]["entity"]["registration"] is not None


def test_a_batch_answering_the_wrong_number_of_keys_fails_its_fields_only(
    demo_settings, population, monkeypatch
):
    gateway = Gateway(demo_settings)
    (connector,) = gateway.registry.serving("commitments")

    async def short(keys):
        return []  # the DataLoader contract: one value per key

    replace_batch(monkeypatch, connector, "commitments", short)
    usccs = [e.uscc for e in population.enterprises[:2]]
    with gateway:
        body = gateway.query("""query($u: [USCC!]!) { entities(usccs: $u) {
            commitments { kind } registration { name } } }""", u=usccs)
    assert [(e["path"], e["message"]) for e in body["errors"]] == [
        (["entities", i, "commitments"], "Internal error.") for i in range(2)]
    assert all(e["registration"]["name"] for e in body["data"]["entities"])


def test_name_search_pages_through_results(demo_settings, population):
    query = """query($name: String!, $after: String) {
      searchEntities(name: $name, first: 2, after: $after) {
        entities { uscc registration { name } } endCursor hasNextPage } }"""
    name = population.enterprises[0].name[3:7]
    expected = sorted(e.uscc for e in population.enterprises if name in e.name)
    assert len(expected) >= 1
    gateway = Gateway(demo_settings)
    seen, after = [], None
    with gateway:
        while True:
            page = gateway.query(query, name=name, after=after)["data"]["searchEntities"]
            seen += [e["uscc"] for e in page["entities"]]
            assert all(name in e["registration"]["name"] for e in page["entities"])
            if not page["hasNextPage"]:
                assert page["endCursor"] is None
                break
            after = page["endCursor"]
        short = gateway.query('{ searchEntities(name: " a ") { hasNextPage } }')
        bad_cursor = gateway.query('{ searchEntities(name: "惠州", after: "zzz") { hasNextPage } }')
    assert seen == expected
    assert short["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert bad_cursor["errors"][0]["message"] == "after is not a cursor returned by searchEntities"


def test_person_records_and_companies(demo_settings, population):
    person = population.person_showcase["person_dishonest_debtor"]
    firms = sorted(e.uscc for e in population.enterprises if e.legal_representative == person)
    query = """query($id: ResidentId!) { person(idNumber: $id) {
      idNumber dishonestDebtorRecords { subjectKind subjectName removedOn }
      legalRepresentativeOf { uscc registration { legalRepresentative } } } }"""
    gateway = Gateway(demo_settings)
    with gateway:
        body = gateway.query(query, id=person.id_number)
        invalid = gateway.query(query, id="110105194912310021")
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
    gateway = Gateway(settings)
    with gateway:
        health = gateway.client.get("/healthz")
        response = gateway.post("{ __typename }", headers={"X-Request-Id": "trace-12345678"})
        fresh = gateway.post("{ __typename }")
    assert health.status_code == 503  # /healthz is /readyz: a department's database is down
    health = health.json()
    assert health["status"] == "unavailable"
    assert health["sources"]["hz-hrss"] == "unavailable"
    assert health["sources"]["hz-market"] == "ok"
    assert response.headers["X-Request-Id"] == "trace-12345678"
    assert len(fresh.headers["X-Request-Id"]) == 32


def test_graphiql_is_served_when_enabled(demo_settings):
    gateway = Gateway(demo_settings)
    with gateway:
        page = gateway.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


def test_the_start_up_heap_is_frozen_out_of_full_collections(demo_settings):
    import gc

    with Gateway(demo_settings):
        assert gc.get_freeze_count() > 0
