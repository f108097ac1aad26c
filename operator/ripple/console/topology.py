"""How the flow page names what it draws: a trigger's subscriber as a graph node, a filter in a few words."""

from __future__ import annotations

from ripple.api.models import Destination, Trigger

__all__ = ["subscriber_node", "trigger_filter"]


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
