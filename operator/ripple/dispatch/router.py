"""The broker's router: reads each event once and copies it to the triggers whose filter matches.

Triggers that pin ``type`` read their types straight from the log (the server selects them). Every other
trigger would otherwise read and test every event, so cost would grow with the number of triggers; the router
instead looks each event up in a :class:`~ripple.filters.index.TriggerIndex`, so its work depends on the
triggers that could match. A copy is stored per matching trigger (message id ``route:<seq>:<trigger>``, so a
re-routed event after a crash is stored once) before the original is acknowledged: nothing is lost between the
two, and each trigger keeps its own consumer, retries and dead letters.

An event the router cannot route (it cannot be decoded, or matching it raises) is tried ``ROUTER_ATTEMPTS``
times and then kept in the broker's dead-letter stream under the trigger name ``_router``, so it never stops
the events behind it; the fetch loop runs under a :class:`Supervisor` and is restarted if it fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from nats.aio.msg import Msg

from ripple.api.models import Parallel
from ripple.dispatch.dead_letter import keep_message
from ripple.dispatch.hops import parallel_filters
from ripple.events.extensions import BRANCH, FANOUT, fanout_of
from ripple.events.model import CloudEvent
from ripple.filters import Filter
from ripple.filters.index import TriggerIndex
from ripple.metrics import POISON_EVENTS
from ripple.store import EventStore, StoreUnavailable, subjects
from ripple.store.consumers import ROUTER_ATTEMPTS, hop_consumer_config
from ripple.store.fetching import Handlers, Slots, fetch_forever
from ripple.store.jetstream import MSG_ID_HEADER, until_stored
from ripple.supervision import Supervisor
from ripple.tracing import TRACEPARENT, span

__all__ = ["RETRY_DELAY", "ROUTER_IN_FLIGHT", "ROUTER_TRIGGER", "BrokerRouter", "ParallelRouter"]

log = logging.getLogger(__name__)
ROUTER_IN_FLIGHT = 256
"""Events the router handles at once."""
RETRY_DELAY = 1.0
ROUTER_TRIGGER = "_router"
"""The trigger name the router's dead letters carry (no Kubernetes name has an underscore)."""


