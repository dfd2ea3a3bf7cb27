"""Persisted operations: the store's strict format, its re-reading and the
registry's ``persisted_only`` (running them over HTTP, the commands and the
demo's bank portal: tests/test_operations_http.py)."""

from __future__ import annotations

import logging

import pytest

from core.errors import ConfigurationError
from demo.generate import OPERATIONS_DIR
from gateway.catalog import load_catalog
from gateway.clients import parse_clients
from gateway.operations import (
    Operation,
    OperationStore,
    document_hash,
    operation_of,
    operations_text,
    parse_operations,
    read_operations,
    write_operations,
)

ICBC = ("bank-icbc-huizhou", "FINANCING")
HZRCB = ("bank-hzrcb", "FINANCING")
SUPERVISOR = ("hz-market-app", "SUPERVISION")
BANKS = ["bank-icbc-huizhou", "bank-hzrcb"]
NAMES = "query Names($u: USCC!) { entity(uscc: $u) { registration { name } } }"
ICBC_ONLY = "query IcbcOnly($u: USCC!) { financingProfile(uscc: $u) { uscc } }"
PROFILE_TEXT = (OPERATIONS_DIR / "BankFinancingProfile.graphql").read_text(encoding="utf-8")
PORTFOLIO_TEXT = (OPERATIONS_DIR / "BankPortfolio.graphql").read_text(encoding="utf-8")


def entry(document: str, key: str | None = None, **fields) -> dict:
    """One ``[operations."<key>"]`` table as parsed TOML (the key: the document's hash)."""
    return {key or document_hash(document): {"document": document, **fields}}


def store_of(*entries: dict, known_clients=None) -> dict[str, Operation]:
    return parse_operations({"operations": {k: v for e in entries for k, v in e.items()}},
                            "ops.toml", known_clients)


def id_of(document: str) -> str:
    return f"sha256:{document_hash(document)}"


# ---- the store's format ----

def test_a_valid_store_names_each_operation_and_its_clients():
    anonymous = "{ myAccess { client { id } } }"
    found = store_of(entry(NAMES, clients=["hz-market-app"]), entry(anonymous, name="Access"))
    names, access = found[document_hash(NAMES)], found[document_hash(anonymous)]
    assert (names.name, names.operation_name) == ("Names", "Names")
    assert names.clients == ("hz-market-app",)
    assert names.document_id == "sha256:" + document_hash(NAMES) and names.document == NAMES
    assert (access.name, access.operation_name, access.clients) == ("Access", None, ())
    assert names.allows("hz-market-app") and not names.allows("xinyong-huizhou")
    assert access.allows("anybody")


def test_the_hash_is_of_the_utf8_text_as_registered():
    # the spec's example (GraphQL over HTTP, persisted documents appendix)
    text = "query ($id: ID!) {\n  user(id: $id) {\n    name\n  }\n}"
    assert document_hash(text) == "7dba4bd717b41f10434822356a93c32b1fb4907b983e854300ad839f84cdcd6e"
    assert document_hash('{ searchEntities(name: "电子科技") { hasNextPage } }') != document_hash(
        '{ searchEntities(name: "电子科技") { hasNextPage } }\n')


@pytest.mark.parametrize(("entries", "data", "message"), [
    ([entry(NAMES, key=document_hash(NAMES + " "))], None,
     r"the document's SHA-256 is [0-9a-f]{64}, not its key"),
    ([entry(NAMES, key=document_hash(NAMES).upper())], None, "64 lower-case hex digits"),
    ([entry(NAMES, key="sha256:" + document_hash(NAMES))], None, "64 lower-case hex digits"),
    ([entry(NAMES, clients=[], owner="me")], None, r"unknown key\(s\) \['owner'\]"),
    ([{document_hash(NAMES): {"name": "Names"}}], None, r"missing key\(s\) \['document'\]"),
    ([], {"operations": {}, "settings": {}}, r"expected only \[operations"),
    ([entry(NAMES + " query Other { myAccess { client { id } } }")], None,
     "exactly one operation, not 2"),
    ([entry("fragment F on Query { myAccess { client { id } } }")], None,
     "exactly one operation, not 0"),
    ([entry(NAMES + " type Extra { x: Int }")], None, "only an operation and its fragments"),
    ([entry("{ entity(uscc: ")], None, "does not parse"),
    ([entry("{ myAccess { client { id } } }")], None, "anonymous: give it a name"),
    ([entry(NAMES, name="Other")], None, "differs from the operation's own name 'Names'"),
    ([entry("{ myAccess { client { id } } }", name="not a name")], None, "not a GraphQL name"),
    ([entry(NAMES, clients="hz-market-app")], None, "clients must be a list"),
    ([entry(NAMES, clients=["a", "a"])], None, "distinct client ids"),
    ([entry(NAMES, clients=["a"]),
      entry(NAMES.replace("name }", "name status }"), clients=["b", "a"])], None,
     r"two operations named 'Names' .* for a: names are unique per client"),
    ([entry(NAMES), entry(NAMES.replace("name }", "name status }"), clients=["b"])],
     None, "two operations named 'Names' .* for any client"),
])
def test_an_invalid_store_is_refused_naming_the_entry(entries, data, message):
    with pytest.raises(ConfigurationError, match=message):
        if data is not None:
            parse_operations(data, "ops.toml")
        else:
            store_of(*entries)


