"""Extension attributes Ripple itself sets on events, and the rules around them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ripple.events.model import (
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    AttributeValue,
    CloudEvent,
    EventError,
    attribute_text,
)
from ripple.tracing import MAX_TRACESTATE, TRACEPARENT, TRACESTATE, is_traceparent, same_trace

__all__ = [
    "ARRIVAL_TIME",
    "BRANCH",
    "DEFAULT_FANOUT",
    "DEFAULT_HOPS",
    "ERROR_CODE",
    "ERROR_DATA",
    "ERROR_DEST",
    "ERROR_EXTENSIONS",
    "ERROR_REASON",
    "ERROR_TRIGGER",
    "FANOUT",
    "FLOW_EXTENSIONS",
    "HOPS",
    "MAX_PRODUCER_ATTRIBUTES",
    "MAX_PRODUCER_ATTRIBUTES_BYTES",
    "PARALLEL",
    "REPLAY",
    "RESERVED_ATTRIBUTES",
    "ROOT",
    "SEQUENCE",
    "STEP",
    "TRACE_EXTENSIONS",
    "age_seconds",
    "check_room",
    "check_trace_context",
    "fanout_of",
    "hops_of",
    "in_trace",
    "now_rfc3339",
    "parse_rfc3339",
    "stamp_arrival",
]

ARRIVAL_TIME = "ripplearrivaltime"
"""When the broker stored the event (RFC 3339, UTC); ``maxEventAge`` is measured from it."""
HOPS = "ripplehops"
"""Hops an event may still take; a reply gets one less, and a reply at zero is dropped to stop loops."""
DEFAULT_HOPS = 255
FANOUT = "ripplefanout"
"""How many more events the event's replies, and theirs, may still add: a reply shares its parent's budget with
the replies of the other triggers the parent matched, so a reply cycle through several triggers ends after about
that many events in all, instead of doubling at each hop. Absent means :data:`DEFAULT_FANOUT`."""
DEFAULT_FANOUT = 1000
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")

ERROR_CODE = "rippleerrorcode"
ERROR_DEST = "rippleerrordest"
ERROR_DATA = "rippleerrordata"
ERROR_TRIGGER = "rippleerrortrigger"
ERROR_REASON = "rippleerrorreason"
"""Why the event was dead-lettered, in words (e.g. ``retries exhausted after 4 attempts``, or the exception an
undeliverable event raised)."""
ERROR_EXTENSIONS = (ERROR_CODE, ERROR_DEST, ERROR_DATA, ERROR_TRIGGER, ERROR_REASON)
SEQUENCE = "ripplesequence"
"""The Sequence (``namespace/name``) whose step the event is the input of."""
STEP = "ripplestep"
"""The 0-based index of that step."""
PARALLEL = "rippleparallel"
"""The Parallel (``namespace/name``) whose branch the event is the input of."""
BRANCH = "ripplebranch"
"""The 0-based index of that branch."""
ROOT = "rippleroot"
"""The id of the event that entered the first Sequence or Parallel on its way: every hand-off after it keeps it,
so one id finds everything it caused."""
FLOW_EXTENSIONS = (SEQUENCE, STEP, PARALLEL, BRANCH, ROOT)
REPLAY = "ripplereplay"
"""The replay that re-delivered the event to one trigger (``ripple replay``, ``Trigger.spec.replay``)."""
TRACE_EXTENSIONS = (TRACEPARENT, TRACESTATE)
"""The distributed-tracing extension: kept from the producer, else started by the broker, and room is kept for
it, so that every event can carry one."""
BROKER_EXTENSIONS = (ARRIVAL_TIME, HOPS, FANOUT, REPLAY, *FLOW_EXTENSIONS, *TRACE_EXTENSIONS)
RESERVED_ATTRIBUTES = len(BROKER_EXTENSIONS) + len(ERROR_EXTENSIONS)
RESERVED_BYTES = 4 * 1024 + 128
"""Room kept within the attribute limits for what Ripple adds: the broker's extensions (about 35 bytes), a
Sequence's or Parallel's (two names and a root id, up to about 400), the trace context (55 bytes and a
``tracestate`` of up to 512) and a dead letter's context (the URL cut to 1,024 bytes, the trigger, 512 bytes of
answer as base64, a 256-byte reason), so that every event the broker accepted can still be delivered, and
dead-lettered, to a receiver that checks the same limits."""
_RIPPLE_NAMES = frozenset(BROKER_EXTENSIONS + ERROR_EXTENSIONS)
MAX_PRODUCER_ATTRIBUTES = MAX_ATTRIBUTES - RESERVED_ATTRIBUTES
MAX_PRODUCER_ATTRIBUTES_BYTES = MAX_ATTRIBUTES_BYTES - RESERVED_BYTES


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


def check_room(event: CloudEvent) -> None:
    """Raise :class:`EventError` unless the event leaves room for Ripple's own extensions."""
    attributes = event.attributes
    own = attributes if _RIPPLE_NAMES.isdisjoint(attributes) else {
        n: v for n, v in attributes.items() if n not in _RIPPLE_NAMES}
    if len(own) > MAX_PRODUCER_ATTRIBUTES:
        raise EventError(f"the event has {len(own)} attributes, over the limit of {MAX_PRODUCER_ATTRIBUTES} "
                         f"(of {MAX_ATTRIBUTES}, {RESERVED_ATTRIBUTES} are kept for Ripple's extensions)")
    texts = [attribute_text(v) for v in own.values()]
    if 4 * sum(map(len, texts)) <= MAX_PRODUCER_ATTRIBUTES_BYTES:
        return  # no character takes more than 4 bytes in UTF-8: within the limit without encoding anything
    size = sum(len(text.encode("utf-8", "surrogatepass")) for text in texts)
    if size > MAX_PRODUCER_ATTRIBUTES_BYTES:
        raise EventError(f"the attribute values total {size} bytes, over the limit of {MAX_PRODUCER_ATTRIBUTES_BYTES}"
                         f" (of {MAX_ATTRIBUTES_BYTES}, {RESERVED_BYTES} are kept for Ripple's extensions)")


