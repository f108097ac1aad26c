"""The broker's router: reads each event once and copies it to the triggers whose filter matches.

Triggers that pin ``type`` read their types straight from the log (the server selects them). Every other
trigger would otherwise read and test every event, so cost would grow with the number of triggers; the router
instead looks each event up in a :class:`~ripple.filters.index.TriggerIndex`, so its work depends on the
triggers that could match. A copy is stored per matching trigger (message id ``route:<seq>:<trigger>``, so a
re-routed event after a crash is stored once) before the original is acknowledged: nothing is lost between the
two, and each trigger keeps its own consumer, retries and dead letters.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from ripple.dispatch.worker import stop_fetching
from ripple.events.model import CloudEvent
from ripple.filters import Filter
from ripple.filters.index import TriggerIndex
from ripple.store import EventStore, StoreUnavailable, subjects
from ripple.store.jetstream import MSG_ID_HEADER

log = logging.getLogger(__name__)
FETCH_BATCH = 256
RETRY_DELAY = 1.0


class BrokerRouter:
    """Routes one broker's events to its triggers that do not pin ``type``."""

    def __init__(self, store: EventStore, namespace: str, broker: str, *, ack_wait: float) -> None:
        self.store = store
        self.namespace = namespace
        self.broker = broker
        self.ack_wait = ack_wait
        self.index: TriggerIndex[str] = TriggerIndex()
        self.filters: dict[str, Filter] = {}
        self.routed = 0
        self.unmatched = 0
        self._loop: asyncio.Task[None] | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None

    def set_triggers(self, filters: Mapping[str, Filter]) -> None:
        """Route to exactly these triggers (name → filter) from now on."""
        for name in self.filters.keys() - filters.keys():
            self.index.remove(name)
        for name, trigger_filter in filters.items():
            if self.filters.get(name) is not trigger_filter:
                self.index.add(name, trigger_filter)
        self.filters = dict(filters)

    async def start(self) -> None:
        consumer = await self.store.ensure_router_consumer(self.namespace, self.broker, ack_wait=self.ack_wait)
        subscription = await self.store.js.pull_subscribe_bind(
            consumer, subjects.stream_name(self.namespace, self.broker)
        )
        self._subscription = subscription
        self._loop = asyncio.create_task(self._run(subscription), name=f"router {self.namespace}/{self.broker}")

    async def stop(self) -> None:
        await stop_fetching(self._loop, self._subscription)
        self._loop = self._subscription = None

    async def _run(self, subscription: JetStreamContext.PullSubscription) -> None:
        while True:
            try:
                messages = await subscription.fetch(batch=FETCH_BATCH, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except nats.errors.Error as exc:
                log.debug("router %s/%s: fetch failed: %s", self.namespace, self.broker, exc)
                await asyncio.sleep(0.5)
                continue
            await asyncio.gather(*(self._route(msg) for msg in messages))

    async def _route(self, msg: Msg) -> None:
        try:
            event = CloudEvent.from_json_bytes(msg.data)
        except (ValueError, KeyError) as exc:
            log.error("router: message %s is not a stored CloudEvent (%s); terminated", msg.subject, exc)
            await msg.term()
            return
        targets = self.index.match(event.as_mapping())
        sequence = msg.metadata.sequence.stream
        try:
            await asyncio.gather(
                *(
                    self.store.publish_stored(
                        subjects.routed_subject(self.namespace, self.broker, name),
                        msg.data,
                        {MSG_ID_HEADER: f"route:{sequence}:{name}"},
                    )
                    for name in targets
                )
            )
        except StoreUnavailable as exc:
            log.warning("router %s/%s: could not route event %s, will retry: %s",
                        self.namespace, self.broker, event.id, exc)
            await msg.nak(delay=RETRY_DELAY)
            return
        if targets:
            self.routed += 1
        else:
            self.unmatched += 1
        await msg.ack()
