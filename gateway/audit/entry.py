"""What one audit record says: an ``AuditEntry``, and the stored ``AuditRecord``.

An entry normalizes itself on construction to exactly what the trail stores,
so a stored entry reads back equal to the one appended: ``recorded_at`` in UTC
(it must be timezone-aware), ``latency_ms`` rounded to whole microseconds,
every list a tuple of strings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

# "maintenance" records are written only by ``AuditStore.prune`` (outcome "pruned").
KINDS = frozenset({"release", "security_event", "maintenance"})

_TEXT_TUPLES = ("legal_basis", "subjects", "released", "masked", "denied", "sources")
_OPTIONAL_TEXT = ("client_id", "organization", "purpose", "detail")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One release of credit data (or one refused request), as the trail records it."""

    kind: str                      # "release", "security_event" or "maintenance"
    request_id: str
    recorded_at: datetime          # timezone-aware; stored and returned in UTC
    client_id: str | None
    organization: str | None
    purpose: str | None
    legal_basis: tuple[str, ...]   # ("statutory_duty",), ("enterprise_authorization:SQ2026-001",)
    subjects: tuple[str, ...]      # USCCs, and "person:<hmac hex>" for natural persons
    released: tuple[str, ...]      # field coordinates released, e.g. "Entity.penalties"
    masked: tuple[str, ...]
    denied: tuple[str, ...]
    withheld: int                  # records withheld by row rules
    sources: tuple[str, ...]       # source ids called
    outcome: str                   # "ok" | "partial" | "rejected" | "invalid" | "unauthenticated" | ...
    latency_ms: float
    detail: str | None = None      # for security events: why the request was refused

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"AuditEntry.kind must be one of {sorted(KINDS)}, not {self.kind!r}")
        for name in ("request_id", "outcome"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"AuditEntry.{name} must be a non-empty string")
        for name in _OPTIONAL_TEXT:
            if not isinstance(getattr(self, name), str | None):
                raise ValueError(f"AuditEntry.{name} must be a string or None")
        for name in _TEXT_TUPLES:
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(item, str) for item in value):
                raise ValueError(f"AuditEntry.{name} must be a sequence of strings")
            object.__setattr__(self, name, tuple(value))
        if not isinstance(self.recorded_at, datetime) or self.recorded_at.utcoffset() is None:
            raise ValueError("AuditEntry.recorded_at must be a timezone-aware datetime")
        object.__setattr__(self, "recorded_at", self.recorded_at.astimezone(UTC))
        if isinstance(self.withheld, bool) or not isinstance(self.withheld, int) or self.withheld < 0:
            raise ValueError("AuditEntry.withheld must be an integer >= 0")
        if not isinstance(self.latency_ms, int | float) or not math.isfinite(self.latency_ms) \
                or self.latency_ms < 0:
            raise ValueError("AuditEntry.latency_ms must be a finite number >= 0")
        object.__setattr__(self, "latency_ms", self.latency_us / 1000)

    @property
    def latency_us(self) -> int:
        """The latency in whole microseconds: what the trail stores and hashes."""
        return round(self.latency_ms * 1000)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An entry as stored: its place ``seq`` in the chain and its hash links."""

    seq: int
    entry: AuditEntry
    prev_hash: str
    hash: str
