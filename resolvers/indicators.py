"""The financing profile's computations: pure functions of records and a day.

Deterministic: the same records and the same ``today`` give the same
values; nothing here reads a source, a clock or the policy. Every formula is
defined in the README ("Financing profiles"); a value that cannot be
computed from the data it needs is ``None``, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

T = TypeVar("T")

WINDOW_MONTHS = 12  # the monthly series: the 12 full months before today's month
TREND_MONTHS = 3  # a trend compares the newest 3 months with the oldest 3
RATING_YEARS = 3  # tax ratings of the last 3 rated years
CLEAN_YEARS = 3  # "three consecutive years without adverse credit records"


def full_months_between(start: date, end: date) -> int:
    """Whole calendar months from ``start`` to ``end`` (0 when ``end`` is earlier)."""
    months = (end.year - start.year) * 12 + end.month - start.month
    if end.day < start.day:
        months -= 1
    return max(months, 0)


def full_years_between(start: date, end: date) -> int:
    return full_months_between(start, end) // 12


def window(today: date, months: int = WINDOW_MONTHS) -> list[str]:
    """The ``months`` full months before ``today``'s month, oldest first, as ``YYYY-MM``."""
    year, month = today.year, today.month
    periods = []
    for _ in range(months):
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        periods.append(f"{year:04d}-{month:02d}")
    return periods[::-1]


def monthly(records: Iterable[T], periods: Sequence[str], period_of: Callable[[T], str],
            value_of: Callable[[T], Any]) -> list[tuple[str, Any]]:
    """``(period, value)`` for each of ``periods`` (oldest first): the sum of
    ``value_of`` over the records of that month, ``None`` for a month
    without a record."""
    sums: dict[str, Any] = {}
    for record in records:
        period = period_of(record)
        if period in periods:
            value = value_of(record)
            sums[period] = value if period not in sums else sums[period] + value
    return [(period, sums.get(period)) for period in periods]


def trend(series: Sequence[tuple[str, Any]], months: int = TREND_MONTHS) -> float | None:
    """Relative change from the oldest ``months`` months of ``series`` to its
    newest ``months``: (mean(newest) - mean(oldest)) / mean(oldest), rounded
    to 3 decimals. ``None`` when a month of either end has no value or the
    oldest mean is 0."""
    if len(series) < 2 * months:
        return None
    oldest = [value for _, value in series[:months]]
    newest = [value for _, value in series[-months:]]
    if any(value is None for value in oldest + newest):
        return None
    base = sum(oldest) / months
    if base == 0:
        return None
    return round(float((sum(newest) / months - base) / base), 3)


def months_with(series: Sequence[tuple[str, Any]], predicate: Callable[[Any], bool]) -> int:
    """How many months of ``series`` have a value for which ``predicate`` holds."""
    return sum(1 for _, value in series if value is not None and predicate(value))


def on_time_ratio(bills: Iterable[Any], today: date) -> tuple[float | None, int]:
    """(share of bills paid on or before their due date, bills counted),
    over the bills already due (due date before ``today``); ``None`` when no
    bill is due. An unpaid bill past its due date counts as late."""
    due = [bill for bill in bills if bill.due_on < today]
    if not due:
        return None, 0
    on_time = sum(1 for bill in due if bill.paid_on is not None and bill.paid_on <= bill.due_on)
    return round(on_time / len(due), 3), len(due)


def total(amounts: Iterable[Decimal | None]) -> Decimal:
    return sum((amount for amount in amounts if amount is not None), Decimal(0))


def years_without_adverse(adverse_dates: Iterable[date], established_on: date | None,
                          today: date) -> int | None:
    """Whole years since the newest adverse record (since establishment when
    there is none); ``None`` when neither date is known."""
    newest = max(adverse_dates, default=None)
    since = newest if newest is not None else established_on
    return None if since is None else full_years_between(since, today)
