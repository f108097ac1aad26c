"""The JetStream consumers Ripple reads through, built in one place for the dispatcher and the operator alike
(both write a trigger's consumer, so both must write the same one)."""

from __future__ import annotations

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from ripple.api.models import Trigger
from ripple.store import subjects

__all__ = [
    "ACK_WAIT",
    "MAX_DELIVER_SLACK",
    "ROUTER_ATTEMPTS",
    "ROUTER_MAX_DELIVER",
    "ROUTER_MAX_PENDING",
    "backstop_consumer_config",
    "hop_consumer_config",
    "router_consumer_config",
    "trigger_consumer_config",
]

ACK_WAIT = 10.0
"""How long JetStream waits for an unacknowledged message before redelivering it (kept alive while in flight)."""
MAX_DELIVER_SLACK = 10
"""Deliveries a consumer allows beyond its trigger's attempts (redeliveries after a crashed dispatcher) before
JetStream stops and advises; the dispatcher turns that advisory into a dead letter, so it is a backstop for an
event that kills whoever handles it, never a way to drop one."""
ROUTER_ATTEMPTS = 3
"""Tries at routing one event before it is dead-lettered: a fault that is the event's own does not go away."""
ROUTER_MAX_DELIVER = ROUTER_ATTEMPTS + MAX_DELIVER_SLACK
ROUTER_MAX_PENDING = 10_000


def trigger_consumer_config(trigger: Trigger, *, ack_wait: float = ACK_WAIT) -> ConsumerConfig:
    """The trigger's durable pull consumer.

    It reads the trigger's pinned types straight from the log, else what the router copies to it, plus what is
    redriven to it alone; a new trigger sees events stored from now on, as a Knative trigger does.
    """
    namespace, broker, name = trigger.namespace, trigger.spec.broker, trigger.name
    delivery = trigger.spec.delivery
    return ConsumerConfig(
        durable_name=subjects.consumer_name(name),
        description=f"Ripple trigger {namespace}/{name}",
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=delivery.retry + 1 + MAX_DELIVER_SLACK,
        max_ack_pending=max(1000, delivery.concurrency * 4),
        filter_subjects=subjects.trigger_subjects(namespace, broker, name, trigger.spec.compiled_filter.pinned_types()),
    )


def backstop_consumer_config() -> ConsumerConfig:
    """The dispatchers' consumer of the max-deliveries advisories: each advisory read once by one of them, kept
    until it was handled (no ``max_deliver``: the backstop itself never gives up)."""
    return ConsumerConfig(
        durable_name=subjects.BACKSTOP_CONSUMER,
        description="Ripple dispatchers: messages JetStream gave up on, to keep as dead letters",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=60.0,
        max_deliver=-1,
    )


def router_consumer_config(namespace: str, broker: str, *, ack_wait: float = ACK_WAIT) -> ConsumerConfig:
    """The broker's router consumer: every event once, for the triggers the log cannot select by type."""
    return ConsumerConfig(
        durable_name=subjects.ROUTER_CONSUMER,
        description=f"Ripple router of broker {namespace}/{broker}",
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=ROUTER_MAX_DELIVER,
        max_ack_pending=ROUTER_MAX_PENDING,
        filter_subject=subjects.all_events_subject(namespace, broker),
    )


def hop_consumer_config(namespace: str, broker: str, hop: str, *, ack_wait: float = ACK_WAIT) -> ConsumerConfig:
    """The consumer of a Parallel's entry hop, read by its router as a broker's router reads the log."""
    return ConsumerConfig(
        durable_name=subjects.consumer_name(hop),
        description=f"Ripple router of {namespace}/{hop}",
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=ROUTER_MAX_DELIVER,
        max_ack_pending=ROUTER_MAX_PENDING,
        filter_subjects=[subjects.hop_subject(namespace, broker, hop),
                         subjects.redrive_subject(namespace, broker, hop)],
    )
