"""Replies: the event a subscriber answers a delivery with, stored in the trigger's broker before the original
is acknowledged.

A reply is read with the same codec, and so checked against the same rules and limits, as an event a producer
posts to the ingress. An answer that claims to be an event but breaks a rule is the subscriber failing (502):
retried and dead-lettered like any other failed attempt, never stored and never a crash of the dispatcher.

Two budgets stop reply loops. ``ripplehops`` bounds depth: a reply gets one hop less than its parent. The
fan-out budget (``ripplefanout``) bounds breadth: the parent's budget, less one, is split between the replies
of every trigger the parent matched, so the whole tree of replies under one root event stays within about that
many events, where two triggers that answer each event with its own type would otherwise double it at each hop.
"""

from __future__ import annotations

from dataclasses import dataclass

from ripple.api.models import Trigger
from ripple.dispatch.client import MAX_RESPONSE_BODY, DeliveryResult
from ripple.events.extensions import FANOUT, fanout_of, hops_of, stamp_arrival
from ripple.events.http import UnsupportedFormat, decode_message
from ripple.events.model import CloudEvent, EventError
from ripple.store import EventStore, StoreUnavailable

INVALID_REPLY_STATUS = 502
"""The status a delivery is settled with when its answer is not a valid CloudEvent: a bad gateway answer."""


class InvalidReply(Exception):
    """The subscriber answered with something that claims to be a CloudEvent but breaks a rule."""


def read_reply(result: DeliveryResult) -> CloudEvent | None:
    """The event a ``200`` answer carries, ``None`` when it carries none; :class:`InvalidReply` when it is bad."""
    if result.status != 200:
        return None
    if result.oversized:
        raise InvalidReply(f"the answer's body is over {MAX_RESPONSE_BODY} bytes, the largest reply Ripple reads")
    try:
        return decode_message(result.headers, result.body)
    except (EventError, UnsupportedFormat) as exc:
        raise InvalidReply(str(exc)) from None


@dataclass(frozen=True)
class StampedReply:
    event: CloudEvent | None
    """The reply as the broker stores it, or ``None`` when a budget is spent."""
    dropped: str = ""
    """Which budget stopped it: ``hops`` or ``fanout``."""
    stored: bytes | None = None
    """The event's stored form, once it was encoded to check its size (so that it is encoded once)."""


def stamp_reply(parent: CloudEvent, reply: CloudEvent, *, siblings: int) -> StampedReply:
    """Give ``reply`` its share of ``parent``'s budgets; ``siblings`` is how many triggers ``parent`` matched.

    Raise :class:`InvalidReply` when the reply leaves no room for the extensions the broker adds."""
    try:
        remaining = hops_of(parent) - 1
    except EventError:
        remaining = 0
    if remaining <= 0:
        return StampedReply(None, "hops")
    budget, siblings = fanout_of(parent), max(1, siblings)
    if budget < siblings:
        return StampedReply(None, "fanout")
    share = min(fanout_of(reply), (budget - siblings) // siblings)
    try:
        stamped = stamp_arrival(reply, hops=remaining)
    except EventError as exc:
        raise InvalidReply(str(exc)) from None
    return StampedReply(stamped.with_attributes(**{FANOUT: share}))


async def publish_reply(store: EventStore, trigger: Trigger, stamped: StampedReply) -> str:
    """Store a stamped reply in the trigger's broker. The outcome: ``stored``, ``dropped-hops`` or
    ``dropped-fanout`` (a budget was spent; nothing to store), or ``failed`` (JetStream did not store it)."""
    if stamped.event is None:
        return f"dropped-{stamped.dropped}"
    try:
        await store.publish_event(trigger.namespace, trigger.spec.broker, stamped.event, stored=stamped.stored)
    except StoreUnavailable:
        return "failed"
    return "stored"


__all__ = [
    "INVALID_REPLY_STATUS",
    "InvalidReply",
    "StampedReply",
    "fanout_of",
    "publish_reply",
    "read_reply",
    "stamp_reply",
]
