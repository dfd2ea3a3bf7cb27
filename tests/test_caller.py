"""Who may call: every bad token, client or purpose is refused before execution."""

from __future__ import annotations

import time

import pytest

from tests.gateway_fixtures import Gateway, StatementCounter, demo_token

QUERY = {"query": "{ __typename }"}


@pytest.fixture
def gateway(demo_settings):
    with Gateway(demo_settings) as gateway:
        yield gateway


def call(gateway, headers):
    counter = StatementCounter(gateway.registry)
    response = gateway.client.post("/graphql", json=QUERY, headers=headers)
    assert counter.total == 0
    return response


def test_no_token_is_401_with_a_bearer_challenge(gateway):
    response = call(gateway, {"X-Purpose-Of-Use": "PUBLIC_DISCLOSURE"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="credit-gateway"'
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(("claims", "description"), [
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"aud": "urn:somebody-else"}, "aud"),
    ({"iss": "urn:evil"}, "iss"),
])
def test_bad_tokens_are_401_invalid_token(gateway, claims, description):
    token = demo_token(gateway.settings, "xinyong-huizhou", **claims)
    response = call(gateway, {"Authorization": f"Bearer {token}",
                              "X-Purpose-Of-Use": "PUBLIC_DISCLOSURE"})
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="credit-gateway", error="invalid_token"')
    assert description in response.json()["errors"][0]["message"]


def test_garbage_token_is_401_not_500(gateway):
    response = call(gateway, {"Authorization": "Bearer not-a-jwt",
                              "X-Purpose-Of-Use": "PUBLIC_DISCLOSURE"})
    assert response.status_code == 401


def headers_for(gateway, client_id, purpose=None):
    headers = {"Authorization": f"Bearer {demo_token(gateway.settings, client_id)}"}
    if purpose is not None:
        headers["X-Purpose-Of-Use"] = purpose
    return headers


def test_unregistered_client_is_403(gateway):
    response = call(gateway, headers_for(gateway, "stranger", "PUBLIC_DISCLOSURE"))
    assert response.status_code == 403
    assert response.json()["errors"][0] == {
        "message": "client 'stranger' is not registered",
        "extensions": {"code": "CLIENT_NOT_REGISTERED"},
    }


def test_missing_purpose_is_400(gateway):
    response = call(gateway, headers_for(gateway, "xinyong-huizhou"))
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "PURPOSE_REQUIRED"
    assert "X-Purpose-Of-Use" in error["message"]


def test_unknown_purpose_is_400_listing_the_valid_ones(gateway):
    response = call(gateway, headers_for(gateway, "xinyong-huizhou", "CURIOSITY"))
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "UNKNOWN_PURPOSE"
    assert "FINANCING" in error["extensions"]["validPurposes"]
    assert "valid purposes: AUDIT, CREDIT_REPAIR_REVIEW, FINANCING, INCENTIVE_REVIEW" in error["message"]


@pytest.mark.parametrize(("client_id", "purpose"), [
    ("xinyong-huizhou", "FINANCING"),
    ("bank-icbc-huizhou", "JOINT_PUNISHMENT"),
    ("hz-credit-auditor", "SUPERVISION"),
])
def test_purpose_not_granted_is_403(gateway, client_id, purpose):
    response = call(gateway, headers_for(gateway, client_id, purpose))
    assert response.status_code == 403
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "PURPOSE_NOT_GRANTED"
    assert purpose in error["message"]


def test_granted_purpose_passes(gateway):
    response = gateway.client.post("/graphql", json=QUERY,
                                   headers=headers_for(gateway, "bank-hzrcb", "FINANCING"))
    assert response.status_code == 200
    assert response.json()["data"] == {"__typename": "Query"}


def test_graphiql_page_needs_no_token_but_queries_do(gateway):
    page = gateway.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    query_by_get = gateway.client.get("/graphql", params={"query": "{ __typename }"})
    assert query_by_get.status_code == 405 and query_by_get.headers["allow"] == "POST"


def test_an_unknown_purpose_is_echoed_truncated(gateway):
    response = gateway.client.post("/graphql", json={"query": "{ __typename }"}, headers={
        "Authorization": f"Bearer {demo_token(gateway.settings, 'hz-market-app')}",
        "X-Purpose-Of-Use": "X" * 5000,
    })
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "UNKNOWN_PURPOSE"
    assert "X" * 40 + "…" in error["message"] and "X" * 41 not in error["message"]
