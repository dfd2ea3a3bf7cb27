"""Parsers for the date formats found in the departments' legacy columns.

Each returns ``None`` for an empty value and raises ``ValueError`` for one it
cannot read; connectors turn that into ``BadSourceData``.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

CHINA_TZ_OFFSET_SECONDS = 8 * 3600


def compact_date(value: str | None) -> date | None:
    """``'20240315'`` (YYYYMMDD, as stored by market regulation and the credit office)."""
    if value is None or value == "":
        return None
    return datetime.strptime(value, "%Y%m%d").date()


def iso_date(value: str | None) -> date | None:
    """``'2024-03-15'`` (tax bureau text columns)."""
    if value is None or value == "":
        return None
    return datetime.strptime(value, "%Y-%m-%d").date()


def epoch_date(value: int | None) -> date | None:
    """Seconds since the Unix epoch, read as a Beijing-time calendar date (court system)."""
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) + CHINA_TZ_OFFSET_SECONDS, timezone.utc).date()


def to_epoch(day: date) -> int:
    """Inverse of ``epoch_date``: midnight Beijing time of ``day``."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return int(midnight.timestamp()) - CHINA_TZ_OFFSET_SECONDS
