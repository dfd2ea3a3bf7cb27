"""Reading the access audit trail: a data subject's own access history, and
the auditor's view of the whole trail, each item with its inclusion proof in
the audit log's Merkle tree against the latest signed checkpoint when one
covers it (``gateway/audit/leaf.py`` says what the leaf holds)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

import base64

import strawberry
from strawberry.types.nodes import FragmentSpread, InlineFragment, Selection

from core.codes import InvalidCode, validate_resident_id, validate_uscc
from core.errors import InvalidInput
from core.text import first_invisible
from resolvers.access import PurposeInfo
from resolvers.info import Info

MAX_AUDIT_PAGE = 200


@strawberry.type(description="A salt of one subject's commitment in a Merkle leaf.")
class SubjectSalt:
    subject: str
    salt: str = strawberry.field(description="Hex.")


@strawberry.type(description=(
    "Proof that an audit record is in the audit log the gateway signed: check it with "
    "`credit-gateway audit check-proof` and the log's public key (/audit/log.vkey), "
    "without trusting the gateway."))
class InclusionProof:
    leaf: str = strawberry.field(description=(
        "The record's Merkle leaf (JSON: its time, organization, purpose, items released, "
        "outcome, chain hash, and salted commitments to its subjects)."))
    salts: list[SubjectSalt] = strawberry.field(description=(
        "The salts of the subjects' commitments this view may show: the subject's own in an "
        "access history, every subject's in the audit trail."))
    leaf_index: int
    tree_size: int
    audit_path: list[str] = strawberry.field(description="RFC 9162 audit path, base64 hashes.")
    checkpoint: str = strawberry.field(description="The signed checkpoint note it leads to.")


@strawberry.type(description="One request that read this subject's credit data.")
class AccessEvent:
    at: datetime
    organization: str
    purpose: PurposeInfo
    categories: list[str] = strawberry.field(description="Data items released (catalog names).")
    outcome: str
    proof: Optional[InclusionProof] = strawberry.field(description=(
        "Null until a signed checkpoint covers the record (at most the checkpoint interval)."))


@strawberry.type(description="A page of an access history, newest first.")
class AccessHistoryPage:
    events: list[AccessEvent]
    end_cursor: Optional[str]
    has_next_page: bool


@strawberry.type(description="One record of the access audit trail.")
class AuditRecordView:
    seq: int
    request_id: str
    recorded_at: datetime
    kind: str
    client_id: Optional[str]
    organization: Optional[str]
    purpose: Optional[str]
    legal_basis: list[str]
    subjects: list[str] = strawberry.field(
        description="USCCs, and `person:<hmac>` for natural persons (never the ID number)."
    )
    released: list[str]
    masked: list[str]
    denied: list[str]
    withheld: int
    sources: list[str]
    outcome: str
    latency_ms: float
    detail: Optional[str]
    prev_hash: str
    hash: str
    proof: Optional[InclusionProof] = strawberry.field(description=(
        "Null until a signed checkpoint covers the record (at most the checkpoint interval)."))


@strawberry.type(description="A page of the audit trail, newest first.")
class AuditTrailPage:
    records: list[AuditRecordView]
    end_cursor: Optional[str]
    has_next_page: bool


def _page(first: int) -> int:
    if not 1 <= first <= MAX_AUDIT_PAGE:
        raise InvalidInput(f"first must be between 1 and {MAX_AUDIT_PAGE}, got {first}")
    return first


def _cursor(after: Optional[str]) -> Optional[int]:
    if after is None:
        return None
    if not after.isdigit():
        raise InvalidInput("after is not a cursor returned by this field")
    return int(after)


def _selects(selections: list[Selection], *path: str) -> bool:
    """Does the selection name ``path`` (camel-case names, through fragments)?"""
    for selection in selections:
        if isinstance(selection, FragmentSpread | InlineFragment):
            if _selects(selection.selections, *path):
                return True
        elif selection.name == path[0] and (
                len(path) == 1 or _selects(selection.selections, *path[1:])):
            return True
    return False


async def _proofs(info: Info, records: list[Any], subject: Optional[str]
                  ) -> dict[int, InclusionProof]:
    """Inclusion proofs of ``records`` against the latest checkpoint (only
    ``subject``'s salt when given, every subject's otherwise)."""
    store = info.context.services.recorder.store
    latest = await store.latest_checkpoint()
    if latest is None or not records:
        return {}
    size, note = latest
    found = await store.record_proofs(records, size)
    return {
        seq: InclusionProof(
            leaf=p.leaf.decode(),
            salts=[SubjectSalt(subject=s, salt=salt.hex()) for s, salt in p.salts.items()
                   if subject is None or s == subject],
            leaf_index=p.index, tree_size=p.size,
            audit_path=[base64.b64encode(h).decode() for h in p.hashes], checkpoint=note,
        )
        for seq, p in found.items()
    }


async def access_history(uscc: str, info: Info, first: int, after: Optional[str]
                         ) -> AccessHistoryPage:
    """Who read ``uscc``'s data, newest first (security events name no subject)."""
    context = info.context
    found = await context.services.recorder.store.query(
        subject=uscc, after_seq=_cursor(after), limit=_page(first) + 1,
    )
    page = found[:first]
    proofs = await _proofs(info, page, uscc) \
        if _selects(info.selected_fields, "accessHistory", "events", "proof") else {}
    catalog = context.services.policy.catalog
    events = [
        AccessEvent(
            at=record.entry.recorded_at,
            organization=record.entry.organization or "",
            purpose=PurposeInfo(
                code=record.entry.purpose or "",
                name=catalog.purposes[record.entry.purpose].name
                if record.entry.purpose in catalog.purposes else "",
            ),
            categories=context.services.recorder.categories(record.entry.released),
            outcome=record.entry.outcome,
            proof=proofs.get(record.seq),
        )
        for record in page
    ]
    has_next = len(found) > first
    return AccessHistoryPage(events=events, end_cursor=str(page[-1].seq) if has_next else None,
                             has_next_page=has_next)


