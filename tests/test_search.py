"""searchEntities over HTTP: a search text the public portal could use to page
through every registered firm is refused before any source is read."""

from __future__ import annotations

import pytest

from tests.gateway_fixtures import Gateway, StatementCounter, demo_token

SEARCH = """query($name: String!) {
  searchEntities(name: $name, first: 50) { entities { uscc } hasNextPage } }"""
PUBLIC = ("xinyong-huizhou", "PUBLIC_DISCLOSURE")


@pytest.fixture
def gateway(demo_settings):
    with Gateway(demo_settings) as gateway:
        yield gateway


def refused(gateway, name: str, as_=PUBLIC) -> dict:
    counter = StatementCounter(gateway.registry)
    body = gateway.query(SEARCH, as_, name=name)
    assert counter.total == 0, counter.counts
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert error["path"] == ["searchEntities"]
    return error


@pytest.mark.parametrize(("name", "code_point"), [
    ("\u0000\u0000", "U+0000"),
    ("\u0000", "U+0000"),
    ("惠州\u0000", "U+0000"),
    ("\u0001\u0002\u0003", "U+0001"),
    ("\u007f\u007f", "U+007F"),
    ("\u009b\u009b", "U+009B"),  # C1 control
    ("惠\t州", "U+0009"),  # a control inside the text, not around it
    ("\u200b\u200b", "U+200B"),  # zero width space
    ("\u202e惠州", "U+202E"),  # right-to-left override
    ("惠州\ufeff", "U+FEFF"),  # byte order mark
])
def test_control_and_invisible_characters_are_refused(gateway, name, code_point):
    error = refused(gateway, name)
    assert error["message"] == (
        f"name must not contain control or invisible format characters, got {code_point}"
    )


def test_control_characters_in_a_literal_are_refused_too(gateway):
    counter = StatementCounter(gateway.registry)
    body = gateway.query('{ searchEntities(name: "\\u0000\\u0000") { hasNextPage } }', PUBLIC)
    assert counter.total == 0
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("name", ["", "  ", " a ", "\t惠\n", "\u3000惠\u3000", "\x1f\x1f惠"])
def test_the_minimum_length_is_counted_after_stripping(gateway, name):
    error = refused(gateway, name)
    assert error["message"] == "name must have at least 2 characters"


@pytest.mark.parametrize("name", ["%%", "__", "%_", "\\%", "//", "[%]"])
def test_wildcards_find_only_names_holding_them(gateway, population, name):
    assert not any(name in e.name for e in population.enterprises)
    body = gateway.query(SEARCH, PUBLIC, name=name)
    assert "errors" not in body, body["errors"]
    assert body["data"]["searchEntities"] == {"entities": [], "hasNextPage": False}


def test_surrounding_whitespace_is_stripped_before_searching(gateway, population):
    name = population.enterprises[0].name[3:7]
    expected = sorted(e.uscc for e in population.enterprises if name in e.name)[:50]
    body = gateway.query(SEARCH, PUBLIC, name=f"\t {name}\u3000\n")
    assert "errors" not in body, body["errors"]
    assert [e["uscc"] for e in body["data"]["searchEntities"]["entities"]] == expected


def test_a_lone_surrogate_is_refused(gateway):
    counter = StatementCounter(gateway.registry)
    response = gateway.client.post("/graphql", content=(
        '{"query": "query($name: String!) { searchEntities(name: $name) { hasNextPage } }", '
        '"variables": {"name": "\\ud800\\ud800"}}'
    ), headers={
        "Authorization": f"Bearer {demo_token(gateway.settings, PUBLIC[0])}",
        "X-Purpose-Of-Use": PUBLIC[1], "Content-Type": "application/json",
    })
    assert counter.total == 0
    assert response.status_code == 400  # not JSON a GraphQL request can be read from
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    assert error["message"] == "the request body is not valid JSON"
