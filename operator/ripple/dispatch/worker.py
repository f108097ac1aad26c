"""One trigger's delivery loop: fetch from its durable consumer, filter, deliver, settle.

The JetStream message is the unit of work and the buffer: it is acknowledged only after the event was delivered,
dead-lettered, or filtered out, so a crash at any point means redelivery, never loss. Retries are delayed NAKs,
so a waiting event holds no delivery slot.

Whatever goes wrong with one event (it cannot be decoded, its filter or encoding raises, its reply is invalid)
is a failed attempt of that event alone, settled by the same rules as a failed delivery, so it ends as a dead
letter and never blocks the events behind it. The fetch loop itself runs under a :class:`Supervisor`: when its
subscription breaks (a replaced NATS connection) it is started again on the store's current connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
import nats.errors
from nats.aio.msg import Msg

from ripple.api.models import Trigger
from ripple.dispatch.attempt import FILTERED_OUT, Attempt, FanoutCounter, Outcome
from ripple.dispatch.client import DeliveryResult
from ripple.dispatch.dead_letter import DeadLetterSink, dead_letter_event
from ripple.dispatch.hops import Hop
from ripple.dispatch.policy import Action, Decision, DeliveryPolicy, decide, parse_retry_after
from ripple.dispatch.reply import StampedReply, publish_reply
from ripple.dispatch.resolve import Resolver
from ripple.events.extensions import age_seconds, now_rfc3339
from ripple.events.model import CloudEvent
from ripple.filters import Filter
from ripple.logformat import fields, trace_id
from ripple.metrics import DELIVERIES, DELIVERY_SECONDS, FILTERED, REPLIES, child
from ripple.signing import DeliverySigner
from ripple.store import EventStore, StoreUnavailable, subjects
from ripple.store.consumers import ACK_WAIT
from ripple.store.fetching import Handlers, Slots, fetch_forever
from ripple.store.flows import root_of, store_hand_off
from ripple.store.jetstream import until_stored
from ripple.store.records import publish_record
from ripple.supervision import Supervisor
from ripple.tracing import TRACEPARENT, TRACESTATE, TraceSpan, span

__all__ = ["ACK_WAIT", "TriggerStats", "TriggerWorker"]

log = logging.getLogger(__name__)
delivery_log = logging.getLogger("ripple.delivery")

STORE_RETRY_DELAY = 1.0


@dataclass
class TriggerStats:
    in_flight: int = 0
    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    filtered: int = 0
    replies: int = 0
    replies_dropped: int = 0
    poison: int = 0
    """Events whose handling raised; each was settled as a failed attempt."""
    error_routed: int = 0
    """Events a Sequence step failed on that went to its onError hop instead of the dead letter."""
    ended: int = 0
    """Events a Sequence or Parallel hop delivered that ended there (2xx without a reply)."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class TriggerWorker:
    """Delivers one trigger's events; :meth:`start` and :meth:`stop` bracket its life."""

    def __init__(
        self,
        trigger: Trigger,
        store: EventStore,
        session: aiohttp.ClientSession,
        resolve: Resolver,
        *,
        ack_wait: float = ACK_WAIT,
        supervisor: Supervisor | None = None,
        fanout: FanoutCounter = lambda event: 1,
        hop: Hop | None = None,
        signer: DeliverySigner | None = None,
    ) -> None:
        self.trigger = trigger
        self.hop = hop
        self.store = store
        self.session = session
        self.resolve = resolve
        self.ack_wait = ack_wait
        self.supervisor = supervisor or Supervisor()
        self.fanout = fanout
        self.name = f"{trigger.namespace}/{trigger.name}"
        self.task_name = f"trigger {self.name}"
        self.policy = DeliveryPolicy.from_spec(trigger.spec.delivery)
        self.stats = TriggerStats()
        self.filter: Filter = trigger.spec.compiled_filter
        self.stream = subjects.stream_name(trigger.namespace, trigger.spec.broker)
        self.attempt = Attempt(trigger, store, session, resolve, self.policy, fanout, self.stats,
                               stamp=None if hop is None else hop.stamp, signer=signer)
        self.dead_letters = DeadLetterSink(store, session, resolve, trigger, timeout=self.policy.timeout,
                                           signer=signer)
        self._slots = Slots(self.policy.concurrency)
        self._handlers = Handlers(self._handle, self._slots)
        self._in_flight: dict[int, tuple[Msg, float]] = {}
        """id(msg) → the message and when JetStream last heard of it (fetched, or told it is in progress)."""
        self._filtered = child(FILTERED, self.name)
        self._latency = child(DELIVERY_SECONDS, self.name)
        self._keep_alive_name = f"{self.task_name} keep-alive"

    async def start(self) -> None:
        """Create the trigger's consumer (raising when its broker's stream is missing), then fetch from it."""
        await self._ensure_consumer()
        self.supervisor.start(self.task_name, self._fetch_loop, kind="trigger")
        self.supervisor.start(self._keep_alive_name, self._keep_alive, kind="trigger")

    async def _ensure_consumer(self) -> str:
        return await self.store.ensure_trigger_consumer(self.trigger, ack_wait=self.ack_wait)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop fetching, let in-flight deliveries finish for ``grace`` seconds, then abandon the rest.

        Abandoned messages are not acknowledged, so JetStream redelivers them.
        """
        await self.supervisor.stop(self.task_name)
        await self._handlers.stop(grace)
        await self.supervisor.stop(self._keep_alive_name)

    # --- flow: as many messages as there are free delivery slots, each in its own task -----------------------
    async def _fetch_loop(self) -> None:
        await fetch_forever(self.store, self.stream, self._ensure_consumer, self._handlers.take,
                            reserve=self._slots.reserve, release=self._slots.release)

    async def _handle(self, msg: Msg) -> None:
        self.stats.in_flight += 1
        self._in_flight[id(msg)] = (msg, time.monotonic())
        try:
            outcome = await self.attempt.run(msg)
            if outcome is FILTERED_OUT:
                self.stats.filtered += 1
                self._filtered.inc()
                await msg.ack()
            else:
                await self._settle(msg, outcome)
        except Exception:
            # Settling failed in a way no rule foresaw: leave the event to JetStream, which redelivers it until
            # the consumer's max_deliver, whose advisory the dispatcher turns into a dead letter.
            log.exception("trigger %s: could not settle message %s; it will be redelivered", self.name, msg.subject)
            with contextlib.suppress(Exception):
                await msg.nak(delay=STORE_RETRY_DELAY)
        finally:
            del self._in_flight[id(msg)]
            self.stats.in_flight -= 1

    async def _keep_alive(self) -> None:
        """Tell JetStream that every message in flight for a third of ``ack_wait`` is still being handled, so it
        is not redelivered meanwhile. One loop for all of them: a timer task per message cost more than the
        acknowledgement itself (profiled). Checking twice per period keeps the longest silence at half ack_wait."""
        period = self.ack_wait / 3
        while True:
            await asyncio.sleep(period / 2)
            due = time.monotonic() - period
            for key, (msg, heard) in list(self._in_flight.items()):
                if heard <= due and key in self._in_flight:
                    self._in_flight[key] = (msg, time.monotonic())
                    with contextlib.suppress(nats.errors.Error):
                        await msg.in_progress()

    # --- the settle table ----------------------------------------------------------------------------------
    async def _settle(self, msg: Msg, outcome: Outcome) -> None:
        event, result = outcome.event, outcome.result
        metadata = msg.metadata  # parsed from the reply subject on every read: read once
        attempt, sequence = metadata.num_delivered or 1, metadata.sequence.stream
        decision = self._decide(outcome, attempt)
        self._record(event, result, attempt, decision)
        if decision.action is Action.RETRY:
            self.stats.retried += 1
            await msg.nak(delay=decision.delay)
            await self._keep_record(sequence, event, result, attempt, "retry")
            return
        if decision.action is Action.ACK:
            if self.hop is None:
                await until_stored(lambda: self._store_reply(event, outcome.reply), msg.in_progress)
            else:
                await until_stored(lambda: self._hand_off(event, outcome.reply, sequence), msg.in_progress)
            self.stats.delivered += 1
        elif self.hop is not None and self.hop.error_hop is not None:
            error_hop, reason = self.hop.error_hop, outcome.reason or decision.reason
            letter = dead_letter_event(event, result, destination=outcome.url, trigger=self.name, reason=reason)
            await until_stored(lambda: self._store_hop_input(error_hop, letter, sequence), msg.in_progress)
            self.stats.error_routed += 1
        else:
            reason = outcome.reason or decision.reason
            with self._span("dead letter", event) as trace:
                trace.set(reason=reason[:200])
                await until_stored(
                    lambda: self.dead_letters.keep(event, result, url=outcome.url, sequence=sequence, reason=reason),
                    msg.in_progress,
                )
            self.stats.dead_lettered += 1
        await msg.ack()
        reply = outcome.reply.event if decision.action is Action.ACK and outcome.reply is not None else None
        await self._keep_record(sequence, event, result, attempt, self._outcome_words(decision, outcome), reply)

    def _decide(self, outcome: Outcome, attempt: int) -> Decision:
        if outcome.stage == "decode":  # no rule can make an unreadable message deliverable: keep it at once
            return Decision(Action.DEAD_LETTER, reason=outcome.reason)
        return decide(
            self.policy,
            status=outcome.result.status,
            attempt=attempt,
            retry_after=parse_retry_after(outcome.result.headers.get("Retry-After")),
            event_age=age_seconds(outcome.event),
        )

    def _span(self, name: str, event: CloudEvent) -> AbstractContextManager[TraceSpan]:
        parent, state = event.get(TRACEPARENT), event.get(TRACESTATE)
        return span(f"{name} {self.name}", parent=parent if isinstance(parent, str) else None,
                    tracestate=state if isinstance(state, str) else None, kind="producer",
                    attributes={"trigger": self.name, "event_id": event.id})

    def _fields(self, event: CloudEvent, **more: Any) -> dict[str, Any]:
        """``extra=`` for a log line about ``event`` on this trigger (``--log-format json``)."""
        return fields(namespace=self.trigger.namespace, broker=self.trigger.spec.broker, trigger=self.trigger.name,
                      event_id=event.id, trace_id=trace_id(event.get("traceparent")), **more)

    def _record(self, event: CloudEvent, result: DeliveryResult, attempt: int, decision: Decision) -> None:
        child(DELIVERIES, self.name, decision.action.value).inc()
        self._latency.observe(result.latency)
        level = logging.DEBUG if decision.action is Action.ACK and 200 <= result.status < 300 else logging.INFO
        if not delivery_log.isEnabledFor(level):
            return
        error = result.error[:200] if result.error else None
        delivery_log.log(
            level,
            "%s id=%s status=%s attempt=%d latency=%.1fms %s%s",
            self.name,
            event.id,
            result.status or "error",
            attempt,
            result.latency * 1000,
            decision.action.value,
            f" ({error})" if error else "",
            extra=self._fields(event, attempt=attempt, outcome=decision.action.value, status=result.status or None,
                               latency_ms=round(result.latency * 1000, 1), error=error),
        )

    async def _store_reply(self, event: CloudEvent, stamped: StampedReply | None) -> bool:
        """Store the reply, if there is one; ``False`` only when storing it failed (the delivery is retried)."""
        if stamped is None:
            return True
        with self._span("reply store", stamped.event or event) as trace:
            outcome = await publish_reply(self.store, self.trigger, stamped)
            trace.set(outcome=outcome, reply_id=stamped.event.id if stamped.event else None)
        if outcome == "failed":
            log.warning("trigger %s: could not store the reply to %s, will retry", self.name, event.id,
                        extra=self._fields(event, outcome="reply-not-stored"))
            return False
        child(REPLIES, self.name, outcome).inc()
        if outcome == "stored":
            self.stats.replies += 1
        else:
            self.stats.replies_dropped += 1
            log.warning("trigger %s: dropped a reply to %s: %s (reply loop guard)", self.name, event.id, outcome)
        return True

    # --- Sequence and Parallel hops ---------------------------------------------------------------------------
    async def _hand_off(self, event: CloudEvent, stamped: StampedReply | None, sequence: int) -> bool:
        """Store what a hop hands on: its reply as the next hop's input, or back in the broker; ``False`` only
        when storing failed (the delivery is retried, and the hand-off's message id stores it once)."""
        assert self.hop is not None
        if stamped is None or stamped.event is None:
            if stamped is not None:
                self.stats.replies_dropped += 1
                log.warning("%s: dropped a reply to %s: %s budget spent", self.name, event.id, stamped.dropped)
            elif self.hop.next_hop is not None or self.hop.to_broker:
                self.stats.ended += 1
            return True
        if self.hop.next_hop is not None:
            stored = await self._store_hop_input(self.hop.next_hop, stamped.event, sequence, stamped.stored)
        else:
            stored = await self._store_reply(event, stamped)
        if stored and self.hop.next_hop is not None:
            self.stats.replies += 1
        return stored

    async def _store_hop_input(self, hop: str, event: CloudEvent, cause: int, stored: bytes | None = None) -> bool:
        payload = event.to_json_bytes() if stored is None else stored
        try:
            await store_hand_off(self.store, self.trigger.namespace, self.trigger.spec.broker, hop, payload,
                                 f"{self.stream}:{cause}")
        except StoreUnavailable as exc:
            log.warning("%s: could not hand %s on to %s yet: %s", self.name, event.id, hop, exc,
                        extra=self._fields(event, outcome="hand-off-not-stored", error=str(exc)[:200]))
            return False
        return True

    def _outcome_words(self, decision: Decision, outcome: Outcome) -> str:
        """What became of the event, in the words its history shows."""
        if decision.action is Action.DEAD_LETTER:
            if self.hop is None:
                return "dead-lettered"
            return "failed: to onError" if self.hop.error_hop is not None else "failed: dead-lettered"
        if outcome.reply is not None and outcome.reply.event is None:
            return f"reply dropped ({outcome.reply.dropped} budget spent)"
        if self.hop is None:
            return "delivered" if outcome.reply is None else "delivered, replied"
        if outcome.reply is None:
            return "delivered" if self.hop.next_hop is None and not self.hop.to_broker else "ended (no reply)"
        return f"to {self.hop.next_label}"

    async def _keep_record(self, sequence: int, event: CloudEvent, result: DeliveryResult, attempt: int,
                           what: str, reply: CloudEvent | None = None) -> None:
        """One line of the event's history (``ripple events show``), sent without waiting for it to be stored."""
        record: dict[str, Any] = {
            "time": now_rfc3339(), "trigger": self.name,
            "broker": f"{self.trigger.namespace}/{self.trigger.spec.broker}", "stream": self.stream,
            "seq": sequence, "id": event.id, "type": event.type,
            "source": event.source, "attempt": attempt, "status": result.status, "outcome": what,
            "latencyMs": round(result.latency * 1000, 2), "error": result.error[:200] or None,
            "traceId": trace_id(event.get(TRACEPARENT)),
        }
        if reply is not None:
            record["reply"] = {"id": reply.id, "type": reply.type}
        hop = self.hop
        if hop is not None:
            record.update({"flow": f"{hop.flow_kind} {hop.flow_key}", "hop": hop.name, "role": hop.role,
                           "step": hop.label, "index": hop.index})
        await publish_record(self.store, root_of(event), record)

    async def dead_letter(
        self, event: CloudEvent, result: DeliveryResult, url: str, sequence: int, *, reason: str = ""
    ) -> bool:
        """Keep an event this trigger could not deliver; ``False`` only when nothing took it."""
        return await self.dead_letters.keep(event, result, url=url, sequence=sequence, reason=reason)
