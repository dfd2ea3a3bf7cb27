"""A schema per purpose: introspection shows what the caller's declared
purpose may use, with the policy in each field's description; a client
registered with ``full_schema = true`` sees every field; ``export-schema
--purpose`` prints the same view."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from graphql import (
    GraphQLObjectType,
    build_client_schema,
    build_schema,
    get_introspection_query,
    lexicographic_sort_schema,
    parse,
    print_ast,
    print_schema,
    validate,
    validate_schema,
)

from core.errors import ConfigurationError
from gateway import purpose_schema as purpose_schema_module
from gateway.admission import Admission
from gateway.catalog import DEFAULT_CATALOG, load_catalog
from gateway.cli import main
from gateway.clients import parse_clients
from gateway.enforcement import denied_fields
from gateway.purpose_schema import PurposeSchemas, purpose_schemas
from gateway.schema import build_policy, export_sdl, graphql_schema
from gateway.settings import Settings
from tests.gateway_fixtures import Gateway

PUBLIC = ("xinyong-huizhou", "PUBLIC_DISCLOSURE")
BANK = ("bank-icbc-huizhou", "FINANCING")
SUPERVISOR = ("hz-market-app", "SUPERVISION")
AS = [SUPERVISOR, PUBLIC, BANK, ("hz-procurement", "PROCUREMENT_REVIEW"),
      ("hz-credit-auditor", "AUDIT")]
INTROSPECTION = get_introspection_query(descriptions=True)


@pytest.fixture(scope="module")
def policy():
    return build_policy(load_catalog())


@pytest.fixture(scope="module")
def views(policy) -> PurposeSchemas:
    return purpose_schemas(policy)


@pytest.fixture(scope="module")
def gateway(demo_settings):
    with Gateway(demo_settings) as gateway:
        yield gateway


def introspected(gateway: Gateway, as_: tuple[str, str]):
    """The schema a GraphiQL of ``as_`` builds from its introspection query."""
    body = gateway.query(INTROSPECTION, as_)
    assert "errors" not in body, body["errors"]
    return build_client_schema(body["data"])


def sdl(schema) -> str:
    return print_schema(lexicographic_sort_schema(schema))


def description(schema, coordinate: str) -> str:
    type_name, field_name = coordinate.split(".")
    return schema.get_type(type_name).fields[field_name].description


# ---- over HTTP: GraphiQL's introspection query ----

@pytest.mark.parametrize("as_", AS, ids=[purpose for _, purpose in AS])
def test_graphiqls_introspection_query_answers_the_purposes_schema(gateway, views, as_, capsys):
    client_schema = introspected(gateway, as_)
    assert validate_schema(client_schema) == []
    assert sdl(client_schema) == sdl(views.get(as_[1]))
    # ... the very view `export-schema --purpose` prints
    assert main(["export-schema", "--purpose", as_[1], "--config", "/nonexistent.toml"]) == 0
    assert sdl(client_schema) == sdl(build_schema(capsys.readouterr().out))


def test_a_denied_field_is_absent_and_an_allowed_one_described(gateway):
    schema = introspected(gateway, PUBLIC)
    entity = schema.get_type("Entity")
    assert "repairs" not in entity.fields and "accessHistory" not in entity.fields
    # types only the denied fields reached are gone; what is left stays whole
    assert schema.get_type("CreditRepair") is None and schema.get_type("RepairStatus") is None
    assert schema.get_type("AuditTrailPage") is None
    assert "auditTrail" not in schema.query_type.fields
    assert schema.get_type("Severity") is not None and schema.get_type("USCC") is not None
    penalties = description(schema, "Entity.penalties")
    assert penalties.startswith(description(graphql_schema(), "Entity.penalties") + "\n\n")
    assert "**Policy for PUBLIC_DISCLOSURE** (公示查询)" in penalties
    assert "data item `penalties` (行政处罚信息), disclosure class `public`" in penalties
    assert "allowed for this purpose" in penalties
    # the row rules this purpose applies to the list
    assert "row rules: `penalty_publicity`: only records within their publicity window" in penalties
    assert "MINOR records are never disclosed" in penalties
    assert "`extensions.policy.withheldRecords`" in penalties
    ratings = description(schema, "Entity.taxRatings")
    assert "`tax_rating_grades`: only records whose `grade` is A, D" in ratings
    # masked identifiers say so
    assert "masked: resident ID numbers keep only their first 6 and last 4" in description(
        schema, "DishonestDebtorRecord.subjectIdNumber")
    # the interface stays, with what every remaining implementer has
    assert set(schema.get_type("CreditRecord").fields) == {"provenance"}


def test_a_field_gated_by_the_subjects_authorization_says_so(gateway):
    schema = introspected(gateway, BANK)
    for coordinate, category in [("Entity.taxRatings", "`tax` (纳税信息)"),
                                 ("FinancingProfile.tax", "`tax` (纳税信息)"),
                                 ("Entity.socialInsurance", "`social_insurance` (社会保险信息)")]:
        text = description(schema, coordinate)
        assert "needs the subject's authorization" in text, coordinate
        assert f"for data category {category}" in text, coordinate
        assert "allowed for this purpose" not in text
    assert "allowed for this purpose" in description(schema, "FinancingProfile.identity")
    assert "repairs" not in schema.get_type("Entity").fields


def test_the_introspected_schema_lints_as_the_gateway_decides(gateway, population):
    """What GraphiQL's linting accepts runs; what it flags is what the gateway denies."""
    schema = introspected(gateway, PUBLIC)
    allowed = parse('query($u: USCC!) { entity(uscc: $u) { registration { name } '
                    'penalties { decisionNumber severity publicityEndsOn } } }')
    denied = parse('query($u: USCC!) { entity(uscc: $u) { registration { name } '
                   'repairs { status } } }')
    assert validate(schema, allowed) == []
    (error,) = validate(schema, denied)
    assert "Cannot query field 'repairs' on type 'Entity'" in error.message
    # ... and the gateway agrees: the one runs clean, the other is denied
    uscc = population.showcase["clean"].uscc
    assert "errors" not in gateway.query(print_ast(allowed), PUBLIC, u=uscc)
    body = gateway.query(print_ast(denied), PUBLIC, u=uscc)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN_FOR_PURPOSE"


