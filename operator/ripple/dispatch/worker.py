"""One trigger's delivery loop: fetch from its durable consumer, filter, deliver, settle.

The JetStream message is the unit of work and the buffer: it is acknowledged only after the event was delivered,
dead-lettered, or filtered out, so a crash at any point means redelivery, never loss. Retries are delayed NAKs,
so a waiting event holds no delivery slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import aiohttp
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from ripple.api.durations import seconds
from ripple.api.models import Destination, Trigger
from ripple.dispatch.client import DeliveryResult, deliver
from ripple.dispatch.dead_letter import dead_letter_event
from ripple.dispatch.policy import CONNECTION_ERROR, Action, decide, is_success, parse_retry_after
from ripple.events.extensions import age_seconds, hops_of, stamp_arrival
from ripple.events.http import UnsupportedFormat, decode_message
from ripple.events.model import CloudEvent, EventError
from ripple.filters import Filter, from_trigger_spec
from ripple.metrics import DELIVERIES, DELIVERY_SECONDS, FILTERED, REPLIES
from ripple.store import EventStore, StoreUnavailable, subjects

log = logging.getLogger(__name__)
delivery_log = logging.getLogger("ripple.delivery")

Resolver = Callable[[Destination, str], Awaitable[str]]
"""Turns a trigger's destination (in its namespace) into a URL; raises :class:`Unresolvable` when it cannot."""
ACK_WAIT = 10.0
"""How long JetStream waits for an unacknowledged message before redelivering it (kept alive while in flight)."""
STORE_RETRY_DELAY = 1.0
REPLICA_TRIES = 3


async def stop_fetching(
    loop: asyncio.Task[None] | None, subscription: JetStreamContext.PullSubscription | None
) -> None:
    """End a fetch loop and drop its pull subscription; unacknowledged messages go back to JetStream."""
    if loop is not None:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    if subscription is not None:
        with contextlib.suppress(nats.errors.Error):
            await subscription.unsubscribe()


class Unresolvable(Exception):
    """A destination that names nothing deliverable (yet)."""


