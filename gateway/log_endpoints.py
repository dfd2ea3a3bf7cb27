"""The audit log's public endpoints: what anyone needs to check it from outside.

* ``GET /audit/checkpoint``: the latest signed (and cosigned) checkpoint
  note, ``text/plain``; 404 ``NO_CHECKPOINT`` before the first.
* ``GET /audit/log.vkey``: the log's verifier key (also in the README of a
  deployment, and written beside the checkpoints): a checkpoint is trusted by
  that key, never by where it was fetched.
* ``GET /audit/consistency?first=M&second=N``: the RFC 9162 consistency
  proof from the tree of M records to the tree of N, one base64 hash per
  line, so whoever kept an old checkpoint can check that the newer one
  extends it (``N`` at most the latest checkpoint's size).
* ``POST /witness/add-checkpoint`` when this gateway is a witness
  (``gateway.audit.witness``).

None of them needs a token or reads a record: they publish hashes only.
"""

from __future__ import annotations

import base64

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gateway.audit import AuditStore, AuditUnavailable
from gateway.audit.witness import Witness
from gateway.http import error_response
from gateway.settings import Settings


def log_routes(settings: Settings, store: AuditStore) -> list[Route]:
    routes: list[Route] = []
    if settings.witness is not None:
        witness = Witness(settings.witness.signer, settings.witness.logs,
                          settings.witness.state_file or None)
        routes.append(witness.route())
    if settings.transparency is None:
        return routes
    vkey = f"{settings.transparency.signer.verifier}\n"

    async def checkpoint(request: Request) -> Response:
        try:
            latest = await store.latest_checkpoint()
        except AuditUnavailable:
            return error_response(request, 503, "AUDIT_UNAVAILABLE", "the audit log is unavailable")
        if latest is None:
            return error_response(request, 404, "NO_CHECKPOINT", "no checkpoint signed yet")
        return PlainTextResponse(latest[1], headers={"cache-control": "no-cache"})

    async def log_key(request: Request) -> Response:
        return PlainTextResponse(vkey)

    async def consistency(request: Request) -> Response:
        first, second = request.query_params.get("first", ""), request.query_params.get("second", "")
        if not (first.isdigit() and second.isdigit()):
            return error_response(request, 400, "BAD_REQUEST",
                                  "first and second are tree sizes (decimal integers)")
        try:
            latest = await store.latest_checkpoint()
            if latest is None or not int(first) <= int(second) <= latest[0]:
                return error_response(request, 400, "BAD_REQUEST",
                                      "need first <= second <= the latest checkpoint's size")
            proof = await store.consistency_proof(int(first), int(second))
        except AuditUnavailable:
            return error_response(request, 503, "AUDIT_UNAVAILABLE", "the audit log is unavailable")
        return PlainTextResponse("".join(base64.b64encode(h).decode() + "\n" for h in proof))

    return routes + [
        Route("/audit/checkpoint", checkpoint, methods=["GET"]),
        Route("/audit/log.vkey", log_key, methods=["GET"]),
        Route("/audit/consistency", consistency, methods=["GET"]),
    ]
