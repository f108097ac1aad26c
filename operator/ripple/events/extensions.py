"""Extension attributes Ripple itself sets on events, and the rules around them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ripple.events.model import CloudEvent, EventError

ARRIVAL_TIME = "ripplearrivaltime"
"""When the broker stored the event (RFC 3339, UTC); ``maxEventAge`` is measured from it."""
HOPS = "ripplehops"
"""Hops an event may still take; a reply gets one less, and a reply at zero is dropped to stop loops."""
DEFAULT_HOPS = 255
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")

ERROR_CODE = "rippleerrorcode"
ERROR_DEST = "rippleerrordest"
ERROR_DATA = "rippleerrordata"
ERROR_TRIGGER = "rippleerrortrigger"
ERROR_EXTENSIONS = (ERROR_CODE, ERROR_DEST, ERROR_DATA, ERROR_TRIGGER)


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))


def hops_of(event: CloudEvent) -> int:
    """The event's remaining hops; raise :class:`EventError` when the extension is not a whole number."""
    value = event.get(HOPS)
    if value is None:
        return DEFAULT_HOPS
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not _INTEGER.fullmatch(value):
        raise EventError(f"attribute '{HOPS}' must be an integer, got {value!r}")
    return int(value)


def stamp_arrival(event: CloudEvent, *, hops: int | None = None) -> CloudEvent:
    """The event as the broker stores it: arrival time set, hops bounded by the default budget."""
    remaining = min(hops_of(event) if hops is None else hops, DEFAULT_HOPS)
    if remaining <= 0:
        raise EventError(f"attribute '{HOPS}' is {remaining}: the event has no hops left (a reply loop?)")
    return event.with_attributes(**{ARRIVAL_TIME: now_rfc3339(), HOPS: remaining})


def age_seconds(event: CloudEvent) -> float | None:
    arrival = event.get(ARRIVAL_TIME)
    if not isinstance(arrival, str):
        return None
    try:
        return (datetime.now(UTC) - parse_rfc3339(arrival)).total_seconds()
    except ValueError:
        return None
