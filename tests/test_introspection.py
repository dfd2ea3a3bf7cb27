"""Introspection answers for every client and purpose: GraphiQL's docs,
completion and linting, and schema tools, need it."""

from __future__ import annotations

import pytest
from graphql import (build_client_schema, build_schema, get_introspection_query,
                     lexicographic_sort_schema, print_schema)

from gateway.schema import export_sdl
from tests.gateway_fixtures import Gateway

AS = [("hz-market-app", "SUPERVISION"), ("xinyong-huizhou", "PUBLIC_DISCLOSURE"),
      ("bank-icbc-huizhou", "FINANCING"), ("hz-procurement", "PROCUREMENT_REVIEW")]


@pytest.fixture(scope="module")
def gateway(demo_settings):
    with Gateway(demo_settings) as gateway:
        yield gateway


@pytest.mark.parametrize("as_", AS, ids=[purpose for _, purpose in AS])
def test_graphiqls_introspection_query_returns_the_whole_schema(gateway, as_):
    body = gateway.query(get_introspection_query(descriptions=True), as_)
    assert "errors" not in body, body["errors"]
    rebuilt = print_schema(lexicographic_sort_schema(build_client_schema(body["data"])))
    assert rebuilt == print_schema(lexicographic_sort_schema(build_schema(export_sdl())))


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
