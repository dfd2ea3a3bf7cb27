"""The gateway's calendar: "today", for every row rule and authorization, is
the date in China (Asia/Shanghai, UTC+8 all year), whatever the host's time
zone: at 20:38 UTC it is already the next day in Huizhou."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def china_today() -> date:
    """Today's date in China."""
    return utc_now().astimezone(CHINA).date()
