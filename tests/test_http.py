"""GraphQL over HTTP (gateway/http.py): media types and status codes by the
specification, and every request the server must refuse cleanly — a body
that is not a GraphQL request, an ambiguous operation, a wrong method or
media type — answered with a coded GraphQL error body, the request id, and
no source read."""

from __future__ import annotations

import pytest

from tests.gateway_fixtures import SUPERVISOR, Gateway, StatementCounter, demo_token

TWO_OPERATIONS = "query A { __typename } query B { myAccess { purpose { code } } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture(scope="module")
def gateway(demo_settings):
    with Gateway(demo_settings) as gateway:
        yield gateway


def headers(gateway, **more: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {demo_token(gateway.settings, SUPERVISOR[0])}",
        "X-Purpose-Of-Use": SUPERVISOR[1],
        "X-Request-Id": "trace-12345678",
        "Content-Type": "application/json",
        **more,
    }


def send(gateway, body: bytes | str, method: str = "POST", **more: str):
    """Send ``body`` as is, with a valid token and purpose; no source may be read."""
    counter = StatementCounter(gateway.registry)
    response = gateway.client.request(method, "/graphql", content=body,
                                      headers=headers(gateway, **more))
    assert counter.total == 0
    return response


def refusal(response, status: int = 400, media_type: str = GRAPHQL_RESPONSE) -> dict:
    """The single error of a refused request, after checking its envelope."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == media_type
    assert response.headers["X-Request-Id"] == "trace-12345678"
    body = response.json()
    assert set(body) <= {"errors", "extensions"}  # a request error holds no data
    (error,) = body["errors"]
    assert error["message"] and error["extensions"]["code"]
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
    assert error == {"message": f"the request body must be a JSON object, got {kind}",
                     "extensions": {"code": "BAD_REQUEST"}}


@pytest.mark.parametrize("body", ["[]", '[{"query": "{ __typename }"}]', "[1]"])
def test_a_list_is_refused_as_batching_is_off(gateway, body):
    error = refusal(send(gateway, body))
    assert error["extensions"] == {"code": "BAD_REQUEST"} and "batched" in error["message"]


@pytest.mark.parametrize(("body", "message"), [
    ("{bad", "not valid JSON"),
    ("", "not valid JSON"),
    ("{}", "needs a `query`"),
    ('{"query": null}', "needs a `query`"),
    ('{"query": ""}', "needs a `query`"),
    ('{"query": 5}', "needs a `query`"),
    ('{"query": ["{ __typename }"]}', "needs a `query`"),
    ('{"query": "{ __typename }", "variables": [1]}', "`variables` must be an object"),
    ('{"query": "{ __typename }", "variables": "{}"}', "`variables` must be an object"),
    ('{"query": "{ __typename }", "extensions": 3}', "`extensions` must be an object"),
    ('{"query": "{ __typename }", "operationName": 5}', "`operationName` must be a string"),
])
def test_a_body_that_is_not_a_graphql_request_is_400(gateway, body, message):
    error = refusal(send(gateway, body))
    assert message in error["message"]
    assert error["extensions"] == {"code": "BAD_REQUEST"}


def test_a_body_that_is_not_json_is_415(gateway):
    error = refusal(send(gateway, "{ __typename }", **{"Content-Type": "text/plain"}), 415)
    assert error["extensions"] == {"code": "UNSUPPORTED_MEDIA_TYPE", "requestId": "trace-12345678"}
    charset = send(gateway, '{"query": "{ __typename }"}',
                   **{"Content-Type": "application/json; charset=utf-8"})
    assert charset.status_code == 200


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_naming_post(gateway, method):
    error = refusal(send(gateway, '{"query": "{ __typename }"}', method=method), 405)
    assert error["extensions"] == {"code": "METHOD_NOT_ALLOWED", "requestId": "trace-12345678"}


def test_queries_over_get_are_refused_with_allow_post(gateway):
    response = gateway.client.get("/graphql", params={"query": "{ __typename }"},
                                  headers=headers(gateway))
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(("accept", "media_type"), [
    (None, GRAPHQL_RESPONSE),
    ("*/*", GRAPHQL_RESPONSE),
    (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
    (f"application/json;q=0.9, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
    ("application/json", "application/json"),
])
def test_the_response_media_type_follows_accept(gateway, accept, media_type):
    more = {} if accept is None else {"Accept": accept}
    response = send(gateway, '{"query": "{ __typename }"}', **more)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.json()["data"] == {"__typename": "Query"}


def test_an_accept_naming_nothing_we_serve_is_406(gateway):
    error = refusal(send(gateway, '{"query": "{ __typename }"}', Accept="text/html"), 406,
                    media_type="application/json")
    assert error["extensions"] == {"code": "NOT_ACCEPTABLE", "requestId": "trace-12345678"}


def test_request_errors_are_400_without_data_or_200_for_plain_json(gateway):
    for body, code in (('{"query": "{ nope }"}', "GRAPHQL_VALIDATION_FAILED"),
                       ('{"query": "{ __typename "}', "GRAPHQL_PARSE_FAILED")):
        error = refusal(send(gateway, body))
        assert error["extensions"]["code"] == code
        plain = send(gateway, body, Accept="application/json")
        assert plain.status_code == 200 and "data" not in plain.json()
        assert plain.json()["errors"][0]["extensions"]["code"] == code


def test_a_mutation_is_a_validation_error(gateway):
    error = refusal(send(gateway, '{"query": "mutation { x }"}'))
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_several_operations_without_an_operation_name_is_an_error(gateway):
    error = refusal(send(gateway, f'{{"query": "{TWO_OPERATIONS}"}}'))
    assert error == {
        "message": "Must provide operation name if query contains multiple operations.",
        "extensions": {"code": "OPERATION_NAME_REQUIRED", "requestId": "trace-12345678"},
    }


@pytest.mark.parametrize("query", [TWO_OPERATIONS, "{ __typename }", "query A { __typename }"])
def test_an_operation_name_naming_no_operation_is_an_error(gateway, query):
    error = refusal(send(gateway, f'{{"query": "{query}", "operationName": "C"}}'))
    assert error == {"message": 'Unknown operation named "C".',
                     "extensions": {"code": "UNKNOWN_OPERATION_NAME", "requestId": "trace-12345678"}}


def test_the_operation_named_runs(gateway):
    for name, data in [("A", {"__typename": "Query"}),
                       ("B", {"myAccess": {"purpose": {"code": "SUPERVISION"}}})]:
        response = send(gateway, f'{{"query": "{TWO_OPERATIONS}", "operationName": "{name}"}}')
        assert response.status_code == 200
        assert response.json()["data"] == data
    single = send(gateway, '{"query": "query A { __typename }", "operationName": null}')
    assert single.json()["data"] == {"__typename": "Query"}


def test_a_syntax_error_is_a_coded_graphql_error(gateway):
    error = refusal(send(gateway, '{"query": "query A { __typename } query B {"}'))
    assert error["message"].startswith("Syntax Error")
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


def test_a_body_over_the_limit_is_413_by_its_length(demo_settings):
    import dataclasses

    with Gateway(dataclasses.replace(demo_settings, max_body_bytes=100)) as small:
        at = '{"query": "{ __typename }"}'.ljust(100)
        assert send(small, at).status_code == 200
        error = refusal(send(small, at + " "), 413)
    assert error["extensions"] == {"code": "REQUEST_TOO_LARGE", "limit": 100, "requestId": "trace-12345678"}


@pytest.mark.anyio
async def test_a_streamed_body_is_not_read_past_the_limit():
    from gateway.http import BodyTooLarge, read_body

    sent = []

    class Streaming:
        async def stream(self):
            for i in range(1000):
                sent.append(i)
                yield b"x" * 100

    with pytest.raises(BodyTooLarge):
        await read_body(Streaming(), 1_000)
    assert len(sent) == 11  # stopped at the chunk that passed the limit
    assert await read_body(Streaming(), 10**6) == b"x" * 100_000
