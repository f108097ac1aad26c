"""One attempt at one event: decode the stored message, filter, deliver, read and stamp the reply.

Whatever raises on the way is caught here and turned into the outcome of a failed attempt naming the stage, so
the worker's settle table treats a poison event exactly like a subscriber that failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import aiohttp
from nats.aio.msg import Msg

from ripple.api.models import Trigger
from ripple.dispatch.client import DeliveryResult, authorization, deliver
from ripple.dispatch.dead_letter import undecodable_event
from ripple.dispatch.policy import CONNECTION_ERROR, DeliveryPolicy
from ripple.dispatch.reply import (
    INVALID_REPLY_STATUS,
    InvalidReply,
    StampedReply,
    read_reply,
    stamp_reply,
)
from ripple.dispatch.resolve import Resolver, Unresolvable
from ripple.events.extensions import in_trace
from ripple.events.model import CloudEvent
from ripple.metrics import POISON_EVENTS
from ripple.signing import DeliverySigner
from ripple.store import EventStore, EventTooLarge, subjects
from ripple.tracing import TRACEPARENT, TRACESTATE, span
from ripple.tracing import enabled as tracing_enabled

__all__ = ["FILTERED_OUT", "REPLICA_TRIES", "Attempt", "AttemptStats", "FanoutCounter", "Outcome", "Stamp"]

log = logging.getLogger(__name__)
REPLICA_TRIES = 3
FanoutCounter = Callable[[CloudEvent], int]
"""How many triggers of the broker an event matched: the replies to it share its fan-out budget."""
Stamp = Callable[[CloudEvent, CloudEvent], StampedReply | None]
"""(parent, reply) → the reply as it will be stored, ``None`` when nothing takes it; may raise InvalidReply."""


@dataclass
class Outcome:
    """What one attempt came to, ready to be settled."""

    event: CloudEvent
    result: DeliveryResult
    url: str = ""
    reply: StampedReply | None = None
    stage: str = ""
    """Set when handling raised: where (decode, filter, delivery, reply); the settle rules see a failure."""
    reason: str = ""


FILTERED_OUT = Outcome(CloudEvent({}), DeliveryResult(0), stage="filtered")
"""The outcome of an event the trigger's filter does not match: acknowledged, nothing else."""


class AttemptStats(Protocol):
    poison: int
    """Events whose handling raised; each was settled as a failed attempt."""


