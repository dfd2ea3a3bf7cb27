"""Row rules and authorizations run on the date in China, whatever the host's zone."""

from __future__ import annotations

import os
import time
from datetime import date, datetime, timedelta, timezone

import pytest

from gateway import clock
from tests.gateway_fixtures import Gateway

LICENSING = ("hz-market-app", "LICENSING_REVIEW")


def at(monkeypatch, moment: datetime) -> None:
    monkeypatch.setattr(clock, "utc_now", lambda: moment)


def test_at_2038_utc_it_is_already_tomorrow_in_huizhou(monkeypatch):
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    if hasattr(time, "tzset"):
        time.tzset()
    try:
        at(monkeypatch, datetime(2026, 12, 1, 20, 38, tzinfo=timezone.utc))
        assert clock.china_today() == date(2026, 12, 2)
        at(monkeypatch, datetime(2026, 12, 1, 15, 59, 59, tzinfo=timezone.utc))
        assert clock.china_today() == date(2026, 12, 1)
    finally:
        monkeypatch.delenv("TZ")
        if hasattr(time, "tzset"):
            time.tzset()


@pytest.fixture
def penalty_window(demo_settings, population):
    """A firm's penalty in its window, and the last day of that window."""
    firm = population.showcase["penalty_general_in_window"]
    with Gateway(demo_settings) as gateway:
        body = gateway.query("query($u: USCC!) { entity(uscc: $u) { penalties { publicityEndsOn } } }",
                             LICENSING, u=firm.uscc)
    (penalty,) = body["data"]["entity"]["penalties"]
    return firm.uscc, date.fromisoformat(penalty["publicityEndsOn"])


def test_the_window_closes_at_midnight_in_china(demo_settings, penalty_window, monkeypatch):
    uscc, last_day = penalty_window
    query = "query($u: USCC!) { entity(uscc: $u) { penalties { decisionNumber } } }"
    last_evening = datetime.combine(last_day, datetime.min.time(), timezone.utc) + timedelta(
        hours=15, minutes=59)  # 23:59 in Huizhou
    with Gateway(demo_settings) as gateway:
        at(monkeypatch, last_evening)
        assert len(gateway.query(query, LICENSING, u=uscc)["data"]["entity"]["penalties"]) == 1
        at(monkeypatch, last_evening + timedelta(minutes=1))  # 16:00 UTC, midnight in Huizhou
        body = gateway.query(query, LICENSING, u=uscc)
    assert body["data"]["entity"]["penalties"] == []
    assert body["extensions"]["policy"]["withheldRecords"] == {"penalties": 1}
