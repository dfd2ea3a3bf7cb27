"""Persisted operations over HTTP: running a stored document by
``documentId``, persisted-only clients, the ``credit-gateway operations``
commands, and the demo's bank portal."""

from __future__ import annotations

import dataclasses
import re
import uuid
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from demo.generate import demo_operations
from gateway.app import create_app
from gateway.catalog import load_catalog
from gateway.cli import main
from gateway.clients import load_clients
from gateway.operations import (
    document_hash,
    operation_of,
    read_operations,
    schema_problems,
    write_operations,
)
from gateway.schema import graphql_schema
from gateway.settings import load_settings
from tests.gateway_fixtures import Gateway, StatementCounter, demo_token
from tests.test_audit_trail import trail
from tests.test_operations import (
    BANKS, HZRCB, ICBC, ICBC_ONLY, NAMES, PORTFOLIO_TEXT, PROFILE_TEXT, SUPERVISOR, id_of,
)


# ---- over HTTP ----

@pytest.fixture(scope="module")
def settings(generated_demo_settings, tmp_path_factory):
    """The demo's settings (its banks persisted-only), with the demo's
    operations and two more in a store of this module's, and an audit trail."""
    folder = tmp_path_factory.mktemp("operations")
    store = folder / "operations.toml"
    demo = read_operations(generated_demo_settings.operations_file)
    write_operations(store, [*demo.values(), operation_of(NAMES),
                             operation_of(ICBC_ONLY, clients=["bank-icbc-huizhou"])])
    return dataclasses.replace(
        generated_demo_settings, operations_file=str(store),
        audit=dataclasses.replace(generated_demo_settings.audit,
                                  url=f"sqlite+aiosqlite:///{folder / 'audit.db'}"))


@pytest.fixture(scope="module")
def gateway(settings):
    with Gateway(settings) as gateway:
        yield gateway


def code_of(response) -> str:
    return response.json()["errors"][0]["extensions"]["code"]


def test_a_bank_runs_its_stored_profile_and_the_audit_trail_names_it(gateway, settings, population):
    firm = population.showcase["financing_authorized"]
    request_id = uuid.uuid4().hex
    response = gateway.run(id_of(PROFILE_TEXT), ICBC, headers={"X-Request-Id": request_id},
                           variables={"uscc": firm.uscc})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    profile = body["data"]["financingProfile"]
    assert profile["uscc"] == firm.uscc and profile["identity"]["name"] == firm.name
    assert profile["tax"]["release"]["status"] == "AVAILABLE"  # the enterprise authorized ICBC
    assert body["extensions"]["policy"]["purpose"] == "FINANCING"
    (record,) = [r.entry for r in trail(settings) if r.entry.request_id == request_id]
    assert (record.kind, record.client_id, record.outcome) == ("release", "bank-icbc-huizhou", "ok")
    assert record.subjects == (firm.uscc,)
    assert "FinancingProfile.tax" in record.released
    assert record.legal_basis[1].startswith("enterprise_authorization:")
    assert record.detail == f"persisted operation BankFinancingProfile {id_of(PROFILE_TEXT)}"


def test_a_portfolio_runs_with_its_operation_name(gateway, population):
    codes = [population.showcase[case].uscc for case in ("financing_authorized", "clean")]
    response = gateway.run(id_of(PORTFOLIO_TEXT), HZRCB, variables={"usccs": codes},
                           operationName="BankPortfolio")
    assert response.status_code == 200, response.text
    profiles = response.json()["data"]["financingProfiles"]
    assert [p["uscc"] for p in profiles] == codes
    # the authorization names the other bank: HZRCB's tax part is withheld
    assert profiles[0]["tax"]["release"]["status"] == "WITHHELD"
    other = gateway.run(id_of(PORTFOLIO_TEXT), HZRCB, variables={"usccs": codes},
                        operationName="Other")
    assert other.status_code == 400 and code_of(other) == "UNKNOWN_OPERATION_NAME"


