"""The dispatcher: one :class:`TriggerWorker` per trigger, kept in step with the declared triggers.

Its loops (each worker's and router's fetch loop, and the watch on JetStream's max-deliveries advisories) run
under one :class:`Supervisor`, whose health is the dispatcher's. The advisory watch is the backstop of "never
dropped": a message JetStream stops redelivering after ``max_deliver`` (its handler died each time, so no rule
could settle it) is read back from the stream and kept as a dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable

import aiohttp
import nats.errors
import nats.js.errors

from ripple.api.models import Trigger
from ripple.dispatch.client import DeliveryResult
from ripple.dispatch.dead_letter import dead_letter_event, undecodable_event
from ripple.dispatch.policy import CONNECTION_ERROR
from ripple.dispatch.resolve import Resolver
from ripple.dispatch.router import BrokerRouter
from ripple.dispatch.worker import ACK_WAIT, TriggerWorker
from ripple.events.model import CloudEvent
from ripple.filters import Filter
from ripple.store import EventStore, StoreUnavailable, subjects
from ripple.store.jetstream import MAX_DELIVERIES_ADVISORY
from ripple.supervision import Supervisor

log = logging.getLogger(__name__)


class TriggersNotStarted(Exception):
    """Some triggers could not start (the others run); ``apply`` again later to retry them."""

    def __init__(self, failures: list[str]) -> None:
        super().__init__("; ".join(failures))
        self.failures = failures


class Dispatcher:
    """Runs the workers of a set of triggers; :meth:`apply` reconciles that set, :meth:`close` stops them all."""

    def __init__(
        self, store: EventStore, resolve: Resolver, *, ack_wait: float = ACK_WAIT, supervisor: Supervisor | None = None
    ) -> None:
        self.store = store
        self.resolve = resolve
        self.ack_wait = ack_wait
        self.supervisor = supervisor or Supervisor()
        self.workers: dict[tuple[str, str], TriggerWorker] = {}
        self.routers: dict[tuple[str, str], BrokerRouter] = {}
        self.backstop_dead_letters = 0
        self._pinned: dict[tuple[str, str, str], list[TriggerWorker]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._advisories = False

    def healthy(self) -> bool:
        return self.supervisor.healthy()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def apply(self, triggers: Iterable[Trigger]) -> None:
        """Start workers for new triggers, restart those whose spec changed, stop those that are gone.

        A trigger's consumer exists before the router copies events to it, so nothing routed is missed.
        """
        if not self._advisories:
            self.supervisor.start("max-deliveries advisories", self._watch_advisories, kind="advisories")
            self._advisories = True
        wanted = {t.key: t for t in triggers}
        for key in list(self.workers):
            if key not in wanted or self.workers[key].trigger != wanted[key]:
                await self.workers.pop(key).stop()
        failed = []
        for key, trigger in wanted.items():
            if key not in self.workers:
                worker = TriggerWorker(trigger, self.store, self.session, self.resolve, ack_wait=self.ack_wait,
                                       supervisor=self.supervisor, fanout=self._counter(trigger))
                try:
                    await worker.start()
                except Exception as exc:  # its broker's stream may not exist yet: the others go on
                    failed.append(f"{key[0]}/{key[1]}: {type(exc).__name__}: {exc}")
                    continue
                self.workers[key] = worker
                log.info("trigger %s/%s: delivering to %s", *key, trigger.spec.subscriber.model_dump(exclude_none=True))
        await self._apply_routes()
        if failed:
            raise TriggersNotStarted(failed)

    async def _apply_routes(self) -> None:
        """One router per broker that has triggers whose filter does not pin ``type``."""
        routes: dict[tuple[str, str], dict[str, Filter]] = defaultdict(dict)
        pinned: dict[tuple[str, str, str], list[TriggerWorker]] = defaultdict(list)
        for (namespace, name), worker in self.workers.items():
            types = worker.filter.pinned_types()
            if types is None:
                routes[(namespace, worker.trigger.spec.broker)][name] = worker.filter
            else:
                for event_type in types:
                    pinned[(namespace, worker.trigger.spec.broker, event_type)].append(worker)
        self._pinned = dict(pinned)
        for key in self.routers.keys() - routes.keys():
            await self.routers.pop(key).stop()
        for key, filters in routes.items():
            if key not in self.routers:
                router = BrokerRouter(self.store, *key, ack_wait=self.ack_wait, supervisor=self.supervisor)
                router.set_triggers(filters)
                await router.start()
                self.routers[key] = router
            else:
                self.routers[key].set_triggers(filters)

    async def close(self) -> None:
        await asyncio.gather(*(r.stop() for r in self.routers.values()))
        self.routers.clear()
        await asyncio.gather(*(w.stop() for w in self.workers.values()))
        self.workers.clear()
        await self.supervisor.close()
        self._advisories = False
        if self._session is not None:
            await self._session.close()
            self._session = None

    def stats(self) -> dict[str, dict[str, int]]:
        return {f"{ns}/{name}": worker.stats.as_dict() for (ns, name), worker in self.workers.items()}

    # --- fan-out ---------------------------------------------------------------------------------------------
    def _counter(self, trigger: Trigger) -> Callable[[CloudEvent], int]:
        def count(event: CloudEvent) -> int:
            return self.matching_triggers(trigger.namespace, trigger.spec.broker, event)

        return count

    def matching_triggers(self, namespace: str, broker: str, event: CloudEvent) -> int:
        """How many of the broker's triggers ``event`` matches (at least 1: the one asking has)."""
        mapping = event.as_mapping()
        router = self.routers.get((namespace, broker))
        count = len(router.index.match(mapping)) if router is not None else 0
        count += sum(w.filter.matches(mapping) for w in self._pinned.get((namespace, broker, event.type), ()))
        return max(1, count)

    # --- backstop ----------------------------------------------------------------------------------------------
    async def _watch_advisories(self) -> None:
        """Dead-letter every message a consumer of Ripple's gave up on after ``max_deliver`` deliveries."""
        while True:
            connection = self.store.connections
            subscription = await self.store.nc.subscribe(MAX_DELIVERIES_ADVISORY + ".>")
            try:
                while self.store.connections == connection:  # a replaced connection needs a new subscription
                    try:
                        msg = await subscription.next_msg(timeout=1.0)
                    except (TimeoutError, nats.errors.TimeoutError):
                        continue
                    await self._max_delivered(msg.data)
            finally:
                with contextlib.suppress(nats.errors.Error):
                    await subscription.unsubscribe()

    async def _max_delivered(self, advisory: bytes) -> None:
        try:
            doc = json.loads(advisory)
            stream, consumer, sequence = str(doc["stream"]), str(doc["consumer"]), int(doc["stream_seq"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a malformed max-deliveries advisory: %s", exc)
            return
        owner = subjects.parse_stream_name(stream)
        if owner is None:
            return
        namespace, broker = owner
        reason = f"JetStream gave up after {doc.get('deliveries', '?')} deliveries that never settled (max_deliver)"
        for attempt in range(1, 6):
            try:
                raw = await self.store.js.get_msg(stream, sequence)
            except nats.js.errors.NotFoundError:
                return  # gone already (retention, or settled after all)
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("max-deliveries backstop: cannot read %s #%d (%s), try %d", stream, sequence, exc, attempt)
                await asyncio.sleep(attempt)
                continue
            if await self._keep(namespace, broker, consumer, raw.data or b"", sequence, reason):
                self.backstop_dead_letters += 1
                log.error("%s #%d (%s): %s; kept as a dead letter", stream, sequence, consumer, reason)
                return
            await asyncio.sleep(attempt)
        log.error("%s #%d (%s): %s, and it could not be dead-lettered; it stays in the stream",
                  stream, sequence, consumer, reason)

    async def _keep(self, namespace: str, broker: str, consumer: str, payload: bytes, sequence: int,
                    reason: str) -> bool:
        if consumer == subjects.ROUTER_CONSUMER:
            router = self.routers.get((namespace, broker)) or BrokerRouter(self.store, namespace, broker,
                                                                           ack_wait=self.ack_wait)
            return await router.dead_letter(payload, sequence, reason)
        if not consumer.startswith(subjects.CONSUMER_PREFIX):
            return True  # not a consumer of Ripple's: nothing to keep
        trigger = consumer[len(subjects.CONSUMER_PREFIX):]
        try:
            event = CloudEvent.from_json_bytes(payload)
        except Exception:
            event = undecodable_event(payload, namespace=namespace, broker=broker, sequence=sequence)
        result = DeliveryResult(CONNECTION_ERROR, error=reason)
        worker = self.workers.get((namespace, trigger))
        if worker is not None:
            return await worker.dead_letter(event, result, "", sequence, reason=reason)
        letter = dead_letter_event(event, result, destination="", trigger=f"{namespace}/{trigger}", reason=reason)
        try:
            await self.store.store_dead_letter(namespace, broker, trigger, letter, delivery_id=str(sequence))
        except StoreUnavailable:
            return False
        return True
