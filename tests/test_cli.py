"""The credit-gateway command's demo helpers and policy commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.cli import main
from gateway.settings import load_settings


@pytest.fixture
def config(demo_settings):
    return str(Path(demo_settings.auth.jwks_file).with_name("gateway.toml"))


def test_clients_lists_registered_clients_with_purposes(config, capsys):
    assert main(["clients", "--config", config]) == 0
    lines = {line.split("\t")[0]: line.split("\t") for line in capsys.readouterr().out.splitlines()}
    assert {"shenzhen-gateway", "dongguan-gateway", "bank-icbc-huizhou", "bank-hzrcb",
            "hz-market-app", "hz-procurement", "xinyong-huizhou", "hz-credit-auditor"} <= set(lines)
    assert lines["bank-icbc-huizhou"][1:5] == ["bank", "惠州", "中国工商银行股份有限公司惠州分行", "FINANCING"]
    assert lines["hz-procurement"][-1].startswith("(operations with a denied field")


def test_token_prints_a_token_the_gateway_accepts(config, capsys):
    assert main(["token", "--client", "xinyong-huizhou", "--config", config]) == 0
    token = capsys.readouterr().out.strip()
    with TestClient(create_app(load_settings(config, env={}))) as client:
        response = client.post("/graphql", json={"query": "{ myAccess { client { id } } }"},
                               headers={"Authorization": f"Bearer {token}",
                                        "X-Purpose-Of-Use": "PUBLIC_DISCLOSURE"})
    assert response.json()["data"]["myAccess"]["client"]["id"] == "xinyong-huizhou"


def test_token_for_an_unknown_client_is_refused(config, capsys):
    assert main(["token", "--client", "nobody", "--config", config]) == 2
    assert "no client 'nobody'" in capsys.readouterr().err


def test_policy_check(capsys):
    assert main(["policy", "check", "--config", "/nonexistent.toml"]) == 0
    assert "policy catalog OK: 10 purposes" in capsys.readouterr().out


def test_policy_explain_prints_what_a_purpose_may_see(capsys):
    assert main(["policy", "explain", "--purpose", "FINANCING", "--config", "/none.toml"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Purpose FINANCING (融资授信)")
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("Entity.")}
    assert "REQUIRES_AUTHORIZATION" in rows["Entity.taxRatings"]
    assert "needs the subject's authorization for tax" in rows["Entity.taxRatings"]
    assert "DENIED" in rows["Entity.repairs"]
    assert "ALLOWED" in rows["Entity.penalties"]
    assert "penalties: penalty_publicity" in out


def test_policy_explain_unknown_purpose(capsys):
    assert main(["policy", "explain", "--purpose", "NOPE", "--config", "/none.toml"]) == 2
    assert "unknown purpose 'NOPE'" in capsys.readouterr().err


def test_broken_catalog_is_a_configuration_error(tmp_path, capsys):
    catalog = tmp_path / "policy.toml"
    catalog.write_text('[purposes.A]\nname = "a"\nlegal_basis = "statutory_duty"\n[items.x]\nname = "x"\nclass = "public"\n'
                       'purposes = "all"\nfields = ["Query.entity"]\n')
    assert main(["policy", "check", "--catalog", str(catalog)]) == 2
    assert "no policy entry for field(s)" in capsys.readouterr().err
