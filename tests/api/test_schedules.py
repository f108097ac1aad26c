"""Ping schedules: cron through croniter in the source's time zone, @every on epoch multiples, stable tick ids,
bounded catch-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ripple.api.schedules import MAX_CATCH_UP_TICKS, Schedule, ScheduleError, parse_every, tick_id

BERLIN = ZoneInfo("Europe/Berlin")


def test_cron_in_a_time_zone_across_daylight_saving():
    nightly = Schedule("0 2 * * *", "Europe/Berlin")
    ticks = nightly.due(datetime(2026, 3, 27, 12, tzinfo=UTC), datetime(2026, 3, 30, 12, tzinfo=UTC))
    # 02:00 does not exist on 29 March in Berlin: croniter fires at the first instant after the gap.
    assert [t.astimezone(BERLIN).strftime("%d %H:%M") for t in ticks] == ["28 02:00", "29 03:00", "30 02:00"]


def test_every_ticks_on_epoch_multiples_whoever_computes_them():
    every = Schedule("@every 30s")
    a = every.next_after(datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC))
    b = every.next_after(datetime(2026, 1, 1, 0, 0, 29, 999000, tzinfo=UTC))
    assert a == b == datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    assert every.next_after(a) == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert tick_id(a) == "2026-01-01T00:00:30.000Z"


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("1.5h", 5400),
                                                ("1500ms", 1.5)])
def test_every_durations(text, seconds):
    assert parse_every(text) == seconds


@pytest.mark.parametrize(("expression", "zone", "message"), [
    ("61 * * * *", "UTC", "invalid cron schedule"),
    ("@every 5 minutes", "UTC", "invalid cron schedule"),
    ("@every 5x", "UTC", "@every takes a duration"),
    ("@every 100ms", "UTC", "shorter than 1s"),
    ("@every 99999999999999999999999999h", "UTC", "longer than a year"),
    ("@hourly", "Mars/Olympus", "unknown time zone"),
])
def test_invalid_schedules_name_the_problem(expression, zone, message):
    with pytest.raises(ScheduleError, match=message):
        Schedule(expression, zone)


def test_no_catch_up_unless_asked_and_then_bounded():
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    hourly = Schedule("@hourly")
    assert hourly.first_due(now, None) == []
    assert [t.hour for t in hourly.first_due(now, timedelta(hours=3))] == [10, 11, 12]
    frequent = Schedule("@every 1s")
    ticks = frequent.first_due(now, timedelta(days=1))
    assert len(ticks) == MAX_CATCH_UP_TICKS and ticks[-1] == now  # the latest ones
