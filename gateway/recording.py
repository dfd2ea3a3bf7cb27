"""Recording every request in the access audit trail, before its response leaves.

``AuditTrail`` (a schema extension) writes exactly one record per GraphQL
operation once it has run (its ``detail`` names the persisted operation run,
``persisted operation <name> sha256:<hex>``, if any), and fails closed: when the record cannot be
committed, the response carries no data and the status 503. Requests refused
before execution (bad token, unknown purpose...) are recorded as security
events by ``AuditRecorder.record_refusal``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timezone
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from gateway import metrics
from gateway.audit import AuditEntry, AuditStore, AuditUnavailable
from gateway.catalog import Catalog

log = logging.getLogger("gateway.audit")

AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE"
#: How long a refused request waits for its security event to be committed.
#: Nothing is released by a refusal, so it does not wait out the trail's own
#: (longer) bound, which releases keep: a 401 is answered promptly while the
#: trail is locked, and only its record may be missing (logged).
REFUSAL_RECORD_TIMEOUT_SECONDS = 0.5


def outcome_of(context: Any, result: Any) -> str:
    """An executed operation's outcome as recorded: ``rejected`` (whole, for
    a denied field), ``invalid`` (not run), ``failed`` (no data), ``partial``
    (data and errors) or ``ok`` (``gateway.metrics`` maps them)."""
    data = getattr(result, "data", None)
    errors = getattr(result, "errors", None)
    if context.rejected:
        return "rejected"
    if data is None:
        return "invalid" if context.plan is None or not errors else "failed"
    return "partial" if errors else "ok"


class AuditRecorder:
    """Turns what a request did into ``AuditEntry``s and appends them."""

    def __init__(self, store: AuditStore, subject_key: bytes, catalog: Catalog) -> None:
        self.store = store
        self._subject_key = subject_key
        self._catalog = catalog
        self._item_of = catalog.item_of()

    def person_subject(self, id_number: str) -> str:
        """A natural person as recorded: a keyed hash, never the ID number."""
        digest = hmac.new(self._subject_key, id_number.encode(), hashlib.sha256).hexdigest()
        return f"person:{digest}"

    def categories(self, coordinates: Iterable[str]) -> list[str]:
        """Names of the data items that ``coordinates`` belong to (bookkeeping items left out)."""
        names = {self._item_of[c].name for c in coordinates
                 if c in self._item_of and self._item_of[c].reported}
        return sorted(names)

    def legal_basis(self, context: Any) -> tuple[str, ...]:
        basis = [context.decision.purpose.legal_basis]
        basis += [f"enterprise_authorization:{n}" for n in sorted(context.authorizations_used)]
        return tuple(basis)

    def entry_for(self, context: Any, result: Any) -> AuditEntry:
        plan = context.plan
        denied = set(context.denied_fields)
        released = context.released - denied
        outcome = outcome_of(context, result)
        return AuditEntry(
            kind="release",
            request_id=context.request_id,
            recorded_at=datetime.now(timezone.utc),
            client_id=context.client.id,
            organization=context.client.organization,
            purpose=context.purpose,
            legal_basis=self.legal_basis(context),
            subjects=tuple(sorted(context.subjects)),
            released=tuple(sorted(released)),
            masked=tuple(sorted(released & set(context.decision.masks))),
            denied=tuple(sorted(denied)),
            withheld=sum(context.withheld.values()),
            sources=tuple(sorted(context.loaders.sources_called)),
            outcome=outcome,
            latency_ms=round((time.perf_counter() - context.started) * 1000, 3),
            detail=self.detail(context),
        )

    @staticmethod
    def detail(context: Any) -> str | None:
        """The persisted operation run, and the organization a partner city asked for."""
        parts = []
        persisted = getattr(context, "persisted", None)
        if persisted is not None:
            parts.append(f"persisted operation {persisted.name} {persisted.document_id}")
        if context.on_behalf_of:
            parts.append(f"on behalf of {context.on_behalf_of}")
        return "; ".join(parts) or None

    async def record_refusal(self, request_id: str, started: float, client_id: str | None,
                             purpose: str | None, outcome: str, detail: str) -> None:
        """Record a request refused before execution; no data was released, so
        a failing trail, or one that does not commit the record within
        ``REFUSAL_RECORD_TIMEOUT_SECONDS``, is logged rather than turned into a
        503 or waited for. (A record given up on while queued is dropped; one
        already in a committing batch may still be committed.)"""
        entry = AuditEntry(
            kind="security_event", request_id=request_id,
            recorded_at=datetime.now(timezone.utc), client_id=client_id, organization=None,
            purpose=purpose, legal_basis=(), subjects=(), released=(), masked=(), denied=(),
            withheld=0, sources=(), outcome=outcome,
            latency_ms=round((time.perf_counter() - started) * 1000, 3), detail=detail,
        )
        try:
            async with asyncio.timeout(REFUSAL_RECORD_TIMEOUT_SECONDS):
                await metrics.audit_append(self.store.append(entry), entry.kind)
        except AuditUnavailable:
            log.error("security event of request %s not recorded: audit trail unavailable",
                      request_id)
        except TimeoutError:
            log.error("security event of request %s not recorded within %g s: audit trail "
                      "busy or locked", request_id, REFUSAL_RECORD_TIMEOUT_SECONDS)


class AuditTrail(SchemaExtension):
    """Writes the operation's audit record before the response leaves; fails closed."""

    async def on_operation(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        result = self.execution_context.result
        try:
            recorder = context.services.recorder
            await metrics.audit_append(recorder.store.append(recorder.entry_for(context, result)),
                                       "release")
        except AuditUnavailable:
            log.error("request %s: audit record not committed, no data released",
                      context.request_id)
            context.response.status_code = 503
            if result is not None:
                result.data = None
                result.errors = [GraphQLError(
                    "the access audit trail is unavailable, so no data can be released; "
                    "try again later",
                    extensions={"code": AUDIT_UNAVAILABLE},
                )]
