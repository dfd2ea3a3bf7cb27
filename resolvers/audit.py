"""Reading the access audit trail: a data subject's own access history, and
the auditor's view of the whole trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

import strawberry

from core.codes import InvalidCode, validate_resident_id, validate_uscc
from core.errors import InvalidInput
from core.text import first_invisible
from resolvers.access import PurposeInfo
from resolvers.info import Info

MAX_AUDIT_PAGE = 200


@strawberry.type(description="One request that read this subject's credit data.")
class AccessEvent:
    at: datetime
    organization: str
    purpose: PurposeInfo
    categories: list[str] = strawberry.field(description="Data items released (catalog names).")
    outcome: str


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


async def access_history(uscc: str, info: Info, first: int, after: Optional[str]
                         ) -> AccessHistoryPage:
    """Who read ``uscc``'s data, newest first (security events name no subject)."""
    context = info.context
    found = await context.services.recorder.store.query(
        subject=uscc, after_seq=_cursor(after), limit=_page(first) + 1,
    )
    page = found[:first]
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


def _view(record: Any) -> AuditRecordView:
    e = record.entry
    return AuditRecordView(
        seq=record.seq, request_id=e.request_id, recorded_at=e.recorded_at, kind=e.kind,
        client_id=e.client_id, organization=e.organization, purpose=e.purpose,
        legal_basis=list(e.legal_basis), subjects=list(e.subjects), released=list(e.released),
        masked=list(e.masked), denied=list(e.denied), withheld=e.withheld,
        sources=list(e.sources), outcome=e.outcome, latency_ms=e.latency_ms, detail=e.detail,
        prev_hash=record.prev_hash, hash=record.hash,
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
    return AuditTrailPage(records=[_view(r) for r in page],
                          end_cursor=str(page[-1].seq) if has_next else None,
                          has_next_page=has_next)