def test_an_operation_for_any_client_runs_under_each_clients_policy(gateway, population):
    firm = population.showcase["clean"]
    supervisor = gateway.run(id_of(NAMES), SUPERVISOR, variables={"u": firm.uscc})
    assert supervisor.json()["data"]["entity"]["registration"]["name"] == firm.name
    bank = gateway.run(id_of(NAMES), ICBC, variables={"u": firm.uscc})
    assert bank.status_code == 200 and bank.json()["data"]["entity"]["registration"]["name"]


def test_an_unknown_id_and_another_clients_id_are_refused_alike(gateway, settings):
    unknown = "sha256:" + document_hash("query Nothing { __typename }")
    for document_id, as_ in [(unknown, ICBC), (id_of(ICBC_ONLY), HZRCB),
                             (id_of(PROFILE_TEXT), ("xinyong-huizhou", "PUBLIC_DISCLOSURE"))]:
        counter = StatementCounter(gateway.registry)
        request_id = uuid.uuid4().hex
        response = gateway.run(document_id, as_, headers={"X-Request-Id": request_id},
                               variables={"u": "91441302KXPDBTGD0L"})
        assert response.status_code == 400, response.text
        assert response.json() == {"errors": [{
            "message": f"no persisted operation {document_id} for this client",
            "extensions": {"code": "PERSISTED_OPERATION_NOT_FOUND"}}]}
        assert response.headers["X-Request-Id"] == request_id
        assert counter.total == 0
        (event,) = [r.entry for r in trail(settings) if r.entry.request_id == request_id]
        assert (event.kind, event.outcome) == ("security_event", "persisted_operation_not_found")
    # ICBC's own operation runs for ICBC
    own = gateway.run(id_of(ICBC_ONLY), ICBC, variables={"u": "91441302KXPDBTGD0L"})
    assert own.status_code == 200, own.text


def test_a_plain_json_client_gets_the_not_found_error_with_200(gateway):
    response = gateway.run("sha256:" + "0" * 64, ICBC, headers={"Accept": "application/json"})
    assert response.status_code == 200 and code_of(response) == "PERSISTED_OPERATION_NOT_FOUND"
    assert "data" not in response.json()


def test_a_persisted_only_client_may_not_send_text(gateway, settings, population):
    counter = StatementCounter(gateway.registry)
    request_id = uuid.uuid4().hex
    response = gateway.post(PROFILE_TEXT, ICBC, headers={"X-Request-Id": request_id},
                            uscc=population.showcase["financing_authorized"].uscc)
    assert response.status_code == 403
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "PERSISTED_OPERATION_REQUIRED"}
    assert "documentId" in error["message"] and "data" not in response.json()
    assert counter.total == 0
    # refused before parsing: not even a broken text gets as far as the parser
    assert code_of(gateway.post("{ entity(", HZRCB)) == "PERSISTED_OPERATION_REQUIRED"
    (event,) = [r.entry for r in trail(settings) if r.entry.request_id == request_id]
    assert (event.kind, event.client_id, event.outcome) == (
        "security_event", "bank-icbc-huizhou", "persisted_operation_required")


@pytest.mark.parametrize(("body", "message"), [
    ({"query": NAMES, "documentId": id_of(NAMES)}, "either a `query` or a `documentId`, not both"),
    ({"documentId": document_hash(NAMES)}, "`documentId` must be `sha256:`"),
    ({"documentId": id_of(NAMES).upper()}, "`documentId` must be `sha256:`"),
    ({"documentId": "md5:" + "0" * 32}, "`documentId` must be `sha256:`"),
    ({"documentId": 5}, "`documentId` must be `sha256:`"),
    ({"documentId": id_of(NAMES), "variables": [1]}, "`variables` must be an object"),
])
def test_malformed_persisted_requests_are_400(gateway, body, message):
    for as_ in (ICBC, SUPERVISOR):
        response = gateway.client.post("/graphql", json=body, headers={
            "Authorization": f"Bearer {demo_token(gateway.settings, as_[0])}",
            "X-Purpose-Of-Use": as_[1], "Accept": "application/json"})
        assert response.status_code == 400, response.text
        error = response.json()["errors"][0]
        assert error["extensions"] == {"code": "BAD_REQUEST"} and message in error["message"]