def _subject(info: Info, code: str) -> str:
    try:
        return validate_uscc(code)
    except InvalidCode:
        pass
    try:
        return info.context.services.recorder.person_subject(validate_resident_id(code))
    except InvalidCode:
        raise InvalidInput("subject must be a USCC or a resident identity number") from None


def _view(record: Any, proof: Optional[InclusionProof]) -> AuditRecordView:
    e = record.entry
    return AuditRecordView(
        seq=record.seq, request_id=e.request_id, recorded_at=e.recorded_at, kind=e.kind,
        client_id=e.client_id, organization=e.organization, purpose=e.purpose,
        legal_basis=list(e.legal_basis), subjects=list(e.subjects), released=list(e.released),
        masked=list(e.masked), denied=list(e.denied), withheld=e.withheld,
        sources=list(e.sources), outcome=e.outcome, latency_ms=e.latency_ms, detail=e.detail,
        prev_hash=record.prev_hash, hash=record.hash, proof=proof,
    )


async def audit_trail(
    info: Info,
    client_id: Optional[str] = None,
    purpose: Optional[str] = None,
    subject: Optional[str] = None,
    since: Optional[datetime] = None,
    until: Optional[datetime] = None,
    first: int = 50,
    after: Optional[str] = None,
) -> Optional[AuditTrailPage]:
    for name, value in (("clientId", client_id), ("purpose", purpose)):
        refused = first_invisible(value) if value is not None else None
        if refused is not None:
            raise InvalidInput(f"{name} must not contain control or invisible format "
                               f"characters, got U+{ord(refused):04X}")
    found = await info.context.services.recorder.store.query(
        client_id=client_id, purpose=purpose,
        subject=_subject(info, subject) if subject is not None else None,
        since=since, until=until, after_seq=_cursor(after), limit=_page(first) + 1,
    )
    page = found[:first]
    has_next = len(found) > first
    proofs = await _proofs(info, page, None) \
        if _selects(info.selected_fields, "auditTrail", "records", "proof") else {}
    return AuditTrailPage(records=[_view(r, proofs.get(r.seq)) for r in page],
                          end_cursor=str(page[-1].seq) if has_next else None,
                          has_next_page=has_next)
