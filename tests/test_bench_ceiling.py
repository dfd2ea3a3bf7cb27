"""The two ceilings of ``bench/`` answer exactly what the gateway answers.

The true ceiling (``bench/ceiling.py``: the connectors' statements through
the sqlite3 driver, JSON by hand) and the SQLAlchemy ceiling
(``bench/sqlalchemy_ceiling.py``: the connectors themselves) against the
gateway's ``entity`` for ``bench.workload.ONE``, on the demo data: codes
with records in every source, a code with none. No timing is asserted.

Neither ceiling (nor the peer federation stack, which is checked against
them) applies the catalog's row rules: under ``SUPERVISION`` the gateway
withholds penalties outside their publicity window and removed or expired
listings, and states the publicity end it applies. So the gateway compared
is the gateway over the packaged catalog with its items' row rules taken
out; the test shows that, with the real catalog, the gateway's lists are
the ceilings' with records left out (the work the ceilings skip).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re

import httpx2
import orjson
import pytest

from bench.ceiling import EXPANDING, _Statement, create_ceiling_app
from bench.sqlalchemy_ceiling import create_sqlalchemy_ceiling_app
from bench.workload import CLIENT, FIELDS, ONE
from connectors import market
from core.codes import compose_uscc
from gateway.catalog import DEFAULT_CATALOG
from tests.gateway_fixtures import Gateway

NOBODY = compose_uscc("91441302", "00000000")  # valid, registered nowhere


async def _answers(factory, settings, usccs: list[str]) -> list[bytes]:
    app = factory(settings)
    async with app.router.lifespan_context(app):
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app),
                                      base_url="http://ceiling") as client:
            responses = [await client.post("/entity", json={"uscc": u}) for u in usccs]
    for response in responses:
        assert response.status_code == 200, response.text
    return [response.content for response in responses]


@pytest.fixture(scope="module")
def codes(population, demo_settings):
    """A few demo codes that together have records in every field of the
    workload (chosen with the SQLAlchemy ceiling) and the code with none."""
    candidates = [enterprise.uscc for enterprise in population.enterprises[:300]]
    bodies = asyncio.run(_answers(create_sqlalchemy_ceiling_app, demo_settings, candidates))
    chosen, empty = [], set(FIELDS)
    for uscc, body in zip(candidates, bodies):
        entity = orjson.loads(body)["data"]["entity"]
        if any(entity[field] for field in empty) or len(chosen) < 4:
            chosen.append(uscc)
            empty -= {field for field in FIELDS if entity[field]}
    return chosen + [NOBODY]


def _entities(settings, codes: list[str]) -> list[dict]:
    with Gateway(settings) as gateway:
        answers = [gateway.query(ONE, as_=CLIENT, u=u) for u in codes]
    assert all("errors" not in answer for answer in answers)
    return [answer["data"]["entity"] for answer in answers]


def test_both_ceilings_and_the_gateway_return_the_same_json(demo_settings, codes, tmp_path):
    true = asyncio.run(_answers(create_ceiling_app, demo_settings, codes))
    sqlalchemy = asyncio.run(_answers(create_sqlalchemy_ceiling_app, demo_settings, codes))
    assert true == sqlalchemy  # byte for byte
    without_rows = tmp_path / "policy.toml"
    text, removed = re.subn(r"(?m)^rows = \[.*\]\n", "",
                            DEFAULT_CATALOG.read_text(encoding="utf-8"))
    assert removed
    without_rows.write_text(text, encoding="utf-8")
    gateway = _entities(dataclasses.replace(demo_settings, policy_file=str(without_rows)), codes)
    assert [orjson.loads(body)["data"]["entity"] for body in true] == gateway
    # The comparison means something: every field has records for some code,
    # and the code registered nowhere has none.
    entities = [orjson.loads(body)["data"]["entity"] for body in true]
    for field in FIELDS:
        assert any(entity[field] for entity in entities[:-1]), field
    assert all(not entities[-1][field] for field in FIELDS)
    # With the row rules, the gateway leaves some of those records out.
    ruled = _entities(demo_settings, codes)
    assert ruled != gateway
    for kept, everything in zip(ruled, gateway):
        for field, records in kept.items():
            if isinstance(records, list):
                numbers = [r.get("decisionNumber", r) for r in everything[field]]
                assert all(r.get("decisionNumber", r) in numbers for r in records), field


def test_a_statement_is_rendered_once_per_number_of_keys_and_answers_per_key(demo_settings,
                                                                             codes):
    from gateway.sources import SourceRegistry

    registry = SourceRegistry.from_settings(demo_settings)
    try:
        (source,) = registry.serving("abnormal_operations")
        connection = source.sqlite_engine.raw_connection()
        try:
            statement = _Statement(market._ABNORMAL_OPERATIONS, connection.driver_connection)
            assert EXPANDING in statement.text
            n = len(codes)
            text = statement.sql(n)
            assert text.count("?") == n and statement.sql(n) is text
            together = statement.rows(codes)
            alone = [row for code in codes for row in statement.rows([code])]
            key = statement.key
            assert together and sorted(together, key=lambda r: (r[key], r["id"])) \
                == sorted(alone, key=lambda r: (r[key], r["id"]))
        finally:
            connection.close()
    finally:
        asyncio.run(registry.aclose())


def test_the_factories_the_peer_harness_starts_run_from_bench_config(
        generated_demo_settings, codes, monkeypatch):
    """``../shared/peer/harness.py`` starts ``bench.apps:gateway_app`` and
    ``bench.ceiling:create_ceiling_app`` with ``BENCH_CONFIG`` alone."""
    from pathlib import Path

    from starlette.testclient import TestClient

    from bench.apps import gateway_app
    from tests.gateway_fixtures import demo_token

    config = Path(generated_demo_settings.auth.jwks_file).parent / "gateway.toml"
    monkeypatch.setenv("BENCH_CONFIG", str(config))
    token = demo_token(generated_demo_settings, CLIENT[0])
    with TestClient(gateway_app()) as gateway:
        response = gateway.post("/graphql", json={"query": ONE, "variables": {"u": codes[0]}},
                                headers={"Authorization": f"Bearer {token}",
                                         "X-Purpose-Of-Use": CLIENT[1]})
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    assert response.json()["data"]["entity"]["uscc"] == codes[0]
    with TestClient(create_ceiling_app()) as ceiling:
        body = ceiling.post("/entity", json={"uscc": codes[0]}).json()
    assert body["data"]["entity"]["registration"] == response.json()["data"]["entity"]["registration"]
