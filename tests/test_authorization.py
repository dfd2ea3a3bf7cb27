"""The data subject's authorization, decided per field: what one field of a
record type needs does not hold back another field of the same record type."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.catalog import load_catalog
from tests.gateway_fixtures import Gateway

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "gateway" / "policy.toml"
ICBC = ("bank-icbc-huizhou", "FINANCING")


@pytest.fixture
def person_penalties_gated(demo_settings, tmp_path):
    """The demo settings with a catalog that lets FINANCING see a person's
    penalties only with the person's authorization."""
    text = DEFAULT_CATALOG.read_text(encoding="utf-8")
    block = "[items.person_penalties]\n"
    assert block in text
    text = text.replace(block, block + 'authorized_purposes = ["FINANCING"]\n'
                                       'authorization_category = "tax"\n')
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    load_catalog(path)  # valid
    return dataclasses.replace(demo_settings, policy_file=str(path))


def test_a_gated_person_field_does_not_gate_the_entity_field(person_penalties_gated, population):
    firm = population.showcase["penalty_general_in_window"]
    query = """query($u: USCC!, $id: ResidentId!) {
      entity(uscc: $u) { penalties { decisionNumber } }
      person(idNumber: $id) { penalties { decisionNumber } } }"""
    with Gateway(person_penalties_gated) as gateway:
        body = gateway.query(query, ICBC, u=firm.uscc, id=firm.legal_representative.id_number)
    assert body["data"]["entity"]["penalties"], body
    assert body["data"]["person"]["penalties"] is None
    (error,) = body["errors"]
    assert error["path"] == ["person", "penalties"]
    assert error["extensions"] == {
        "code": "FORBIDDEN_FOR_PURPOSE", "purpose": "FINANCING",
        "reason": "NO_SUBJECT_AUTHORIZATION", "field": "Person.penalties"}