def test_one_name_for_different_clients_is_allowed():
    other = NAMES.replace("name }", "name status }")
    found = store_of(entry(NAMES, clients=["a"]), entry(other, clients=["b"]))
    assert sorted(o.clients for o in found.values()) == [("a",), ("b",)]


def test_clients_must_be_registered_when_the_registry_is_given():
    store_of(entry(NAMES, clients=["hz-market-app"]), known_clients={"hz-market-app"})
    with pytest.raises(ConfigurationError, match=r"unknown client\(s\) \['nobody'\]"):
        store_of(entry(NAMES, clients=["hz-market-app", "nobody"]), known_clients={"hz-market-app"})


@pytest.mark.parametrize("document", [
    NAMES,
    NAMES + "\n",
    "query Quotes { searchEntities(name: \"a'''b\") { hasNextPage } }",
    "query Ends { searchEntities(name: \"ab\") { hasNextPage } } # it's'",
    "query Crlf {\r\n  myAccess { client { id } }\r\n}\r\n",
    'query Block { searchEntities(name: """电子\\"""科技""") { hasNextPage } }\t\n',
])
def test_the_file_reads_back_exactly_as_written(tmp_path, document):
    operation = operation_of(document, clients=["x"])
    path = tmp_path / "nested" / "ops.toml"
    write_operations(path, [operation])
    assert read_operations(path) == {operation.sha256: operation}
    assert operations_text([operation]) == path.read_text(encoding="utf-8")
    assert [p.name for p in path.parent.iterdir()] == ["ops.toml"]  # no temporary left


def test_a_missing_or_broken_file_stops_start_up(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        OperationStore(tmp_path / "none.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[operations.\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        OperationStore(broken)


# ---- re-reading ----

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_file_is_re_read_when_it_changes_and_the_last_good_store_kept(tmp_path, caplog):
    path = tmp_path / "ops.toml"
    names = operation_of(NAMES, clients=["a"])
    icbc = operation_of(ICBC_ONLY, clients=["bank-icbc-huizhou"])
    write_operations(path, [names])
    clock = Clock()
    store = OperationStore(path, clock=clock)
    assert store.lookup(names.document_id, "a") == names
    assert store.lookup(names.document_id, "b") is None  # not for this client
    assert store.lookup(icbc.document_id, "bank-icbc-huizhou") is None

    write_operations(path, [names, icbc])
    clock.now += 0.5
    assert store.lookup(icbc.document_id, "bank-icbc-huizhou") is None  # not looked at yet
    clock.now += 0.6
    assert store.lookup(icbc.document_id, "bank-icbc-huizhou") == icbc

    caplog.set_level(logging.ERROR, logger="gateway.operations")
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('name = "IcbcOnly"', 'name = "IcbcOnly"\nowner = "me"'),
                    encoding="utf-8")
    clock.now += 1.1
    assert store.lookup(icbc.document_id, "bank-icbc-huizhou") == icbc  # the last good store
    assert store.lookup(names.document_id, "a") == names
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "unknown key(s) ['owner']" in error.getMessage()
    assert "keeping the last good store (2 operations)" in error.getMessage()
    clock.now += 1.1
    store.lookup(names.document_id, "a")
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1  # logged once

    path.unlink()
    clock.now += 1.1
    assert store.lookup(names.document_id, "a") == names
    assert "cannot be read" in caplog.records[-1].getMessage()

    write_operations(path, [icbc])  # back, without Names
    clock.now += 1.1
    assert store.lookup(names.document_id, "a") is None
    assert store.lookup(icbc.document_id, "bank-icbc-huizhou") == icbc


def test_a_malformed_id_is_a_value_error(tmp_path):
    path = tmp_path / "ops.toml"
    write_operations(path, [])
    store = OperationStore(path)
    for bad in ("", document_hash(NAMES), "sha256:" + document_hash(NAMES).upper(), "md5:abc"):
        with pytest.raises(ValueError):
            store.lookup(bad, "x")


# ---- the client registry ----

def test_persisted_only_is_a_boolean_of_the_registry():
    purposes = load_catalog(None).purposes
    table = {"organization": "某银行", "city": "惠州", "kind": "bank", "purposes": ["FINANCING"]}
    clients = parse_clients({"clients": {"a": table, "b": {**table, "persisted_only": True}}},
                            purposes)
    assert (clients["a"].persisted_only, clients["b"].persisted_only) == (False, True)
    with pytest.raises(ConfigurationError, match="persisted_only must be true or false"):
        parse_clients({"clients": {"a": {**table, "persisted_only": "yes"}}}, purposes)