def test_every_limit_applies_to_a_stored_document(settings, population):
    codes = [e.uscc for e in population.enterprises[:3]]
    with Gateway(dataclasses.replace(settings, max_subjects_per_request=2)) as gateway:
        response = gateway.run(id_of(PORTFOLIO_TEXT), ICBC, variables={"usccs": codes})
    assert response.status_code == 400 and code_of(response) == "TOO_MANY_SUBJECTS"
    with Gateway(dataclasses.replace(settings, max_depth=3)) as gateway:
        response = gateway.run(id_of(PROFILE_TEXT), ICBC, variables={"uscc": codes[0]})
    assert response.status_code == 400 and code_of(response) == "QUERY_TOO_DEEP"


def test_without_an_operations_file_every_id_is_not_found(settings):
    with Gateway(dataclasses.replace(settings, operations_file="")) as gateway:
        response = gateway.run(id_of(NAMES), SUPERVISOR, variables={"u": "91441302KXPDBTGD0L"})
    assert response.status_code == 400 and code_of(response) == "PERSISTED_OPERATION_NOT_FOUND"


def test_an_operation_naming_an_unregistered_client_stops_start_up(settings, tmp_path):
    path = tmp_path / "ops.toml"
    write_operations(path, [operation_of(NAMES, clients=["bank-nobody"])])
    with pytest.raises(ConfigurationError, match=r"unknown client\(s\) \['bank-nobody'\]"):
        create_app(dataclasses.replace(settings, operations_file=str(path)))


# ---- the command line ----

@pytest.fixture
def config(config_with_own_operations):
    return config_with_own_operations


