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
from collections.abc import Callable
from dataclasses import asdict, dataclass

import aiohttp
import nats.errors
from nats.aio.msg import Msg

from ripple.api.durations import seconds
from ripple.api.models import Trigger
from ripple.dispatch.client import DeliveryResult, deliver
from ripple.dispatch.dead_letter import dead_letter_event, undecodable_event
from ripple.dispatch.policy import CONNECTION_ERROR, Action, Decision, decide, is_success, parse_retry_after
from ripple.dispatch.reply import INVALID_REPLY_STATUS, InvalidReply, StampedReply, read_reply, stamp_reply
from ripple.dispatch.resolve import Resolver, Unresolvable
from ripple.events.extensions import age_seconds
from ripple.events.model import CloudEvent
from ripple.filters import Filter, from_trigger_spec
from ripple.metrics import DELIVERIES, DELIVERY_SECONDS, FILTERED, POISON_EVENTS, REPLIES
from ripple.store import EventStore, StoreUnavailable, subjects
from ripple.supervision import Supervisor

log = logging.getLogger(__name__)
delivery_log = logging.getLogger("ripple.delivery")

ACK_WAIT = 10.0
"""How long JetStream waits for an unacknowledged message before redelivering it (kept alive while in flight)."""
STORE_RETRY_DELAY = 1.0
REPLICA_TRIES = 3
FETCH_WAIT = 1.0
"""Seconds one pull waits for messages before the loop asks again."""