def test_type_lookups_are_answered_from_the_purposes_schema(gateway):
    body = gateway.query('{ repair: __type(name: "CreditRepair") { name } '
                         'entity: __type(name: "Entity") { fields { name } } __typename }', PUBLIC)
    assert body["data"]["repair"] is None and body["data"]["__typename"] == "Query"
    names = {f["name"] for f in body["data"]["entity"]["fields"]}
    assert "penalties" in names and "repairs" not in names


def test_a_mixed_operation_keeps_introspecting_the_whole_schema(gateway):
    body = gateway.query('{ __type(name: "Entity") { fields { name } } '
                         'myAccess { purpose { code } } }', PUBLIC)
    assert "errors" not in body, body["errors"]
    assert "repairs" in {f["name"] for f in body["data"]["__type"]["fields"]}
    assert body["data"]["myAccess"]["purpose"]["code"] == "PUBLIC_DISCLOSURE"


def test_introspection_is_audited_as_before(gateway):
    body = gateway.query("{ __schema { queryType { name } } }", PUBLIC)
    assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}}
    assert body["extensions"]["policy"]["purpose"] == "PUBLIC_DISCLOSURE"


def test_one_view_per_purpose_is_built_once_and_reused(demo_settings, monkeypatch):
    built = []
    original = purpose_schema_module.purpose_schema

    def counting(schema, catalog, decision, record_types, full=False):
        built.append((decision.purpose.code, full))
        return original(schema, catalog, decision, record_types, full)

    monkeypatch.setattr(purpose_schema_module, "purpose_schema", counting)
    with Gateway(demo_settings) as gateway:
        for _ in range(3):
            for as_ in (PUBLIC, SUPERVISOR, ("hz-market-app", "SUPERVISION")):
                gateway.query("{ __schema { types { name } } }", as_)
    assert sorted(built) == [("PUBLIC_DISCLOSURE", False), ("SUPERVISION", False)]


# ---- a full-schema client ----

def with_full_schema(settings: Settings, client_id: str, tmp_path: Path) -> Settings:
    text = Path(settings.auth.clients_file).read_text(encoding="utf-8")
    text = text.replace(f"[clients.{client_id}]\n", f"[clients.{client_id}]\nfull_schema = true\n")
    registry = tmp_path / "clients-full-schema.toml"
    registry.write_text(text, encoding="utf-8")
    return dataclasses.replace(settings, auth=dataclasses.replace(
        settings.auth, clients_file=str(registry)))


def test_a_full_schema_client_sees_every_field_described_for_its_purpose(
        demo_settings, tmp_path, views):
    settings = with_full_schema(demo_settings, "xinyong-huizhou", tmp_path)
    with Gateway(settings) as gateway:
        schema = introspected(gateway, PUBLIC)
        others = introspected(gateway, ("shenzhen-gateway", "PUBLIC_DISCLOSURE"))
    whole = build_schema(export_sdl())
    assert {name: sorted(getattr(t, "fields", {})) for name, t in schema.type_map.items()} == {
        name: sorted(getattr(t, "fields", {})) for name, t in whole.type_map.items()}
    repairs = description(schema, "Entity.repairs")
    assert "DENIED for this purpose" in repairs and "`FORBIDDEN_FOR_PURPOSE`" in repairs
    assert "data item `repairs` (信用修复记录), disclosure class `internal`" in repairs
    assert sdl(schema) == sdl(views.get("PUBLIC_DISCLOSURE", full=True))
    # another client of the purpose, not registered so, gets the purpose's schema
    assert "repairs" not in others.get_type("Entity").fields