class Attempt:
    """How one trigger attempts an event; :meth:`run` never raises for anything the event or its subscriber did."""

    def __init__(self, trigger: Trigger, store: EventStore, session: aiohttp.ClientSession, resolve: Resolver,
                 policy: DeliveryPolicy, fanout: FanoutCounter, stats: AttemptStats,
                 stamp: Stamp | None = None, signer: DeliverySigner | None = None) -> None:
        self.trigger = trigger
        self.signer = signer
        self.stamp: Stamp = stamp or (lambda parent, reply: stamp_reply(parent, reply, siblings=fanout(parent)))
        self.store = store
        self.session = session
        self.resolve = resolve
        self.policy = policy
        self.fanout = fanout
        self.name = f"{trigger.namespace}/{trigger.name}"
        self.filter = trigger.spec.compiled_filter
        self.routed_subject = subjects.routed_subject(trigger.namespace, trigger.spec.broker, trigger.name)
        # Events read from the log on a type-pinned trigger's own subjects already passed a filter that asks
        # nothing else; redriven ones (.r.) and routed ones are the other cases.
        self.log_prefix = subjects.all_events_subject(trigger.namespace, trigger.spec.broker)[:-1]
        self.subjects_decide = self.filter.decided_by_type()
        self.stats = stats

    async def run(self, msg: Msg) -> Outcome:
        """Decode, filter and deliver one message; :data:`FILTERED_OUT` when its event is not for this trigger."""
        stage, event = "decode", None
        try:
            event = CloudEvent.from_json_bytes(msg.data)
            # The router matched what it copied to this trigger; events read from the log are tested here.
            stage = "filter"
            if not self._passes(msg.subject, event):
                return FILTERED_OUT
            stage = "delivery"
            parent, state = event.get(TRACEPARENT), event.get(TRACESTATE)
            with span(f"deliver {self.name}", parent=parent if isinstance(parent, str) else None,
                      tracestate=state if isinstance(state, str) else None, kind="client",
                      attributes={"trigger": self.name, "event_id": event.id, "event_type": event.type,
                                  "attempt": (msg.metadata.num_delivered or 1) if tracing_enabled() else None}
                      ) as trace:
                url, result = await self._deliver(event, trace.traceparent)
                trace.set(status=result.status, error=result.error[:200] or None)
                if not 200 <= result.status < 300:
                    trace.fail(result.error or f"answered {result.status}")
            stage = "reply"
            try:
                reply = read_reply(result)
                if reply is not None:
                    reply = in_trace(reply, trace.traceparent, trace.tracestate)
                stamped = None if reply is None else self.stamp(event, reply)
                if stamped is not None and stamped.event is not None:
                    stamped = replace(stamped, stored=self._stored_form(stamped.event))
            except InvalidReply as exc:
                failed = DeliveryResult(INVALID_REPLY_STATUS, result.body, result.headers, latency=result.latency,
                                        error=f"invalid reply: {exc}")
                return Outcome(event, failed, url, reason=failed.error)
            return Outcome(event, result, url, stamped)
        except Exception as exc:
            return self._poisoned(msg, event, stage, exc)

    def _passes(self, subject: str, event: CloudEvent) -> bool:
        if subject == self.routed_subject or (self.subjects_decide and subject.startswith(self.log_prefix)):
            return True
        return self.filter.matches(event.as_mapping())

    def _stored_form(self, reply: CloudEvent) -> bytes:
        """The reply as the store keeps it; :class:`InvalidReply` when it is too large to keep."""
        stored = reply.to_json_bytes()
        try:
            self.store.check_size(stored)
        except EventTooLarge as exc:
            raise InvalidReply(str(exc)) from None
        return stored

    def _poisoned(self, msg: Msg, event: CloudEvent | None, stage: str, exc: Exception) -> Outcome:
        """The outcome of an event whose handling raised: a failed attempt (status 0) naming the cause."""
        reason = f"{stage} failed: {type(exc).__name__}: {exc}"
        first = (msg.metadata.num_delivered or 1) == 1
        self.stats.poison += 1
        POISON_EVENTS.labels(stage).inc()
        log.error("trigger %s: %s (message %s)", self.name, reason[:500], msg.subject, exc_info=first)
        if event is None:
            namespace, broker = self.trigger.namespace, self.trigger.spec.broker
            event = undecodable_event(msg.data, namespace=namespace, broker=broker,
                                      sequence=msg.metadata.sequence.stream)
        return Outcome(event, DeliveryResult(CONNECTION_ERROR, error=reason), stage=stage, reason=reason)

    async def _deliver(self, event: CloudEvent, traceparent: str) -> tuple[str, DeliveryResult]:
        """One delivery attempt. A Function replica that refuses the connection (it is stopping) is not the
        subscriber failing: the event goes to the next ready replica, or wakes the function, at once."""
        subscriber = self.trigger.spec.subscriber
        url = ""
        result = DeliveryResult(CONNECTION_ERROR, error="no attempt made")
        for _ in range(REPLICA_TRIES if subscriber.ref is not None else 1):
            try:
                url = await self.resolve(subscriber, self.trigger.namespace)
            except Unresolvable as exc:
                return "", DeliveryResult(CONNECTION_ERROR, error=f"subscriber not resolvable: {exc}")
            result = await deliver(self.session, url, event, timeout=self.policy.timeout,
                                   structured=self.policy.structured, traceparent=traceparent,
                                   authorization=authorization(self.signer, subscriber, self.trigger.namespace,
                                                               self.trigger.name))
            if not result.refused:
                break
        return url, result
