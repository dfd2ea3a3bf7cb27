"""Anything unexpected, wherever it is raised, reaches the client as
``Internal error.`` with the request id, and is logged with its traceback."""

from __future__ import annotations

import logging

import pytest

import gateway.enforcement
import gateway.recording
from tests.gateway_fixtures import Gateway

SECRET = "postgresql://gw:hunter2@10.0.0.1/credit"
# Asked by the public portal: socialInsurance is denied, so every stage runs.
QUERY = "query($u: USCC!) { entity(uscc: $u) { registration { name } socialInsurance { period } } }"
PUBLIC = ("xinyong-huizhou", "PUBLIC_DISCLOSURE")


def _boom(*args, **kwargs):
    raise RuntimeError(SECRET)


STAGES = {
    "restoring denied fields": (gateway.enforcement, "restore_denied"),
    "building the audit record": (gateway.recording.AuditRecorder, "entry_for"),
}


@pytest.mark.parametrize("stage", STAGES)
def test_an_exception_in_each_stage_is_masked_and_logged(
        demo_settings, population, monkeypatch, caplog, stage):
    owner, name = STAGES[stage]
    monkeypatch.setattr(owner, name, _boom)
    caplog.set_level(logging.ERROR)
    with Gateway(demo_settings) as gateway:
        response = gateway.post(QUERY, PUBLIC, headers={"X-Request-Id": "req-0123456789"},
                                u=population.showcase["clean"].uscc)
    body = response.json()
    assert SECRET not in response.text
    assert body["data"] is None
    assert body["errors"] == [{"message": "Internal error.", "extensions": {
        "code": "INTERNAL_SERVER_ERROR", "requestId": "req-0123456789"}}]
    logged = [r for r in caplog.records if r.exc_info and SECRET in str(r.exc_info[1])]
    assert logged, "the traceback is logged"


HTTP_STAGES = {
    "planning": "plan_operation",
    "building the request context": "Loaders",
    "encoding the response": "encode",
    "identifying the caller": "identify",
}


@pytest.mark.parametrize("stage", HTTP_STAGES)
def test_an_exception_around_execution_is_a_500_in_the_graphql_shape(
        demo_settings, population, monkeypatch, caplog, stage):
    import gateway.app
    import gateway.caller
    import gateway.enforcement
    import gateway.http

    async def async_boom(*args, **kwargs):
        raise RuntimeError(SECRET)

    name = HTTP_STAGES[stage]
    owner, replacement = {
        "plan_operation": (gateway.enforcement, _boom),
        "Loaders": (gateway.app, _boom),
        "encode": (gateway.http.GraphQLEndpoint, _boom),
        "identify": (gateway.caller.CallerIdentifier, async_boom),
    }[name]
    monkeypatch.setattr(owner, name, replacement)
    caplog.set_level(logging.ERROR)
    with Gateway(demo_settings) as gateway:
        response = gateway.post(QUERY, PUBLIC, headers={"X-Request-Id": "req-0123456789"},
                                u=population.showcase["clean"].uscc)
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    assert response.headers["x-request-id"] == "req-0123456789"
    assert SECRET not in response.text
    assert response.json() == {"errors": [{"message": "Internal error.", "extensions": {
        "code": "INTERNAL_SERVER_ERROR", "requestId": "req-0123456789"}}]}
    assert [r for r in caplog.records if r.exc_info and SECRET in str(r.exc_info[1])]
