"""A ping source's schedule (``spec.ping``): which ticks are due, each with a time every replica agrees on.

A value type of the API like durations: the models refuse an invalid schedule or time zone with it, and the
ping adapter computes its ticks with it.

A tick's time is its identity (the event's ``id``), so two adapters, or one restarted, that fire the same tick
store it once (the broker's dedup window absorbs the second). Cron expressions are read by croniter in the
source's time zone (a daylight-saving gap skips a tick, an overlap fires it once); ``@every <duration>`` ticks at
whole multiples of the interval since the Unix epoch, so every replica computes the same instants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

__all__ = ["MAX_CATCH_UP_TICKS", "MAX_INTERVAL", "MIN_INTERVAL", "Schedule", "ScheduleError", "parse_every", "tick_id"]

MAX_CATCH_UP_TICKS = 1000
"""Ticks one catch-up replays at most: a long outage of a frequent schedule would otherwise flood the broker."""
_EVERY = re.compile(r"@every\s+(\S+)")
_GO_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(h|ms|m|s))")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
MIN_INTERVAL = 1.0
"""Shortest ``@every`` interval, in seconds."""
MAX_INTERVAL = 366 * 24 * 3600.0
"""Longest ``@every`` interval (a year): longer ones would overflow the tick arithmetic; use a cron schedule."""


class ScheduleError(ValueError):
    """A schedule or time zone that cannot be used; the message names which."""


def parse_every(text: str) -> float:
    """Seconds of a Go-style duration (``30s``, ``1h30m``, ``1.5h``), as ``@every`` takes; at least 1 s."""
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ScheduleError(f"@every takes a duration such as 30s, 5m or 1h30m, not {text!r}")
    interval = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if interval < MIN_INTERVAL:
        raise ScheduleError(f"@every {text} is shorter than {MIN_INTERVAL:g}s")
    if interval > MAX_INTERVAL:
        raise ScheduleError(f"@every {text} is longer than a year ({MAX_INTERVAL:g}s): use a cron schedule")
    return interval


def tick_id(tick: datetime) -> str:
    """The event id of a tick: its instant in UTC, to the millisecond."""
    return tick.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Schedule:
    expression: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"unknown time zone {self.timezone!r}") from None
        every = _EVERY.fullmatch(self.expression.strip())
        if every is not None:
            parse_every(every.group(1))
        elif not croniter.is_valid(self.expression):
            raise ScheduleError(f"invalid cron schedule {self.expression!r}")

    @property
    def interval(self) -> float | None:
        """Seconds between ticks of an ``@every`` schedule; ``None`` for cron."""
        every = _EVERY.fullmatch(self.expression.strip())
        return None if every is None else parse_every(every.group(1))

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment`` (an aware datetime), in the schedule's time zone."""
        zone = ZoneInfo(self.timezone)
        interval = self.interval
        if interval is not None:
            ticks = int(moment.timestamp() // interval) + 1
            return datetime.fromtimestamp(ticks * interval, zone)
        tick: datetime = croniter(self.expression, moment.astimezone(zone)).get_next(datetime)
        return tick

    def due(self, after: datetime, until: datetime, *, limit: int = MAX_CATCH_UP_TICKS) -> list[datetime]:
        """Ticks ``t`` with ``after < t <= until``, the latest ``limit`` of them."""
        ticks: list[datetime] = []
        tick = self.next_after(after)
        while tick <= until:
            ticks.append(tick)
            if len(ticks) > limit:
                del ticks[0]
            tick = self.next_after(tick)
        return ticks

    def first_due(self, now: datetime, catch_up: timedelta | None) -> list[datetime]:
        """What a starting adapter fires at once: nothing, or with ``catch_up`` the ticks it missed within it."""
        if not catch_up:
            return []
        return self.due(now - catch_up, now)
