"""The audit log seen from outside the gateway: its checkpoint, key and
consistency proofs at /audit/, inclusion proofs on accessHistory and
auditTrail checked offline, and the audit commands that make and check them."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from pathlib import Path

import pytest

from gateway.audit import AuditStore
from gateway.audit.checkpoint import open_checkpoint
from gateway.audit.merkle import verify_consistency
from gateway.audit.offline import ProofError, check_bundle
from gateway.audit.publisher import CheckpointPublisher
from gateway.cli import main
from tests.gateway_fixtures import Gateway

PUBLIC = ("xinyong-huizhou", "PUBLIC_DISCLOSURE")
ICBC = ("bank-icbc-huizhou", "FINANCING")
AUDITOR = ("hz-credit-auditor", "AUDIT")
ME = ("enterprise-clean", "SELF_INQUIRY")
LOOKUP = "query($u: USCC!) { entity(uscc: $u) { registration { name } } }"
PROOF = "proof { leaf salts { subject salt } leafIndex treeSize auditPath checkpoint }"


@pytest.fixture
def settings(demo_settings, tmp_path):
    assert demo_settings.transparency is not None, "the demo signs its audit log's checkpoints"
    return dataclasses.replace(
        demo_settings,
        audit=dataclasses.replace(demo_settings.audit,
                                  url=f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"),
        transparency=dataclasses.replace(demo_settings.transparency,
                                         directory=str(tmp_path / "published")))


def publish(settings) -> str:
    async def run():
        store = AuditStore(settings.audit.url)
        try:
            return await CheckpointPublisher(store, settings.transparency).publish()
        finally:
            await store.aclose()
    return asyncio.run(run())


def vkey(settings) -> str:
    return str(settings.transparency.signer.verifier)


def test_the_checkpoint_key_and_consistency_are_public(settings, population, tmp_path):
    firm = population.showcase["clean"]
    with Gateway(settings) as gateway:
        assert gateway.client.get("/audit/checkpoint").json()["errors"][0]["extensions"][
            "code"] == "NO_CHECKPOINT"
        assert gateway.client.get("/audit/log.vkey").text == vkey(settings) + "\n"
        for _ in range(3):
            gateway.query(LOOKUP, PUBLIC, u=firm.uscc)
        first_note = publish(settings)
        for _ in range(4):
            gateway.query(LOOKUP, PUBLIC, u=firm.uscc)
        second_note = publish(settings)
        served = gateway.client.get("/audit/checkpoint")
        proof = gateway.client.get("/audit/consistency", params={"first": 3, "second": 7})
        refused = [gateway.client.get("/audit/consistency", params=p).status_code
                   for p in ({"first": 3, "second": 8}, {"first": "x", "second": 7},
                             {"first": 5, "second": 4})]
    assert served.status_code == 200 and served.text == second_note
    first = open_checkpoint(first_note, settings.transparency.signer.verifier)
    second = open_checkpoint(served.text, settings.transparency.signer.verifier)
    assert (first.size, second.size) == (3, 7)
    hashes = [base64.b64decode(line) for line in proof.text.splitlines()]
    assert verify_consistency(3, 7, first.root_hash, second.root_hash, hashes)
    assert refused == [400, 400, 400]
    published = tmp_path / "published"
    assert (published / "checkpoint").read_text() == second_note
    assert (published / "checkpoints" / "3").read_text() == first_note
    assert (published / "log.vkey").read_text().strip() == vkey(settings)


def test_an_enterprise_checks_its_access_history_without_trusting_the_operator(
        settings, population, tmp_path, capsys):
    own, other = population.showcase["clean"], population.showcase["penalty_minor"]
    history = f"""query($u: USCC!) {{ entity(uscc: $u) {{ accessHistory(first: 10) {{
        events {{ organization purpose {{ code }} outcome {PROOF} }} }} }} }}"""
    with Gateway(settings) as gateway:
        portfolio = """query($a: USCC!, $b: USCC!) { a: entity(uscc: $a) { registration { name } }
                       b: entity(uscc: $b) { registration { name } } }"""
        gateway.query(portfolio, PUBLIC, a=own.uscc, b=other.uscc)
        before = gateway.query(history, ME, u=own.uscc)["data"]["entity"]["accessHistory"]
        publish(settings)
        after = gateway.query(history, ME, u=own.uscc)["data"]["entity"]["accessHistory"]
    assert before["events"][0]["proof"] is None  # no checkpoint covers it yet
    event = after["events"][-1]
    assert event["organization"] == "信用惠州网"
    proof = event["proof"]
    assert [s["subject"] for s in proof["salts"]] == [own.uscc]  # never the other firm's
    assert other.uscc not in json.dumps(proof) and own.uscc not in proof["leaf"]
    proven = check_bundle(proof, vkey(settings), subject=own.uscc)
    assert (proven.leaf["organization"], proven.leaf["purpose"]) == ("信用惠州网",
                                                                      "PUBLIC_DISCLOSURE")
    with pytest.raises(ProofError):
        check_bundle(proof, vkey(settings), subject=other.uscc)

    saved = tmp_path / "proof.json"
    saved.write_text(json.dumps(proof), encoding="utf-8")
    assert main(["audit", "check-proof", str(saved), "--key", vkey(settings),
                 "--subject", own.uscc]) == 0
    assert "PROVEN: record 1" in capsys.readouterr().out
    saved.write_text(json.dumps({**proof, "leaf": proof["leaf"].replace("PUBLIC", "SECRET")}))
    assert main(["audit", "check-proof", str(saved), "--key", vkey(settings)]) == 1
    assert "NOT PROVEN" in capsys.readouterr().out


def test_the_auditor_gets_every_salt_and_audit_prove_the_record(settings, population, tmp_path,
                                                               capsys, monkeypatch):
    firm = population.showcase["clean"]
    page = f"{{ auditTrail(first: 5) {{ records {{ seq subjects {PROOF} }} }} }}"
    with Gateway(settings) as gateway:
        gateway.query(LOOKUP, PUBLIC, u=firm.uscc)
        gateway.query(LOOKUP, ICBC, u=firm.uscc)
        publish(settings)
        records = gateway.query(page, AUDITOR)["data"]["auditTrail"]["records"]
    for record in records:
        assert sorted(s["subject"] for s in record["proof"]["salts"]) == sorted(record["subjects"])
        check_bundle(record["proof"], vkey(settings))

    config = tmp_path / "gateway.toml"
    source = Path(settings.auth.jwks_file).with_name("gateway.toml").read_text(encoding="utf-8")
    config.write_text(source.replace('directory = "checkpoints"',
                                     f'directory = "{tmp_path / "cli-published"}"'))
    for name in ("jwks.json", "clients.toml", "audit-log.key", "operations.toml"):
        target = Path(settings.auth.jwks_file).with_name(name)
        if target.exists():
            (tmp_path / name).write_bytes(target.read_bytes())
    monkeypatch.setenv("CREDIT_GATEWAY_AUDIT_URL", settings.audit.url)
    assert main(["audit", "prove", "--config", str(config), "--seq", "2"]) == 0
    bundle = json.loads(capsys.readouterr().out)
    assert check_bundle(bundle, vkey(settings)).leaf["seq"] == 2  # with the full record
    assert main(["audit", "prove", "--config", str(config), "--seq", "99"]) == 1
    assert "no record 99" in capsys.readouterr().err

    assert main(["audit", "checkpoint", "--config", str(config)]) == 0
    note = capsys.readouterr().out
    kept = tmp_path / "kept-checkpoint"
    kept.write_text(note)
    assert main(["audit", "verify", "--config", str(config), "--checkpoint", str(kept)]) == 0
    assert "append-only extension of the checkpoint of" in capsys.readouterr().out
    kept.write_text(note.replace("\n3\n", "\n2\n"))  # the signature no longer verifies
    assert main(["audit", "verify", "--config", str(config), "--checkpoint", str(kept)]) == 2
    assert "not one signed by" in capsys.readouterr().err


def test_keygen_writes_a_private_key_and_prints_the_verifier(tmp_path, capsys):
    from gateway.audit.checkpoint import Signer, Verifier

    out = tmp_path / "log.key"
    assert main(["audit", "keygen", "--name", "city.example/audit", "--out", str(out)]) == 0
    verifier = Verifier.parse(capsys.readouterr().out.strip())
    assert Signer.parse(out.read_text().strip()).verifier == verifier
    assert out.stat().st_mode & 0o777 == 0o600
    assert main(["audit", "keygen", "--name", "x", "--out", str(out)]) == 2  # never overwritten