def test_operations_add_list_remove_round_trip(config, tmp_path, capsys, population):
    store = tmp_path / "ops" / "operations.toml"
    profile = tmp_path / "profile.graphql"
    profile.write_text(ICBC_ONLY, encoding="utf-8")
    anonymous = tmp_path / "anonymous.graphql"
    anonymous.write_text(NAMES.replace("query Names", "query"), encoding="utf-8")

    assert main(["operations", "add", str(profile), "--client", "bank-icbc-huizhou",
                 "--config", str(config)]) == 0
    assert store.exists()
    assert capsys.readouterr().out == (f"added IcbcOnly\t{id_of(ICBC_ONLY)}\tbank-icbc-huizhou\n")
    assert main(["operations", "add", str(anonymous), "--config", str(config)]) == 1
    assert "anonymous: give it a name" in capsys.readouterr().err
    assert main(["operations", "add", str(anonymous), "--name", "Names",
                 "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["operations", "add", str(profile), "--client", "bank-icbc-huizhou",
                 "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("already registered: IcbcOnly")

    assert main(["operations", "list", "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"IcbcOnly\t{id_of(ICBC_ONLY)}\tbank-icbc-huizhou",
        f"Names\t{id_of(anonymous.read_text(encoding='utf-8'))}\t(any client)",
    ]

    # What the command registered, the gateway runs.
    settings = load_settings(config, env={})
    assert settings.operations_file == str(store)
    firm = population.showcase["financing_authorized"]
    with Gateway(settings) as gateway:
        response = gateway.run(id_of(ICBC_ONLY), ICBC, variables={"u": firm.uscc})
    assert response.json()["data"] == {"financingProfile": {"uscc": firm.uscc}}

    assert main(["operations", "remove", "IcbcOnly", "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"removed IcbcOnly\t{id_of(ICBC_ONLY)}\n"
    names_id = id_of(anonymous.read_text(encoding="utf-8"))
    assert main(["operations", "remove", names_id, "--config", str(config)]) == 0
    assert main(["operations", "remove", "IcbcOnly", "--config", str(config)]) == 1
    assert "no persisted operation 'IcbcOnly'" in capsys.readouterr().err
    assert read_operations(store) == {}


def test_operations_add_refuses_what_would_not_run(config, tmp_path, capsys):
    store = tmp_path / "ops" / "operations.toml"
    invalid = tmp_path / "invalid.graphql"
    invalid.write_text("query Bad($u: USCC!) { entity(uscc: $u) { nosuchField } }",
                       encoding="utf-8")
    assert main(["operations", "add", str(invalid), "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "Cannot query field 'nosuchField'" in err and "does not validate" in err
    assert not store.exists()

    names = tmp_path / "names.graphql"
    names.write_text(NAMES, encoding="utf-8")
    assert main(["operations", "add", str(names), "--client", "bank-nobody",
                 "--config", str(config)]) == 1
    assert "no client 'bank-nobody'" in capsys.readouterr().err
    assert main(["operations", "add", str(names), "--client", "hz-market-app",
                 "--config", str(config)]) == 0
    other = tmp_path / "other.graphql"
    other.write_text(NAMES.replace("name }", "name status }"), encoding="utf-8")
    assert main(["operations", "add", str(other), "--config", str(config)]) == 1
    assert "names are unique per client" in capsys.readouterr().err
    assert main(["operations", "add", str(other), "--client", "hz-procurement",
                 "--config", str(config)]) == 0
    assert main(["operations", "add", str(names), "--client", "hz-procurement",
                 "--config", str(config)]) == 1
    assert "already registered as 'Names' for hz-market-app: remove it first" in (
        capsys.readouterr().err)
    # two of one name: removed by hash only
    assert main(["operations", "remove", "Names", "--config", str(config)]) == 1
    assert "remove one by its hash" in capsys.readouterr().err
    assert len(read_operations(store)) == 2


def test_operations_need_an_operations_file(config, capsys):
    config.write_text(re.sub(r'(?m)^operations_file = .*\n', "",
                             config.read_text(encoding="utf-8")), encoding="utf-8")
    assert main(["operations", "list", "--config", str(config)]) == 2
    assert "no operations_file in [gateway]" in capsys.readouterr().err


# ---- the demo ----

def test_the_demo_banks_run_only_their_two_registered_operations(generated_demo_settings):
    clients = load_clients(generated_demo_settings.auth.clients_file, load_catalog(None).purposes)
    banks = sorted(c.id for c in clients.values() if c.kind.value == "bank")
    assert banks == sorted(BANKS)
    assert all(clients[bank].persisted_only for bank in banks)
    assert [c.id for c in clients.values() if c.persisted_only] == BANKS

    stored = read_operations(generated_demo_settings.operations_file, clients)
    assert sorted((o.name, o.clients) for o in stored.values()) == [
        ("BankFinancingProfile", tuple(BANKS)), ("BankPortfolio", tuple(BANKS))]
    assert {o.document for o in stored.values()} == {PROFILE_TEXT, PORTFOLIO_TEXT}
    assert set(stored.values()) == set(demo_operations())
    for operation in stored.values():
        assert schema_problems(graphql_schema(), operation) == [], operation.name


def test_a_demo_token_runs_the_bank_portals_operation(generated_demo_settings, capsys, population):
    config = str(Path(generated_demo_settings.auth.jwks_file).with_name("gateway.toml"))
    assert main(["token", "--client", "bank-hzrcb", "--config", config]) == 0
    token = capsys.readouterr().out.strip()
    firm = population.showcase["financing_authorized"]
    with Gateway(load_settings(config, env={})) as gateway:
        response = gateway.client.post("/graphql", json={
            "documentId": id_of(PROFILE_TEXT), "variables": {"uscc": firm.uscc}},
            headers={"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": "FINANCING"})
        assert response.status_code == 200, response.text
        assert response.json()["data"]["financingProfile"]["identity"]["name"] == firm.name
        refused = gateway.client.post("/graphql", json={"query": PROFILE_TEXT}, headers={
            "Authorization": f"Bearer {token}", "X-Purpose-Of-Use": "FINANCING"})
        assert refused.status_code == 403
