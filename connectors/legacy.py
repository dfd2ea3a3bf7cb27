"""Parsers for the date formats found in the departments' legacy columns.

Each returns ``None`` for an empty value and raises ``ValueError`` for one it
cannot read; connectors turn that into ``BadSourceData``. They slice rather
than call ``strptime`` (several times slower, and run for every row), and
remember the values they met last (a batch's rows share few months and
dates; what they return is immutable; a failure is not remembered).
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timezone

CHINA_TZ_OFFSET_SECONDS = 8 * 3600


@functools.lru_cache(maxsize=4096)
def compact_month(value: str) -> str:
    """``'202503'`` -> ``'2025-03'``; ``ValueError`` for anything else."""
    if len(value) != 6 or not value.isdigit() or not 1 <= int(value[4:]) <= 12:
        raise ValueError(f"not a YYYYMM month: {value!r}")
    return f"{value[:4]}-{value[4:]}"


@functools.lru_cache(maxsize=4096)
def compact_date(value: str | None) -> date | None:
    """``'20240315'`` (YYYYMMDD, as stored by market regulation and the credit office)."""
    if value is None or value == "":
        return None
    if len(value) != 8 or not value.isdigit():
        raise ValueError(f"not a YYYYMMDD date: {value!r}")
    return date(int(value[:4]), int(value[4:6]), int(value[6:]))


@functools.lru_cache(maxsize=4096)
def iso_date(value: str | None) -> date | None:
    """``'2024-03-15'`` (tax bureau text columns)."""
    if value is None or value == "":
        return None
    if len(value) != 10 or value[4] != "-" or value[7] != "-":
        raise ValueError(f"not a YYYY-MM-DD date: {value!r}")
    return date.fromisoformat(value)


def epoch_date(value: int | None) -> date | None:
    """Seconds since the Unix epoch, read as a Beijing-time calendar date (court system)."""
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) + CHINA_TZ_OFFSET_SECONDS, timezone.utc).date()


def to_epoch(day: date) -> int:
    """Inverse of ``epoch_date``: midnight Beijing time of ``day``."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return int(midnight.timestamp()) - CHINA_TZ_OFFSET_SECONDS
