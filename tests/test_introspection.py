"""Introspection answers for every client and purpose: GraphiQL's docs,
completion and linting, and schema tools, need it."""

from __future__ import annotations

import pytest

from tests.gateway_fixtures import Gateway


@pytest.fixture(scope="module")
def gateway(demo_settings):
    with Gateway(demo_settings) as gateway:
        yield gateway


# GraphiQL's whole introspection query per purpose: tests/test_purpose_schema.py.


def test_type_introspection_beside_data(gateway, population):
    uscc = population.showcase["clean"].uscc
    body = gateway.query("""query($u: USCC!) { __typename
        __type(name: "Entity") { name fields { name type { kind name ofType { name } } } }
        entity(uscc: $u) { __typename uscc registration { __typename name } } }""", u=uscc)
    assert "errors" not in body, body["errors"]
    assert body["data"]["__typename"] == "Query"
    names = {f["name"] for f in body["data"]["__type"]["fields"]}
    assert {"registration", "taxRatings", "accessHistory"} <= names
    assert body["data"]["entity"]["registration"]["__typename"] == "Registration"
