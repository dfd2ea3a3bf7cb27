"""Requests the server must refuse cleanly: a body that is not a GraphQL
request, or a document whose operation to run is ambiguous or missing, is a
400 with a GraphQL error body (never a 500 or a plain-text page), carries the
request id, and reaches no source."""

from __future__ import annotations

import pytest

from tests.gateway_fixtures import SUPERVISOR, Gateway, StatementCounter, demo_token

TWO_OPERATIONS = "query A { __typename } query B { myAccess { purpose { code } } }"


@pytest.fixture
def gateway(demo_settings):
    with Gateway(demo_settings) as gateway:
        yield gateway


def send(gateway, body: bytes | str, content_type: str = "application/json"):
    """POST ``body`` as is, with a valid token and purpose; no source may be read."""
    counter = StatementCounter(gateway.registry)
    response = gateway.client.post("/graphql", content=body, headers={
        "Authorization": f"Bearer {demo_token(gateway.settings, SUPERVISOR[0])}",
        "X-Purpose-Of-Use": SUPERVISOR[1],
        "X-Request-Id": "trace-12345678",
        "Content-Type": content_type,
    })
    assert counter.total == 0
    return response


def refusal(response, status: int = 400) -> dict:
    """The single error of a refused request, after checking its envelope."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["X-Request-Id"] == "trace-12345678"
    body = response.json()
    assert set(body) == {"errors"}
    (error,) = body["errors"]
    assert set(error) == {"message", "extensions"} and error["message"]
    return error


@pytest.mark.parametrize(("body", "kind"), [
    ('"{ __typename }"', "a string"),
    ("null", "null"),
    ("123", "a number"),
    ("1.5", "a number"),
    ("true", "a boolean"),
])
def test_a_json_body_that_is_not_an_object_is_400(gateway, body, kind):
    error = refusal(send(gateway, body))
    assert error == {"message": f"The request body must be a JSON object, got {kind}",
                     "extensions": {"code": "BAD_REQUEST"}}


@pytest.mark.parametrize("body", ["[]", '[{"query": "{ __typename }"}]', "[1]"])
def test_a_list_is_refused_as_batching_is_off(gateway, body):
    error = refusal(send(gateway, body))
    assert error == {"message": "Batching is not enabled", "extensions": {"code": "BAD_REQUEST"}}


@pytest.mark.parametrize(("body", "message"), [
    ("{bad", "Unable to parse request body as JSON"),
    ("", "Unable to parse request body as JSON"),
    ("{}", "No GraphQL query found in the request"),
    ('{"query": null}', "No GraphQL query found in the request"),
    ('{"query": ""}', "No GraphQL query found in the request"),
    ('{"query": 5}', "must be a string"),
    ('{"query": ["{ __typename }"]}', "must be a string"),
    ('{"query": "{ __typename }", "variables": [1]}', "`variables` must be an object"),
    ('{"query": "{ __typename }", "variables": "{}"}', "`variables` must be an object"),
    ('{"query": "{ __typename }", "extensions": 3}', "`extensions` must be an object"),
    ('{"query": "{ __typename }", "operationName": 5}', "`operationName` must be a string"),
])
def test_a_body_that_is_not_a_graphql_request_is_400(gateway, body, message):
    error = refusal(send(gateway, body))
    assert message in error["message"]
    assert error["extensions"] == {"code": "BAD_REQUEST"}


def test_an_unsupported_content_type_is_400_too(gateway):
    error = refusal(send(gateway, "{ __typename }", content_type="text/plain"))
    assert error == {"message": "Unsupported content type", "extensions": {"code": "BAD_REQUEST"}}


def test_several_operations_without_an_operation_name_is_an_error(gateway):
    error = refusal(send(gateway, f'{{"query": "{TWO_OPERATIONS}"}}'))
    assert error == {
        "message": "Must provide operation name if query contains multiple operations.",
        "extensions": {"code": "OPERATION_NAME_REQUIRED"},
    }


@pytest.mark.parametrize("query", [TWO_OPERATIONS, "{ __typename }", "query A { __typename }"])
def test_an_operation_name_naming_no_operation_is_an_error(gateway, query):
    error = refusal(send(gateway, f'{{"query": "{query}", "operationName": "C"}}'))
    assert error == {"message": 'Unknown operation named "C".',
                     "extensions": {"code": "UNKNOWN_OPERATION_NAME"}}


def test_the_operation_named_runs(gateway):
    for name, data in [("A", {"__typename": "Query"}),
                       ("B", {"myAccess": {"purpose": {"code": "SUPERVISION"}}})]:
        response = send(gateway, f'{{"query": "{TWO_OPERATIONS}", "operationName": "{name}"}}')
        assert response.status_code == 200
        assert response.json()["data"] == data
    single = send(gateway, '{"query": "query A { __typename }", "operationName": null}')
    assert single.json()["data"] == {"__typename": "Query"}


def test_a_syntax_error_is_still_a_graphql_error(gateway):
    response = send(gateway, '{"query": "query A { __typename } query B {"}')
    assert response.status_code == 200
    (error,) = response.json()["errors"]
    assert error["message"].startswith("Syntax Error")
