"""How the flow page names what it draws (a trigger's subscriber as a graph node, a filter in a few words) and
what every source of its figures counts alike (a broker's stored events and dead letters)."""

from __future__ import annotations

import contextlib
from typing import Any

import nats.errors
import nats.js.errors

from ripple.api.models import Destination, Trigger
from ripple.store import EventStore, subjects

__all__ = ["broker_counts", "subscriber_node", "trigger_filter", "trigger_node"]


def subscriber_node(subscriber: Destination, namespace: str) -> str:
    """The graph node a trigger delivers to: ``Function ns/name``, ``Sequence ns/name``, or the URI."""
    if subscriber.ref is None:
        return str(subscriber.uri)
    return f"{subscriber.ref.kind} {subscriber.ref.namespace or namespace}/{subscriber.ref.name}"


def trigger_filter(trigger: Trigger) -> str:
    spec = trigger.spec
    if spec.filters:
        return f"{len(spec.filters)} filter expression(s)"
    if spec.filter is not None and spec.filter.attributes:
        return ", ".join(f"{k}={v}" for k, v in sorted(spec.filter.attributes.items()))
    return "every event"


async def broker_counts(store: EventStore, namespace: str, broker: str) -> dict[str, int | None]:
    """The broker's stored events and dead letters (``None`` for a stream that cannot be read now)."""
    counts: dict[str, int | None] = {"stored": None, "deadLetters": None}
    for key, stream in (("stored", subjects.stream_name(namespace, broker)),
                        ("deadLetters", subjects.dead_letter_stream_name(namespace, broker))):
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, TimeoutError):
            counts[key] = int((await store.js.stream_info(stream)).state.messages)
    return counts


def trigger_node(trigger: Trigger, counts: dict[str, Any]) -> dict[str, Any]:
    """A trigger as the page draws it: its edges (broker, subscriber, dead-letter sink), filter and counts."""
    namespace, spec = trigger.namespace, trigger.spec
    dead_letter = spec.delivery.dead_letter_sink
    return {
        "id": f"{namespace}/{trigger.name}", "broker": f"{namespace}/{spec.broker}",
        "subscriber": subscriber_node(spec.subscriber, namespace), "filter": trigger_filter(trigger),
        "deadLetterSink": None if dead_letter is None else subscriber_node(dead_letter, namespace), **counts,
    }