def check_trace_context(event: CloudEvent) -> None:
    """Raise :class:`EventError` when the event's trace context is not one (W3C Trace Context, version 00)."""
    parent, state = event.get(TRACEPARENT), event.get(TRACESTATE)
    if parent is not None and not is_traceparent(parent):
        raise EventError(f"attribute '{TRACEPARENT}' must be a W3C trace context "
                         f"(00-<32 lowercase hex>-<16 lowercase hex>-<2 hex>, ids not all zero), got {parent!r:.80}")
    if state is not None and len(attribute_text(state).encode("utf-8", "surrogatepass")) > MAX_TRACESTATE:
        raise EventError(f"attribute '{TRACESTATE}' is over the limit of {MAX_TRACESTATE} bytes")


def in_trace(event: CloudEvent, traceparent: object, tracestate: object) -> CloudEvent:
    """``event`` in its cause's trace: its own context when it is in that trace already (a traced handler's
    reply), else the cause's (``traceparent``, ``tracestate``; ``None`` removes the event's)."""
    if same_trace(event.get(TRACEPARENT), traceparent):
        return event
    return event.with_attributes(**{TRACEPARENT: traceparent if isinstance(traceparent, str) else None,
                                    TRACESTATE: tracestate if isinstance(tracestate, str) else None})


def fanout_of(event: CloudEvent) -> int:
    """The event's fan-out budget: absent or not a whole number counts as the default, and nothing raises it
    above (a producer or subscriber controls the value, so it is read, never trusted)."""
    value = event.get(FANOUT)
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return DEFAULT_FANOUT
    return min(value, DEFAULT_FANOUT)


def stamp_arrival(event: CloudEvent, *, hops: int | None = None, arrival: str | None = None,
                  traceparent: str | None = None) -> CloudEvent:
    """The event as the broker stores it: arrival time set (``arrival``, or now), hops bounded by the default
    budget, ``traceparent`` set when it has none; raise :class:`EventError` when it has no hops left, its trace
    context is not one, or it leaves no room for Ripple's extensions."""
    check_room(event)
    check_trace_context(event)
    remaining = min(hops_of(event) if hops is None else hops, DEFAULT_HOPS)
    if remaining <= 0:
        raise EventError(f"attribute '{HOPS}' is {remaining}: the event has no hops left (a reply loop?)")
    changes: dict[str, AttributeValue] = {ARRIVAL_TIME: arrival or now_rfc3339(), HOPS: remaining}
    if traceparent is not None and event.get(TRACEPARENT) is None:
        changes[TRACEPARENT] = traceparent
    return event.with_attributes(**changes)


def age_seconds(event: CloudEvent) -> float | None:
    arrival = event.get(ARRIVAL_TIME)
    if not isinstance(arrival, str):
        return None
    try:
        return (datetime.now(UTC) - parse_rfc3339(arrival)).total_seconds()
    except (ValueError, TypeError):  # TypeError: a time without an offset, which only a bug could store
        return None