class BrokerRouter:
    """Routes one broker's events to its triggers that do not pin ``type``."""

    def __init__(
        self, store: EventStore, namespace: str, broker: str, *, ack_wait: float, supervisor: Supervisor | None = None
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.broker = broker
        self.ack_wait = ack_wait
        self.supervisor = supervisor or Supervisor()
        self.task_name = f"router {namespace}/{broker}"
        self.stream = subjects.stream_name(namespace, broker)
        self.index: TriggerIndex[str] = TriggerIndex()
        self.filters: dict[str, Filter] = {}
        self.routed = 0
        self.dead_lettered = 0
        self.dead_letter_name = ROUTER_TRIGGER
        self._slots = Slots(ROUTER_IN_FLIGHT)
        self._handlers = Handlers(self._route, self._slots)

    def set_triggers(self, filters: Mapping[str, Filter]) -> None:
        """Route to exactly these triggers (name → filter) from now on."""
        for name in self.filters.keys() - filters.keys():
            self.index.remove(name)
        for name, trigger_filter in filters.items():
            if self.filters.get(name) is not trigger_filter:
                self.index.add(name, trigger_filter)
        self.filters = dict(filters)

    async def start(self) -> None:
        await self._ensure_consumer()
        self.supervisor.start(self.task_name, self._run, kind="router")

    async def stop(self) -> None:
        await self.supervisor.stop(self.task_name)
        await self._handlers.stop()

    async def _run(self) -> None:
        await fetch_forever(self.store, self.stream, self._ensure_consumer, self._handlers.take,
                            reserve=self._slots.reserve, release=self._slots.release)

    async def _ensure_consumer(self) -> str:
        return await self.store.ensure_router_consumer(self.namespace, self.broker, ack_wait=self.ack_wait)

    async def _route(self, msg: Msg) -> None:
        stage, event = "decode", None
        try:
            event = CloudEvent.from_json_bytes(msg.data)
            stage = "filter"
            targets = self.index.match(event.as_mapping())
        except Exception as exc:
            await self._poisoned(msg, event, f"router {stage} failed: {type(exc).__name__}: {exc}", stage)
            return
        sequence = msg.metadata.sequence.stream

        try:
            copies = [(name, self._copy(name, event, msg.data, len(targets))) for name in targets]
        except Exception as exc:
            await self._poisoned(msg, event, f"router copy failed: {type(exc).__name__}: {exc}", "copy")
            return

        async def copy_once() -> bool:
            try:
                await asyncio.gather(*(
                    self.store.publish_stored(subjects.routed_subject(self.namespace, self.broker, name), payload,
                                              {MSG_ID_HEADER: f"route:{sequence}:{name}"})
                    for name, payload in copies
                ))  # fmt: skip
            except StoreUnavailable as exc:
                log.warning("router %s/%s: could not route event %s yet: %s", self.namespace, self.broker,
                            event.id, exc)
                return False
            return True

        parent = event.get(TRACEPARENT)
        with span(f"route {self.namespace}/{self.broker}", parent=parent if isinstance(parent, str) else None,
                  kind="consumer", attributes={"event_id": event.id, "targets": len(copies)}):
            await until_stored(copy_once, msg.in_progress)
        self.routed += 1
        await msg.ack()

    def _copy(self, name: str, event: CloudEvent, stored: bytes, copies: int) -> bytes:
        """What the trigger ``name`` gets: the event as stored (a Parallel's router says which branch it is)."""
        return stored

    async def _poisoned(self, msg: Msg, event: CloudEvent | None, reason: str, stage: str) -> None:
        attempt = msg.metadata.num_delivered or 1
        POISON_EVENTS.labels(f"router-{stage}").inc()
        log.error("router %s/%s: %s (attempt %d)", self.namespace, self.broker, reason[:500], attempt,
                  exc_info=attempt == 1)
        if event is not None and attempt < ROUTER_ATTEMPTS:
            await msg.nak(delay=RETRY_DELAY)
            return
        await until_stored(lambda: self.dead_letter(msg.data, msg.metadata.sequence.stream, reason, event),
                           msg.in_progress)
        await msg.ack()

    async def dead_letter(self, payload: bytes, sequence: int, reason: str, event: CloudEvent | None = None) -> bool:
        """Keep an event the router could not route in the broker's dead-letter stream; ``False`` if that failed."""
        kept = await keep_message(self.store, self.namespace, self.broker, self.dead_letter_name, payload, sequence,
                                  reason, event)
        self.dead_lettered += kept
        return kept


class ParallelRouter(BrokerRouter):
    """A Parallel's entry: each event sent to it is stored once and copied to every branch whose filter it
    passes, stamped with the branch's index and its share of the event's fan-out budget."""

    def __init__(self, store: EventStore, parallel: Parallel, *, ack_wait: float,
                 supervisor: Supervisor | None = None) -> None:
        super().__init__(store, parallel.namespace, parallel.spec.broker, ack_wait=ack_wait, supervisor=supervisor)
        self.parallel = parallel
        self.entry = subjects.parallel_entry(parallel.name)
        self.task_name = f"parallel {parallel.namespace}/{parallel.name}"
        self.dead_letter_name = self.entry
        self.branches = {subjects.parallel_branch(parallel.name, i): i for i in range(len(parallel.spec.branches))}
        self.set_triggers(parallel_filters(parallel))

    async def _ensure_consumer(self) -> str:
        config = hop_consumer_config(self.namespace, self.broker, self.entry, ack_wait=self.ack_wait)
        return await self.store.ensure_consumer(self.namespace, self.broker, config)

    def _copy(self, name: str, event: CloudEvent, stored: bytes, copies: int) -> bytes:
        share = fanout_of(event) // max(1, copies)
        return event.with_attributes(**{BRANCH: self.branches[name], FANOUT: share}).to_json_bytes()
