"""A witness of another city's audit log, and the log's side of asking one.

A witness keeps, per log it watches, the latest checkpoint it cosigned
(tree size and root). Asked to cosign a newer one, it checks the log's
signature and a consistency proof from the size it holds, and only then
signs the checkpoint text with its own Ed25519 note key and moves on. It
refuses a checkpoint that does not extend what it saw (a log showing
different histories to different parties, a split view, cannot get both
cosigned), one older than what it saw, and one from a log it does not
watch.

The exchange is C2SP tlog-witness's ``add-checkpoint``: ``POST`` a body of

    old <size the log believes the witness holds>
    <base64 consistency proof hash, one per line>
    <blank line>
    <the signed checkpoint note>

answered ``200`` with the witness's signature line(s), ``409 Conflict`` with
``<size>\\n`` when ``old`` is not the size it holds (the log retries with a
proof from that size), ``403`` when the note is not signed by a watched log,
``422`` when the proof does not verify (the split view), ``400`` when the
body is malformed. The cosignature is a plain Ed25519 note signature over
the checkpoint text (as the Go sumdb witnesses sign), not the timestamped
``cosignature/v1`` of C2SP tlog-cosignature.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx2
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gateway.audit.checkpoint import (
    Checkpoint, NoteError, Signer, Verifier, open_checkpoint, signature_lines, sign_note,
)
from gateway.audit.merkle import verify_consistency

log = logging.getLogger("gateway.audit.witness")
MAX_BODY = 64 * 1024
ProofFrom = Callable[[int], Awaitable[list[bytes]]]  # the consistency proof from n leaves


@dataclass(frozen=True)
class Answer:
    status: int
    body: str


class Witness:
    """Cosigns checkpoints of the logs whose keys it holds (``logs``); keeps
    what it saw in ``state_file`` (JSON, replaced atomically) when given."""

    def __init__(self, signer: Signer, logs: Iterable[Verifier], state_file: str | Path | None = None
                 ) -> None:
        self.signer = signer
        self.logs = {v.name: v for v in logs}
        self._state_file = Path(state_file) if state_file else None
        self._seen: dict[str, tuple[int, str]] = {}
        if self._state_file is not None and self._state_file.exists():
            raw = json.loads(self._state_file.read_text(encoding="utf-8"))
            self._seen = {origin: (int(size), root) for origin, (size, root) in raw.items()}

    def seen(self, origin: str) -> tuple[int, bytes] | None:
        """The size and root of the latest checkpoint of ``origin`` cosigned."""
        held = self._seen.get(origin)
        return None if held is None else (held[0], base64.b64decode(held[1]))

    def add_checkpoint(self, body: str) -> Answer:
        """Answer one add-checkpoint request (see module). Synchronous: one
        request's check and state change happen without interleaving."""
        try:
            old, proof, note = _parse_request(body)
        except ValueError as exc:
            return Answer(400, f"{exc}\n")
        origin = note.split("\n", 1)[0]
        verifier = self.logs.get(origin)
        if verifier is None:
            return Answer(403, f"this witness does not watch the log {origin!r}\n")
        try:
            checkpoint = open_checkpoint(note, verifier, origin=origin)
        except NoteError as exc:
            return Answer(403, f"the checkpoint is not signed by {origin}: {exc}\n")
        held_size, held_root = self.seen(origin) or (0, b"")
        if old != held_size:
            return Answer(409, f"{held_size}\n")
        if checkpoint.size < held_size:
            return Answer(409, f"{held_size}\n")
        if held_size and not verify_consistency(held_size, checkpoint.size, held_root,
                                                checkpoint.root_hash, proof):
            log.warning("refused a checkpoint of %s at size %d: not consistent with size %d",
                        origin, checkpoint.size, held_size)
            return Answer(422, f"the checkpoint of {checkpoint.size} records is not consistent "
                               f"with the one of {held_size} this witness cosigned\n")
        self._remember(origin, checkpoint)
        return Answer(200, "".join(signature_lines(sign_note(checkpoint.text(), self.signer))))

    def _remember(self, origin: str, checkpoint: Checkpoint) -> None:
        self._seen[origin] = (checkpoint.size, base64.b64encode(checkpoint.root_hash).decode())
        if self._state_file is None:
            return
        data = json.dumps({o: list(v) for o, v in self._seen.items()}, sort_keys=True)
        fd, tmp = tempfile.mkstemp(dir=self._state_file.parent, prefix=".witness-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self._state_file)

    def route(self, path: str = "/witness/add-checkpoint") -> Route:
        async def add_checkpoint(request: Request) -> Response:
            raw = await request.body()
            if len(raw) > MAX_BODY:
                return PlainTextResponse("request too large\n", status_code=413)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                return PlainTextResponse("the body is UTF-8 text\n", status_code=400)
            answer = self.add_checkpoint(text)
            media = "text/x.tlog.size" if answer.status == 409 else "text/plain; charset=utf-8"
            return Response(answer.body, status_code=answer.status, media_type=media)

        return Route(path, add_checkpoint, methods=["POST"])


def _parse_request(body: str) -> tuple[int, list[bytes], str]:
    head, sep, note = body.partition("\n\n")
    if not sep or not head.startswith("old "):
        raise ValueError("an add-checkpoint body is 'old <size>', proof lines, a blank line, a note")
    lines = head.split("\n")
    size = lines[0][len("old "):]
    if not size.isascii() or not size.isdigit():
        raise ValueError(f"not a tree size: {size!r}")
    try:
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    except binascii.Error:
        raise ValueError("a proof line is base64") from None
    return int(size), proof, note


def add_checkpoint_body(old: int, proof: Iterable[bytes], note: str) -> str:
    lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
    return "\n".join(lines) + "\n\n" + note


class WitnessRefused(Exception):
    """A witness did not cosign; ``status`` its HTTP status (0: unreachable)."""

    def __init__(self, name: str, status: int, reason: str) -> None:
        super().__init__(f"witness {name} refused ({status or 'unreachable'}): {reason}")
        self.status = status


async def request_cosignature(client: httpx2.AsyncClient, name: str, url: str, note: str,
                              size: int, proof_from: ProofFrom, old: int = 0) -> list[str]:
    """Ask the witness at ``url`` to cosign ``note`` (a checkpoint of ``size``
    leaves); ``proof_from(n)`` gives the consistency proof from ``n`` leaves.
    Starts from ``old`` and retries once from the size a 409 names. Returns
    the witness's signature lines; ``WitnessRefused`` otherwise."""
    for _ in range(2):
        try:
            proof = await proof_from(old) if 0 < old < size else []
            answer = await client.post(url, content=add_checkpoint_body(old, proof, note).encode(),
                                       headers={"content-type": "text/plain; charset=utf-8"})
        except httpx2.HTTPError as exc:
            raise WitnessRefused(name, 0, type(exc).__name__) from exc
        if answer.status_code == 200:
            return [line + "\n" for line in answer.text.split("\n") if line]
        if answer.status_code == 409:
            held = answer.text.strip()
            if held.isdigit() and int(held) != old and int(held) <= size:
                old = int(held)
                continue
        raise WitnessRefused(name, answer.status_code, answer.text.strip()[:200])
    raise WitnessRefused(name, 409, "the witness's size kept moving")

