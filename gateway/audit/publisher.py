"""Publishing signed checkpoints of the audit tree, cosigned by witnesses.

``CheckpointPublisher.publish`` reads the tree's size and root, signs the
checkpoint (C2SP tlog-checkpoint in a signed note, the key's name as origin),
asks every configured witness to cosign it (``witness.request_cosignature``,
with consistency proofs from the size each holds), and, if every required
witness did, keeps it in the trail's database (what ``/audit/checkpoint``
serves and the proofs refer to) and writes it to the configured directory:
``checkpoint`` (the latest, replaced atomically), ``checkpoints/<size>`` (each
one) and ``log.vkey`` (the verifier key). A required witness refusing (a
split view, or unreachable) publishes nothing: the previous checkpoint stays
the latest, and the refusal is logged and raised as ``CheckpointNotPublished``.
Nothing changes when the tree has not grown since the latest checkpoint and
that one carries every required cosignature.

``run`` publishes every ``interval_seconds``, the first time one interval
after start-up (the witnesses may be starting too), until cancelled; several
gateway processes may each run it (the database keeps one note per size).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path

import httpx2

from gateway import metrics
from gateway.audit.checkpoint import (
    Checkpoint, add_signatures, sign_checkpoint, signed_by,
)
from gateway.audit.store import AuditStore
from gateway.audit.witness import WitnessRefused, request_cosignature
from gateway.transparency import TransparencySettings

log = logging.getLogger("gateway.audit.checkpoints")


class CheckpointNotPublished(Exception):
    """A required witness did not cosign: the checkpoint was not published."""


class CheckpointPublisher:
    def __init__(self, store: AuditStore, settings: TransparencySettings,
                 transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self.store = store
        self.settings = settings
        self.signer = settings.signer
        self._transport = transport

    @property
    def origin(self) -> str:
        return self.signer.name

    async def publish(self) -> str:
        """Publish the checkpoint of the tree now (see module); returns its note."""
        head = await self.store.tree_head()
        latest = await self.store.latest_checkpoint()
        required = [w for w in self.settings.witnesses
                    if w.name in self.settings.required_witnesses]
        if latest is not None and latest[0] > head.size:
            raise CheckpointNotPublished(f"the tree has {head.size} records, fewer than the "
                                         f"latest checkpoint's {latest[0]}: run audit verify")
        if latest is not None and latest[0] == head.size and all(
                signed_by(latest[1], w.key) for w in required):
            metrics.checkpoint_round("unchanged")
            return latest[1]
        note = sign_checkpoint(Checkpoint(self.origin, head.size, head.root), self.signer)
        held = latest[0] if latest is not None else 0
        refused = []
        if self.settings.witnesses:
            note = await self._cosign(note, head.size, held, refused)
        missing = [w.name for w in required if w.name in refused]
        if missing:
            metrics.checkpoint_round("not_published")
            raise CheckpointNotPublished(f"the checkpoint of {head.size} records was not "
                                         f"cosigned by {', '.join(missing)}")
        await self.store.save_checkpoint(head.size, note)
        if self.settings.directory:
            await asyncio.to_thread(self._write, head.size, note)
        metrics.checkpoint_round("published")
        return note

    async def _cosign(self, note: str, size: int, held: int, refused: list[str]) -> str:
        """``note`` with the cosignatures of the witnesses that gave one; the
        names of those that did not appended to ``refused``. One HTTP client
        per round, made only when there are witnesses (its set-up is most of
        a round's CPU)."""
        async with httpx2.AsyncClient(transport=self._transport,
                                      timeout=self.settings.witness_timeout_seconds) as client:
            for witness in self.settings.witnesses:
                try:
                    lines = await request_cosignature(client, witness.name, witness.url, note,
                                                      size, self._proof_to(size), held)
                    cosigned = add_signatures(note, lines)
                    if not signed_by(cosigned, witness.key):
                        raise WitnessRefused(witness.name, 200, "its signature does not verify")
                    note = cosigned
                except WitnessRefused as exc:
                    log.error("checkpoint of %d records: %s", size, exc)
                    metrics.witness_refused(witness.name, exc.status)
                    refused.append(witness.name)
        return note

    def _proof_to(self, size: int):
        async def proof_from(old: int) -> list[bytes]:
            return await self.store.consistency_proof(old, size)
        return proof_from

    def _write(self, size: int, note: str) -> None:
        directory = Path(self.settings.directory)
        (directory / "checkpoints").mkdir(parents=True, exist_ok=True)
        _replace(directory / "log.vkey", f"{self.signer.verifier}\n")
        _replace(directory / "checkpoints" / str(size), note)
        _replace(directory / "checkpoint", note)

    async def run(self) -> None:
        """Publish every ``interval_seconds`` until cancelled; failures are logged."""
        while True:
            await asyncio.sleep(self.settings.interval_seconds)
            try:
                await self.publish()
            except asyncio.CancelledError:
                raise
            except CheckpointNotPublished as exc:  # counted; the next round tries again
                log.error("checkpoint not published: %s", exc)
            except Exception as exc:
                metrics.checkpoint_round("error")
                log.error("checkpoint not published: %s", exc)


def _replace(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)
