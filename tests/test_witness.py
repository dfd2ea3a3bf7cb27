"""Partner cities as witnesses: a witness cosigns a checkpoint only when it
extends the last one it cosigned, so a log cannot show two histories; the
gateway publishes a checkpoint only with its required cosignatures."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette

import httpx2
from prometheus_client import REGISTRY

from gateway.audit import AuditStore
from gateway.audit.checkpoint import (
    Checkpoint, Signer, sign_checkpoint, signature_lines, signed_by,
)
from gateway.audit.publisher import CheckpointNotPublished, CheckpointPublisher
from gateway.audit.witness import Witness, add_checkpoint_body
from gateway.transparency import TransparencySettings, WitnessEndpoint
from tests.audit_support import entry

pytestmark = pytest.mark.anyio
LOG = Signer.generate("huizhou.test/audit")


async def _store(path, records: int, start: int = 0) -> AuditStore:
    store = AuditStore(f"sqlite+aiosqlite:///{path}")
    await store.migrate()
    for n in range(start, start + records):
        await store.append(entry(n))
    return store


async def _note(store: AuditStore) -> tuple[int, str]:
    head = await store.tree_head()
    return head.size, sign_checkpoint(Checkpoint(LOG.name, head.size, head.root), LOG)


async def test_a_witness_cosigns_extensions_and_refuses_a_split_view(tmp_path):
    honest, forked = await _store(tmp_path / "a.db", 5), await _store(tmp_path / "b.db", 5)
    witness_key = Signer.generate("shenzhen.test/witness")
    witness = Witness(witness_key, [LOG.verifier], tmp_path / "state.json")
    try:
        size, note = await _note(honest)
        first = witness.add_checkpoint(add_checkpoint_body(0, [], note))
        assert first.status == 200
        assert signed_by(note + first.body, witness_key.verifier)

        for n in range(3):
            await honest.append(entry(10 + n))
            await forked.append(entry(20 + n, client_id="someone-else"))
        grown, grown_note = await _note(honest)
        proof = await honest.consistency_proof(size, grown)
        assert witness.add_checkpoint(add_checkpoint_body(size, proof, grown_note)).status == 200

        # The same log key signing another history of the same records 1..5:
        for n in range(4):
            await forked.append(entry(30 + n))
        split, split_note = await _note(forked)
        split_proof = await forked.consistency_proof(grown, split)
        refused = witness.add_checkpoint(add_checkpoint_body(grown, split_proof, split_note))
        assert refused.status == 422 and "not consistent" in refused.body
        assert witness.seen(LOG.name)[0] == grown  # what it holds did not move

        stale = witness.add_checkpoint(add_checkpoint_body(size, [], note))
        assert (stale.status, stale.body) == (409, f"{grown}\n")
        other_log = Signer.generate("elsewhere.test/audit")
        unknown = sign_checkpoint(Checkpoint(other_log.name, 1, bytes(32)), other_log)
        assert witness.add_checkpoint(add_checkpoint_body(0, [], unknown)).status == 403
        forged = sign_checkpoint(Checkpoint(LOG.name, 99, bytes(32)), other_log)
        forged = forged.replace(other_log.name, LOG.name)
        assert witness.add_checkpoint(add_checkpoint_body(grown, [], forged)).status == 403
        assert witness.add_checkpoint("garbage").status == 400

        restarted = Witness(witness_key, [LOG.verifier], tmp_path / "state.json")
        assert restarted.seen(LOG.name) == witness.seen(LOG.name)
    finally:
        await honest.aclose()
        await forked.aclose()


def _refusals(witness: str, status: str) -> float:
    return REGISTRY.get_sample_value("credit_gateway_witness_refusals_total",
                                     {"witness": witness, "status": status}) or 0.0


def _witnesses(tmp_path, *names: str) -> tuple[Starlette, dict[str, Witness]]:
    witnesses = {name: Witness(Signer.generate(f"{name}.test/witness"), [LOG.verifier],
                               tmp_path / f"{name}.json") for name in names}
    app = Starlette(routes=[w.route(f"/{name}/add-checkpoint") for name, w in witnesses.items()])
    return app, witnesses


def _settings(witnesses: dict[str, Witness], required: tuple[str, ...]) -> TransparencySettings:
    return TransparencySettings(
        signer=LOG, witnesses=tuple(
            WitnessEndpoint(name, w.signer.verifier, f"http://witness/{name}/add-checkpoint")
            for name, w in witnesses.items()),
        required_witnesses=required)


async def test_the_gateway_publishes_only_what_its_required_witnesses_cosigned(tmp_path):
    app, witnesses = _witnesses(tmp_path, "shenzhen", "dongguan")
    store = await _store(tmp_path / "log.db", 4)
    transport = httpx2.ASGITransport(app=app)
    try:
        publisher = CheckpointPublisher(store, _settings(witnesses, ("shenzhen", "dongguan")),
                                        transport)
        note = await publisher.publish()
        assert all(signed_by(note, w.signer.verifier) for w in witnesses.values())
        assert len(signature_lines(note)) == 3
        assert await store.latest_checkpoint() == (4, note)
        assert await publisher.publish() == note  # nothing new: nothing signed again

        for n in range(3):
            await store.append(entry(10 + n))
        witnesses["dongguan"]._seen[LOG.name] = (7, "AAAA")  # it saw something else
        before = _refusals("dongguan", "422")
        with pytest.raises(CheckpointNotPublished, match="dongguan"):
            await publisher.publish()
        assert _refusals("dongguan", "422") == before + 1  # counted for the operators' alert
        assert (await store.latest_checkpoint())[0] == 4  # the old one stays the latest

        lenient = CheckpointPublisher(store, _settings(witnesses, ("shenzhen",)), transport)
        note = await lenient.publish()
        assert signed_by(note, witnesses["shenzhen"].signer.verifier)
        assert not signed_by(note, witnesses["dongguan"].signer.verifier)
        assert (await store.latest_checkpoint())[0] == 7
    finally:
        await store.aclose()


async def test_an_unreachable_required_witness_publishes_nothing(tmp_path):
    store = await _store(tmp_path / "log.db", 2)
    settings = TransparencySettings(signer=LOG, witness_timeout_seconds=0.5, witnesses=(
        WitnessEndpoint("gone", Signer.generate("gone/witness").verifier,
                        "http://127.0.0.1:9/add-checkpoint"),), required_witnesses=("gone",))
    try:
        with pytest.raises(CheckpointNotPublished, match="gone"):
            await CheckpointPublisher(store, settings).publish()
        assert await store.latest_checkpoint() is None
    finally:
        await store.aclose()