FanoutCounter = Callable[[CloudEvent], int]
"""How many triggers of the broker an event matched: the replies to it share its fan-out budget."""


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

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


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
    ) -> None:
        self.trigger = trigger
        self.store = store
        self.session = session
        self.resolve = resolve
        self.ack_wait = ack_wait
        self.supervisor = supervisor or Supervisor()
        self.fanout = fanout
        self.name = f"{trigger.namespace}/{trigger.name}"
        self.task_name = f"trigger {self.name}"
        self.delivery = trigger.spec.delivery
        self.filter: Filter = from_trigger_spec(trigger.spec.model_dump(by_alias=True, exclude_none=True))
        self.stream = subjects.stream_name(trigger.namespace, trigger.spec.broker)
        self.routed_subject = subjects.routed_subject(trigger.namespace, trigger.spec.broker, trigger.name)
        self.stats = TriggerStats()
        self._slots = asyncio.Semaphore(self.delivery.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Create the trigger's consumer (raising when its broker's stream is missing), then fetch from it."""
        await self._ensure_consumer()
        self.supervisor.start(self.task_name, self._fetch_loop, kind="trigger")

    async def _ensure_consumer(self) -> str:
        return await self.store.ensure_trigger_consumer(
            self.trigger.namespace,
            self.trigger.spec.broker,
            self.trigger.name,
            types=self.filter.pinned_types(),
            ack_wait=self.ack_wait,
            max_ack_pending=max(1000, self.delivery.concurrency * 4),
            retry=self.delivery.retry,
        )

    async def stop(self, grace: float = 5.0) -> None:
        """Stop fetching, let in-flight deliveries finish for ``grace`` seconds, then abandon the rest.

        Abandoned messages are not acknowledged, so JetStream redelivers them.
        """
        await self.supervisor.stop(self.task_name)
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _fetch_loop(self) -> None:
        """Pull as many messages as there are free delivery slots; each runs in its own task."""
        # Each (re)start binds afresh: after a failure the consumer may be gone or the connection replaced.
        consumer = await self._ensure_consumer()
        subscription = await self.store.js.pull_subscribe_bind(consumer, self.stream)
        try:
            while True:
                free = await self._reserve_slots()
                try:
                    messages = await subscription.fetch(batch=free, timeout=FETCH_WAIT)
                except (TimeoutError, nats.errors.TimeoutError):
                    messages = []
                except BaseException:
                    self._release(free)
                    raise
                self._release(free - len(messages))
                for msg in messages:
                    task = asyncio.create_task(self._handle(msg))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()

    async def _reserve_slots(self) -> int:
        await self._slots.acquire()
        free = 1
        while not self._slots.locked() and free < self.delivery.concurrency:
            await self._slots.acquire()  # does not wait: a slot is free
            free += 1
        return free

    def _release(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    async def _handle(self, msg: Msg) -> None:
        self.stats.in_flight += 1
        keepalive = asyncio.create_task(self._keep_alive(msg))
        try:
            outcome = await self._process(msg)
            if outcome is not None:
                await self._settle(msg, outcome)
        except Exception:
            # Settling failed in a way no rule foresaw: leave the event to JetStream, which redelivers it until
            # the consumer's max_deliver, whose advisory the dispatcher turns into a dead letter.
            log.exception("trigger %s: could not settle message %s; it will be redelivered", self.name, msg.subject)
            with contextlib.suppress(Exception):
                await msg.nak(delay=STORE_RETRY_DELAY)
        finally:
            keepalive.cancel()
            self.stats.in_flight -= 1
            self._slots.release()

    async def _keep_alive(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            with contextlib.suppress(nats.errors.Error):
                await msg.in_progress()

    async def _process(self, msg: Msg) -> Outcome | None:
        """Decode, filter and deliver one message; ``None`` when it is settled already (filtered out)."""
        stage, event = "decode", None
        try:
            event = CloudEvent.from_json_bytes(msg.data)
            # The router matched what it copied to this trigger; events read from the log are tested here.
            stage = "filter"
            if msg.subject != self.routed_subject and not self.filter.matches(event.as_mapping()):
                self.stats.filtered += 1
                FILTERED.labels(self.name).inc()
                await msg.ack()
                return None
            stage = "delivery"
            url, result = await self._attempt(event)
            stage = "reply"
            try:
                reply = read_reply(result)
                stamped = None if reply is None else stamp_reply(event, reply, siblings=self.fanout(event))
            except InvalidReply as exc:
                failed = DeliveryResult(INVALID_REPLY_STATUS, result.body, result.headers, latency=result.latency,
                                        error=f"invalid reply: {exc}")
                return Outcome(event, failed, url, reason=failed.error)
            return Outcome(event, result, url, stamped)
        except Exception as exc:
            return self._poisoned(msg, event, stage, exc)

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

    async def _settle(self, msg: Msg, outcome: Outcome) -> None:
        event, result = outcome.event, outcome.result
        attempt = msg.metadata.num_delivered or 1
        if outcome.stage == "decode":  # no rule can make an unreadable message deliverable: keep it at once
            decision = Decision(Action.DEAD_LETTER, reason=outcome.reason)
        else:
            decision = decide(
                self.delivery,
                status=result.status,
                attempt=attempt,
                retry_after=parse_retry_after(result.headers.get("Retry-After")),
                event_age=age_seconds(event),
            )
        DELIVERIES.labels(self.name, decision.action.value).inc()
        DELIVERY_SECONDS.labels(self.name).observe(result.latency)
        delivery_log.info(
            "%s id=%s status=%s attempt=%d latency=%.1fms %s%s",
            self.name,
            event.id,
            result.status or "error",
            attempt,
            result.latency * 1000,
            decision.action.value,
            f" ({result.error[:200]})" if result.error else "",
        )
        if decision.action is Action.ACK:
            if await self._publish_reply(event, outcome.reply):
                self.stats.delivered += 1
                await msg.ack()
            else:
                await msg.nak(delay=max(decision.delay, STORE_RETRY_DELAY))
        elif decision.action is Action.RETRY:
            self.stats.retried += 1
            await msg.nak(delay=decision.delay)
        elif await self.dead_letter(event, result, outcome.url, msg.metadata.sequence.stream,
                                    reason=outcome.reason or decision.reason):
            self.stats.dead_lettered += 1
            await msg.ack()
        else:
            await msg.nak(delay=STORE_RETRY_DELAY)

    async def _attempt(self, event: CloudEvent) -> tuple[str, DeliveryResult]:
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
            result = await deliver(
                self.session,
                url,
                event,
                timeout=seconds(self.delivery.timeout),
                structured=self.delivery.format == "json",
            )
            if not result.refused:
                break
        return url, result

    async def _publish_reply(self, event: CloudEvent, stamped: StampedReply | None) -> bool:
        """Store the reply, if there is one; ``False`` only when storing it failed."""
        if stamped is None:
            return True
        if stamped.event is None:
            self.stats.replies_dropped += 1
            REPLIES.labels(self.name, f"dropped-{stamped.dropped}").inc()
            log.warning("trigger %s: dropped a reply to %s: no %s budget left (reply loop guard)",
                        self.name, event.id, stamped.dropped)
            return True
        try:
            await self.store.publish_event(self.trigger.namespace, self.trigger.spec.broker, stamped.event)
        except StoreUnavailable as exc:
            log.warning("trigger %s: could not store reply to %s, will retry: %s", self.name, event.id, exc)
            return False
        self.stats.replies += 1
        REPLIES.labels(self.name, "stored").inc()
        return True

    async def dead_letter(
        self, event: CloudEvent, result: DeliveryResult, url: str, sequence: int, *, reason: str = ""
    ) -> bool:
        """Send to the sink, else keep in the dead-letter stream; ``False`` only when both failed."""
        letter = dead_letter_event(event, result, destination=url, trigger=self.name, reason=reason)
        sink = self.delivery.dead_letter_sink
        if sink is not None:
            try:
                sink_url = await self.resolve(sink, self.trigger.namespace)
                sent = await deliver(self.session, sink_url, letter, timeout=seconds(self.delivery.timeout))
                if is_success(sent.status):
                    return True
                log.warning("trigger %s: dead-letter sink answered %s; using the dead-letter stream", self.name,
                            sent.status or sent.error)
            except Unresolvable as exc:
                log.warning("trigger %s: dead-letter sink not resolvable (%s); using the stream", self.name, exc)
        try:
            await self.store.store_dead_letter(
                self.trigger.namespace,
                self.trigger.spec.broker,
                self.trigger.name,
                letter,
                delivery_id=str(sequence),
            )
        except StoreUnavailable as exc:
            log.warning("trigger %s: could not store dead letter %s, will retry: %s", self.name, event.id, exc)
            return False
        return True