@dataclass
class TriggerStats:
    in_flight: int = 0
    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    filtered: int = 0
    replies: int = 0
    replies_dropped: int = 0

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
    ) -> None:
        self.trigger = trigger
        self.store = store
        self.session = session
        self.resolve = resolve
        self.ack_wait = ack_wait
        self.name = f"{trigger.namespace}/{trigger.name}"
        self.delivery = trigger.spec.delivery
        self.filter: Filter = from_trigger_spec(trigger.spec.model_dump(by_alias=True, exclude_none=True))
        self.routed_subject = subjects.routed_subject(trigger.namespace, trigger.spec.broker, trigger.name)
        self.stats = TriggerStats()
        self._slots = asyncio.Semaphore(self.delivery.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None

    async def start(self) -> None:
        namespace, broker = self.trigger.namespace, self.trigger.spec.broker
        consumer = await self.store.ensure_trigger_consumer(
            namespace,
            broker,
            self.trigger.name,
            types=self.filter.pinned_types(),
            ack_wait=self.ack_wait,
            max_ack_pending=max(1000, self.delivery.concurrency * 4),
        )
        subscription = await self.store.js.pull_subscribe_bind(
            consumer, subjects.stream_name(namespace, broker)
        )
        self._subscription = subscription
        self._loop = asyncio.create_task(self._fetch_loop(subscription), name=f"trigger {self.name}")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop fetching, let in-flight deliveries finish for ``grace`` seconds, then abandon the rest.

        Abandoned messages are not acknowledged, so JetStream redelivers them.
        """
        await stop_fetching(self._loop, self._subscription)
        self._loop = self._subscription = None
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _fetch_loop(self, subscription: JetStreamContext.PullSubscription) -> None:
        while True:
            await self._slots.acquire()
            free = 1
            while not self._slots.locked() and free < self.delivery.concurrency:
                await self._slots.acquire()
                free += 1
            try:
                messages = await subscription.fetch(batch=free, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                messages = []
            except nats.errors.Error as exc:
                log.debug("trigger %s: fetch failed: %s", self.name, exc)
                messages = []
                await asyncio.sleep(0.5)
            for _ in range(free - len(messages)):
                self._slots.release()
            for msg in messages:
                task = asyncio.create_task(self._handle(msg))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _handle(self, msg: Msg) -> None:
        self.stats.in_flight += 1
        keepalive = asyncio.create_task(self._keep_alive(msg))
        try:
            await self._process(msg)
        except Exception:
            log.exception("trigger %s: unexpected failure; the event will be redelivered", self.name)
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

    async def _process(self, msg: Msg) -> None:
        try:
            event = CloudEvent.from_json_bytes(msg.data)
        except (ValueError, KeyError) as exc:
            log.error("trigger %s: message %s is not a stored CloudEvent (%s); terminated", self.name, msg.subject, exc)
            await msg.term()
            return
        # The router matched what it copied to this trigger; events read from the log are tested here.
        if msg.subject != self.routed_subject and not self.filter.matches(event.as_mapping()):
            self.stats.filtered += 1
            FILTERED.labels(self.name).inc()
            await msg.ack()
            return
        attempt = msg.metadata.num_delivered or 1
        url, result = await self._attempt(event)
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
            f" ({result.error})" if result.error else "",
        )
        if decision.action is Action.ACK:
            if await self._publish_reply(event, result):
                self.stats.delivered += 1
                await msg.ack()
            else:
                await msg.nak(delay=max(decision.delay, STORE_RETRY_DELAY))
        elif decision.action is Action.RETRY:
            self.stats.retried += 1
            await msg.nak(delay=decision.delay)
        elif await self._dead_letter(event, result, url, msg):
            self.stats.dead_lettered += 1
            await msg.ack()
        else:
            await msg.nak(delay=STORE_RETRY_DELAY)

    async def _attempt(self, event: CloudEvent) -> tuple[str, DeliveryResult]:
        """One delivery attempt. A Function replica that refuses the connection (it is stopping) is not the
        subscriber failing: the event goes to the next ready replica, or wakes the function, at once."""
        subscriber = self.trigger.spec.subscriber
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

    async def _publish_reply(self, event: CloudEvent, result: DeliveryResult) -> bool:
        """Store a reply event, if the answer carries one; ``False`` only when storing it failed."""
        if result.status != 200:
            return True
        try:
            reply = decode_message(result.headers, result.body)
        except (EventError, UnsupportedFormat) as exc:
            log.warning("trigger %s: ignoring a reply to %s, not a valid CloudEvent: %s", self.name, event.id, exc)
            return True
        if reply is None:
            return True
        try:
            remaining = hops_of(event) - 1
        except EventError:
            remaining = 0
        if remaining <= 0:
            self.stats.replies_dropped += 1
            REPLIES.labels(self.name, "dropped").inc()
            log.warning(
                "trigger %s: dropped reply %s to %s: no hops left (reply loop guard)", self.name, reply.id, event.id
            )
            return True
        try:
            await self.store.publish_event(
                self.trigger.namespace, self.trigger.spec.broker, stamp_arrival(reply, hops=remaining)
            )
        except StoreUnavailable as exc:
            log.warning("trigger %s: could not store reply to %s, will retry: %s", self.name, event.id, exc)
            return False
        self.stats.replies += 1
        REPLIES.labels(self.name, "stored").inc()
        return True

    async def _dead_letter(self, event: CloudEvent, result: DeliveryResult, url: str, msg: Msg) -> bool:
        """Send to the sink, else keep in the dead-letter stream; ``False`` only when both failed."""
        letter = dead_letter_event(event, result, destination=url, trigger=self.name)
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
                delivery_id=str(msg.metadata.sequence.stream),
            )
        except StoreUnavailable as exc:
            log.warning("trigger %s: could not store dead letter %s, will retry: %s", self.name, event.id, exc)
            return False
        return True
