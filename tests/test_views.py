"""Saved views: internal apps' named operations in the persisted-operation
store (``credit-gateway views``), run by ``documentId``, listed by
``Query.myViews``, and reported by ``policy check`` when a catalog change
leaves one that no purpose of its client may run."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from gateway.catalog import DEFAULT_CATALOG
from gateway.cli import main
from gateway.operations import (
    OperationStore,
    operation_of,
    read_operations,
    views_of,
    with_view,
    without_view,
    write_operations,
)
from gateway.settings import load_settings
from tests.gateway_fixtures import Gateway

APP = "hz-market-app"  # LICENSING_REVIEW, SUPERVISION, JOINT_PUNISHMENT
# Runs under SUPERVISION only: credit repairs are for supervision (and repair review).
RECORD = ("query Record($uscc: USCC!) {\n  entity(uscc: $uscc) {\n    registration { name }\n"
          "    repairs { status recordKind }\n  }\n}\n")
# Runs under every purpose of the app.
NAMES = "query Names($uscc: USCC!) { entity(uscc: $uscc) { registration { name status } } }\n"
# Runs under none of them.
AUDIT = "query AuditView { auditTrail { records { seq } } }\n"


def id_of(text: str) -> str:
    return operation_of(text).document_id


@pytest.fixture
def config(config_with_own_operations):
    return config_with_own_operations


def files(tmp_path: Path, **texts: str) -> list[str]:
    paths = []
    for name, text in texts.items():
        path = tmp_path / f"{name}.graphql"
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    return paths


# ---- the store's helpers ----

def test_a_view_of_a_stored_document_adds_the_client_to_its_entry():
    names = operation_of(NAMES)
    store = with_view({}, names, APP)
    assert store[names.sha256].clients == (APP,)
    store = with_view(store, names, "hz-credit-office")
    assert store[names.sha256].clients == (APP, "hz-credit-office")
    assert with_view(store, names, APP) == store  # saved already
    anyone = {names.sha256: names}  # for any client: no one's view, left so
    assert with_view(anyone, names, APP) == anyone and views_of(anyone.values(), APP) == []
    assert [v.name for v in views_of(store.values(), APP)] == ["Names"]

    store, removed = without_view(store, "Names", APP)
    assert removed.name == "Names" and store[names.sha256].clients == ("hz-credit-office",)
    store, _ = without_view(store, "Names", "hz-credit-office")
    assert store == {}
    with pytest.raises(ConfigurationError, match="'hz-market-app' has no saved view 'Names'"):
        without_view(store, "Names", APP)


def test_two_views_of_one_name_for_one_client_are_refused():
    store = with_view({}, operation_of(NAMES), APP)
    other = operation_of(NAMES.replace("name status", "name"))
    with pytest.raises(ConfigurationError, match="names are unique per client"):
        with_view(store, other, APP)
    assert len(with_view(store, other, "hz-credit-office")) == 2


# ---- the commands ----

def test_views_add_list_remove(config, tmp_path, capsys):
    store = tmp_path / "ops" / "operations.toml"
    record, names = files(tmp_path, Record=RECORD, Names=NAMES)
    assert main(["views", "add", record, names, "--client", APP, "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"added Record\t{id_of(RECORD)}\t{APP}\tSUPERVISION",
        f"added Names\t{id_of(NAMES)}\t{APP}\tLICENSING_REVIEW, JOINT_PUNISHMENT, SUPERVISION",
    ]
    # in the operations' own store and format
    stored = read_operations(store)
    assert {(o.name, o.clients) for o in stored.values()} == {("Record", (APP,)),
                                                              ("Names", (APP,))}
    assert main(["operations", "list", "--config", str(config)]) == 0
    assert f"Record\t{id_of(RECORD)}\t{APP}" in capsys.readouterr().out

    assert main(["views", "add", names, "--client", "xinyong-huizhou",
                 "--config", str(config)]) == 0
    assert capsys.readouterr().out == (
        f"added Names\t{id_of(NAMES)}\txinyong-huizhou\tPUBLIC_DISCLOSURE\n")
    assert main(["views", "add", names, "--client", APP, "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("already saved Names")

    assert main(["views", "list", "--client", APP, "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"Names\t{id_of(NAMES)}\t{APP}\tLICENSING_REVIEW, JOINT_PUNISHMENT, SUPERVISION",
        f"Record\t{id_of(RECORD)}\t{APP}\tSUPERVISION",
    ]
    assert main(["views", "list", "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"Names\t{id_of(NAMES)}\t{APP}\tLICENSING_REVIEW, JOINT_PUNISHMENT, SUPERVISION",
        f"Record\t{id_of(RECORD)}\t{APP}\tSUPERVISION",
        f"Names\t{id_of(NAMES)}\txinyong-huizhou\tPUBLIC_DISCLOSURE",
    ]

    assert main(["views", "remove", "Names", "--client", APP, "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"removed Names\t{id_of(NAMES)}\t{APP}\n"
    assert read_operations(store)[id_of(NAMES)[7:]].clients == ("xinyong-huizhou",)
    assert main(["views", "remove", "Names", "--client", APP, "--config", str(config)]) == 1
    assert "client 'hz-market-app' has no saved view 'Names'" in capsys.readouterr().err
    assert main(["views", "remove", "Record", "--client", APP, "--config", str(config)]) == 0
    assert main(["views", "remove", "Names", "--client", "xinyong-huizhou",
                 "--config", str(config)]) == 0
    assert read_operations(store) == {}


def test_views_add_saves_all_the_files_or_none(config, tmp_path, capsys):
    store = tmp_path / "ops" / "operations.toml"
    record, audit, invalid, anonymous = files(
        tmp_path, Record=RECORD, Audit=AUDIT,
        Invalid="query Invalid { entity(uscc: \"x\") { nosuchField } }",
        Anonymous="{ myAccess { client { id } } }")
    assert main(["views", "add", record, audit, invalid, anonymous, "--client", APP,
                 "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert ("view AuditView could run under none of hz-market-app's purposes: LICENSING_REVIEW "
            "denies Query.auditTrail; JOINT_PUNISHMENT denies Query.auditTrail; SUPERVISION "
            "denies Query.auditTrail") in err
    assert "Cannot query field 'nosuchField'" in err and "does not validate" in err
    assert "anonymous: give it a name" in err
    assert "no view was added" in err
    assert not store.exists()
    assert main(["views", "add", record, "--client", "nobody", "--config", str(config)]) == 1
    assert "no client 'nobody'" in capsys.readouterr().err
    assert main(["views", "list", "--client", "nobody", "--config", str(config)]) == 1


# ---- myViews, and running one ----

@pytest.fixture(scope="module")
def settings(demo_settings, tmp_path_factory):
    folder = tmp_path_factory.mktemp("views")
    store = folder / "operations.toml"
    operations = with_view({}, operation_of(RECORD), APP)
    operations = with_view(operations, operation_of(NAMES), APP)
    operations = with_view(operations, operation_of(NAMES), "xinyong-huizhou")
    write_operations(store, operations.values())
    return dataclasses.replace(demo_settings, operations_file=str(store))


@pytest.fixture(scope="module")
def gateway(settings):
    with Gateway(settings) as gateway:
        yield gateway


MY_VIEWS = "{ myViews { name documentId allowedForPurpose deniedFields } }"


def test_my_views_lists_the_clients_views_and_what_its_purpose_may_run(gateway):
    supervision = gateway.query(MY_VIEWS, (APP, "SUPERVISION"))["data"]["myViews"]
    assert supervision == [
        {"name": "Names", "documentId": id_of(NAMES), "allowedForPurpose": True,
         "deniedFields": []},
        {"name": "Record", "documentId": id_of(RECORD), "allowedForPurpose": True,
         "deniedFields": []},
    ]
    licensing = gateway.query(MY_VIEWS, (APP, "LICENSING_REVIEW"))["data"]["myViews"]
    assert licensing[1] == {"name": "Record", "documentId": id_of(RECORD),
                            "allowedForPurpose": False, "deniedFields": ["Entity.repairs"]}
    public = gateway.query(MY_VIEWS, ("xinyong-huizhou", "PUBLIC_DISCLOSURE"))
    assert [v["name"] for v in public["data"]["myViews"]] == ["Names"]
    assert gateway.query(MY_VIEWS, ("hz-credit-office", "SUPERVISION"))["data"]["myViews"] == []


def test_a_saved_view_runs_by_its_document_id(gateway, population):
    firm = population.showcase["clean"]
    response = gateway.run(id_of(RECORD), (APP, "SUPERVISION"), variables={"uscc": firm.uscc})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    assert body["data"]["entity"]["registration"]["name"] == firm.name
    # under a purpose that may not use a field, it runs as its text would
    body = gateway.run(id_of(RECORD), (APP, "LICENSING_REVIEW"),
                       variables={"uscc": firm.uscc}).json()
    assert body["data"]["entity"]["repairs"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN_FOR_PURPOSE"
    # another client's view is not found
    response = gateway.run(id_of(RECORD), ("xinyong-huizhou", "PUBLIC_DISCLOSURE"),
                           variables={"uscc": firm.uscc})
    assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_OPERATION_NOT_FOUND"


def test_a_saved_view_runs_by_its_name(gateway, population):
    firm = population.showcase["clean"]
    response = gateway.run("view:Record", (APP, "SUPERVISION"), variables={"uscc": firm.uscc})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["entity"]["registration"]["name"] == firm.name
    # only the caller's own views have names: another client's, or none, is not found
    for as_, name in (((APP, "SUPERVISION"), "view:Nope"),
                      (("hz-credit-office", "SUPERVISION"), "view:Record")):
        body = gateway.run(name, as_, variables={"uscc": firm.uscc}).json()
        assert body["errors"][0]["extensions"]["code"] == "PERSISTED_OPERATION_NOT_FOUND"
    refused = gateway.run("view:not a name", (APP, "SUPERVISION"))
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_my_views_without_an_operations_file_is_empty(demo_settings):
    with Gateway(dataclasses.replace(demo_settings, operations_file="")) as gateway:
        assert gateway.query(MY_VIEWS, (APP, "SUPERVISION"))["data"]["myViews"] == []


def test_my_views_follows_the_store_file(settings, tmp_path):
    store = tmp_path / "operations.toml"
    write_operations(store, [operation_of(NAMES, clients=[APP])])
    clock = [0.0]
    operations = OperationStore(store, clock=lambda: clock[0])
    assert [v.name for v in operations.views(APP)] == ["Names"]
    write_operations(store, with_view(read_operations(store), operation_of(RECORD),
                                      APP).values())
    clock[0] += 5
    assert [v.name for v in operations.views(APP)] == ["Names", "Record"]


# ---- policy check ----

def test_policy_check_reports_a_view_no_purpose_of_its_client_may_run(config, tmp_path, capsys):
    record, names = files(tmp_path, Record=RECORD, Names=NAMES)
    assert main(["views", "add", record, names, "--client", APP, "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["policy", "check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "policy catalog OK" in out
    assert "stored views OK: each of the 2 stored operations runs under a purpose" in out

    # A catalog change: credit repairs no longer for supervision.
    variant = tmp_path / "policy-variant.toml"
    text, count = re.subn(r'(\[items\.repairs\]\nname = .*\nclass = .*\n)purposes = .*\n',
                          r'\1purposes = ["CREDIT_REPAIR_REVIEW", "SELF_INQUIRY"]\n',
                          DEFAULT_CATALOG.read_text(encoding="utf-8"))
    assert count == 1
    variant.write_text(text, encoding="utf-8")
    config.write_text(config.read_text(encoding="utf-8").replace(
        "[gateway]\n", '[gateway]\npolicy_file = "policy-variant.toml"\n'), encoding="utf-8")
    assert load_settings(config, env={}).policy_file == str(variant)
    assert main(["policy", "check", "--config", str(config)]) == 1
    lines = capsys.readouterr().out.splitlines()
    view = f"stale view Record ({id_of(RECORD)}) of client {APP}"
    assert [line for line in lines if line.startswith("stale view")] == [
        f"{view}: LICENSING_REVIEW denies Entity.repairs",
        f"{view}: JOINT_PUNISHMENT denies Entity.repairs",
        f"{view}: SUPERVISION denies Entity.repairs",
    ]
    assert lines[-1].startswith("1 stored view(s) can no longer run under any purpose")
    # the same question of a catalog not yet deployed
    config.write_text(config.read_text(encoding="utf-8").replace(
        'policy_file = "policy-variant.toml"\n', ""), encoding="utf-8")
    assert main(["policy", "check", "--config", str(config), "--catalog", str(variant)]) == 1
    assert main(["policy", "check", "--config", str(config)]) == 0


def test_policy_check_reports_a_view_that_no_longer_validates(config, tmp_path, capsys):
    store = tmp_path / "ops" / "operations.toml"
    gone = "query Gone { entity(uscc: \"91441302KXPDBTGD0L\") { noLongerThere } }"
    write_operations(store, [operation_of(gone, clients=[APP])])
    assert main(["policy", "check", "--config", str(config)]) == 1
    assert (f"stale view Gone ({id_of(gone)}) of client {APP}: does not validate against the "
            "schema") in capsys.readouterr().out