def test_full_schema_is_a_strict_boolean_of_the_registry():
    table = {"organization": "o", "city": "惠州", "kind": "internal_department",
             "purposes": ["SUPERVISION"]}
    clients = parse_clients({"clients": {"a": table, "b": {**table, "full_schema": True}}},
                            ["SUPERVISION"])
    assert not clients["a"].full_schema and clients["b"].full_schema
    with pytest.raises(ConfigurationError, match="full_schema must be true or false"):
        parse_clients({"clients": {"a": {**table, "full_schema": "yes"}}}, ["SUPERVISION"])
    with pytest.raises(ConfigurationError, match="unknown key"):
        parse_clients({"clients": {"a": {**table, "full_schemas": True}}}, ["SUPERVISION"])


# ---- the views themselves ----

@pytest.mark.parametrize("full", [False, True], ids=["purpose", "full"])
def test_every_purposes_view_is_a_valid_schema_decided_by_the_policy(policy, views, full):
    whole = graphql_schema()
    for purpose, decision in policy.decisions.items():
        view = views.get(purpose, full)
        assert views.get(purpose, full) is view  # cached
        assert validate_schema(view) == []
        for name, type_ in view.type_map.items():
            if name.startswith("__") or not isinstance(type_, GraphQLObjectType):
                continue
            kept = set(type_.fields)
            permitted = {f for f in whole.get_type(name).fields
                         if full or decision.permits(f"{name}.{f}")}
            assert kept == permitted, (purpose, name)  # the decision, nothing else
        for name in ("Query", "Entity"):
            for field_name in view.get_type(name).fields:
                assert f"**Policy for {purpose}**" in description(view, f"{name}.{field_name}")


def test_the_views_sdl_has_the_descriptions(views):
    text = views.sdl("SUPERVISION")
    assert text.endswith("\n") and "repairs: [CreditRepair!]" in text
    assert "The schema for purpose SUPERVISION (事中事后监管)" in text
    assert "auditTrail" not in text


def test_export_schema_purpose_full_and_unknown(capsys, views):
    assert main(["export-schema", "--purpose", "AUDIT", "--full", "--config", "/none.toml"]) == 0
    assert capsys.readouterr().out == views.sdl("AUDIT", full=True)
    assert main(["export-schema", "--purpose", "NOPE", "--config", "/none.toml"]) == 2
    assert "unknown purpose 'NOPE'" in capsys.readouterr().err
    assert main(["export-schema", "--full"]) == 2
    assert main(["export-schema"]) == 0
    assert capsys.readouterr().out == export_sdl()


def test_export_schema_purpose_reads_the_configured_catalog(tmp_path, capsys):
    variant = tmp_path / "policy.toml"
    text = DEFAULT_CATALOG.read_text(encoding="utf-8")
    text = re.sub(r'(\[items\.repairs\]\nname = .*\nclass = .*\n)purposes = .*\n',
                  r'\1purposes = ["CREDIT_REPAIR_REVIEW"]\n', text)
    variant.write_text(text, encoding="utf-8")
    assert main(["export-schema", "--purpose", "SUPERVISION", "--catalog", str(variant)]) == 0
    assert "repairs" not in build_schema(capsys.readouterr().out).get_type("Entity").fields


def test_a_catalog_change_that_would_empty_a_type_drops_the_way_to_it(policy):
    catalog = policy.catalog
    decision = policy.decisions["SUPERVISION"]
    # SUPERVISION without any field of the search page: the field leading there goes too
    page = {"EntitySearchPage.entities", "EntitySearchPage.endCursor",
            "EntitySearchPage.hasNextPage"}
    narrowed = dataclasses.replace(decision, allowed=decision.allowed - page)
    view = purpose_schema_module.purpose_schema(graphql_schema(), catalog, narrowed, {})
    assert view.get_type("EntitySearchPage") is None
    assert "searchEntities" not in view.query_type.fields
    assert validate_schema(view) == []


# ---- which operations are introspection ----

@pytest.mark.parametrize(("query", "expected"), [
    ("{ __typename }", True),
    ("{ __schema { queryType { name } } }", True),
    ('{ t: __type(name: "Entity") { name } __typename }', True),
    ('query { ...F } fragment F on Query { __type(name: "Entity") { name } }', True),
    ("{ ... on Query { __schema { types { name } } } }", True),
    ("{ __typename myAccess { purpose { code } } }", False),
    ("{ myAccess { __typename } }", False),
])
def test_an_introspection_operation_has_only_introspection_at_its_root(
        demo_settings, query, expected):
    admission = Admission(graphql_schema(), demo_settings)
    assert admission.admit(query, None, {}, True).introspection_only is expected


def test_denied_fields_of_a_stored_document_count_every_condition(policy):
    text = ('query V($x: Boolean = false) { entity(uscc: "91441302KXPDBTGD0L") { '
            'registration { name } repairs @include(if: $x) { status } } }')
    public = policy.decisions["PUBLIC_DISCLOSURE"]
    assert denied_fields(graphql_schema(), text, public) == ("Entity.repairs",)
    assert denied_fields(graphql_schema(), text, policy.decisions["SUPERVISION"]) == ()
    assert denied_fields(graphql_schema(), "{ entity { nothing } }", public) is None
