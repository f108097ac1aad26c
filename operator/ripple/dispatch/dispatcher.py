"""The dispatcher: one :class:`TriggerWorker` per trigger, kept in step with the declared triggers.

Its loops (each worker's and router's fetch loop, and the watch on JetStream's max-deliveries advisories) run
under one :class:`Supervisor`, whose health is the dispatcher's. The advisory watch is the backstop of "never
dropped": a message JetStream stops redelivering after ``max_deliver`` (its handler died each time, so no rule
could settle it) is read back from the stream and kept as a dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import ssl
from collections import defaultdict
from collections.abc import Callable, Iterable

import aiohttp
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg

from ripple.api.models import Parallel, Sequence, Trigger
from ripple.dispatch.client import DeliveryResult
from ripple.dispatch.dead_letter import keep_message, read_stored
from ripple.dispatch.hops import Hop, flow_hops
from ripple.dispatch.policy import CONNECTION_ERROR
from ripple.dispatch.replay import declared_replay_key, run_declared_replay
from ripple.dispatch.resolve import Resolver
from ripple.dispatch.router import ROUTER_TRIGGER, BrokerRouter, ParallelRouter
from ripple.dispatch.worker import ACK_WAIT, TriggerWorker
from ripple.events.model import CloudEvent
from ripple.filters import Filter
from ripple.signing import DeliverySigner
from ripple.store import EventStore, subjects
from ripple.store.fetching import Handlers, Slots, fetch_forever
from ripple.store.records import RecordSettings, ensure_records_stream
from ripple.supervision import Supervisor

__all__ = ["BACKSTOP_BATCH", "BACKSTOP_RETRY_DELAY", "PER_TRIGGER_TASKS", "Dispatcher", "TriggersNotStarted"]

log = logging.getLogger(__name__)
PER_TRIGGER_TASKS = frozenset({"trigger", "router"})
BACKSTOP_BATCH = 16
BACKSTOP_RETRY_DELAY = 5.0


class TriggersNotStarted(Exception):
    """Some triggers could not start (the others run); ``apply`` again later to retry them."""

    def __init__(self, failures: list[str]) -> None:
        super().__init__("; ".join(failures))
        self.failures = failures


class Dispatcher:
    """Runs the workers of a set of triggers; :meth:`apply` reconciles that set, :meth:`close` stops them all."""

    def __init__(
        self, store: EventStore, resolve: Resolver, *, ack_wait: float = ACK_WAIT, supervisor: Supervisor | None = None,
        records: RecordSettings | None = None, signer: DeliverySigner | None = None,
        client_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.client_tls = client_tls
        """What HTTPS subscribers are checked against; ``None``: the system's CAs."""
        self.store = store
        self.signer = signer
        """Signs deliveries to Functions (:mod:`ripple.signing`); ``None``: they go without a token."""
        self.record_settings = records or RecordSettings()
        self.resolve = resolve
        self.ack_wait = ack_wait
        self.supervisor = supervisor or Supervisor()
        self.workers: dict[tuple[str, str], TriggerWorker] = {}
        self.routers: dict[tuple[str, str], BrokerRouter] = {}
        self.parallels: dict[tuple[str, str], ParallelRouter] = {}
        self.backstop_dead_letters = 0
        self._pinned: dict[tuple[str, str, str], list[TriggerWorker]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._advisories = False
        self._records = False
        self._replays: set[str] = set()
        self._advisory_slots = Slots(BACKSTOP_BATCH)
        self._advisory_handlers = Handlers(self._on_advisory, self._advisory_slots)

    def healthy(self) -> bool:
        """Whether the dispatcher as a whole can work: one trigger's or one broker's failing loop is reported in
        its stats and logs, not here, so that it does not restart every other trigger with it."""
        return self.supervisor.healthy(ignore=PER_TRIGGER_TASKS)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=60,
                                             ssl=self.client_tls or True)
            # No cookies (a delivery is not a browser session: sharing them between subscribers would leak them),
            # and no session timeout: each delivery has its own.
            self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                                  timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    async def apply(self, triggers: Iterable[Trigger], flows: Iterable[Sequence | Parallel] = ()) -> None:
        """Start workers for new triggers and for the hops of new Sequences and Parallels, restart those whose
        spec changed, stop those that are gone.

        A trigger's (or hop's) consumer exists before anything is copied or handed to it, so nothing is missed.
        """
        if not self._advisories:
            self.supervisor.start("max-deliveries advisories", self._watch_advisories, kind="advisories")
            self._advisories = True
        flows = list(flows)
        if not self._records:
            try:
                await ensure_records_stream(self.store, self.record_settings)
                self._records = True
            except Exception as exc:  # records are observations: deliveries run without them, and it is retried
                log.warning("cannot keep delivery records yet: %s: %s", type(exc).__name__, exc)
        wanted: dict[tuple[str, str], tuple[Trigger, Hop | None]] = {t.key: (t, None) for t in triggers}
        wanted.update({hop.trigger.key: (hop.trigger, hop) for hop in flow_hops(flows)})
        for key in list(self.workers):
            worker = self.workers[key]
            if key not in wanted or (worker.trigger, worker.hop) != wanted[key]:
                await self.workers.pop(key).stop()
        failed = []
        for key, (trigger, hop) in wanted.items():
            if key not in self.workers:
                worker = TriggerWorker(trigger, self.store, self.session, self.resolve, ack_wait=self.ack_wait,
                                       supervisor=self.supervisor, fanout=self._counter(trigger), hop=hop,
                                       signer=self.signer)
                try:
                    await worker.start()
                except Exception as exc:  # its broker's stream may not exist yet: the others go on
                    failed.append(f"{key[0]}/{key[1]}: {type(exc).__name__}: {exc}")
                    continue
                self.workers[key] = worker
                log.info("%s %s/%s: delivering to %s", "hop" if hop else "trigger", *key,
                         trigger.spec.subscriber.model_dump(exclude_none=True))
        await self._apply_routes()
        failed += await self._apply_parallels([f for f in flows if isinstance(f, Parallel)])
        await self._apply_replays()
        if failed:
            raise TriggersNotStarted(failed)

    async def _apply_replays(self) -> None:
        """Run each started trigger's ``spec.replay`` once (a changed spec is a new replay; a removed trigger's
        stops with it)."""
        wanted = {f"replay {declared_replay_key(w.trigger)}": w.trigger for w in self.workers.values()
                  if w.hop is None and w.trigger.spec.replay is not None}
        for task in self._replays - wanted.keys():
            await self.supervisor.stop(task)
        for task, trigger in wanted.items():
            if task not in self._replays:
                self.supervisor.start(task, functools.partial(run_declared_replay, self.store, trigger), kind="replay")
        self._replays = set(wanted)

    async def _apply_parallels(self, parallels: list[Parallel]) -> list[str]:
        """One router per Parallel, started once its branches' consumers exist."""
        wanted = {p.key: p for p in parallels}
        for key in list(self.parallels):
            if key not in wanted or self.parallels[key].parallel != wanted[key]:
                await self.parallels.pop(key).stop()
        failed = []
        for key, parallel in wanted.items():
            if key in self.parallels:
                continue
            branches = [(key[0], subjects.parallel_branch(key[1], i)) for i in range(len(parallel.spec.branches))]
            if not all(branch in self.workers for branch in branches):
                failed.append(f"Parallel {key[0]}/{key[1]}: not every branch started")
                continue
            router = ParallelRouter(self.store, parallel, ack_wait=self.ack_wait, supervisor=self.supervisor)
            try:
                await router.start()
            except Exception as exc:
                failed.append(f"Parallel {key[0]}/{key[1]}: {type(exc).__name__}: {exc}")
                continue
            self.parallels[key] = router
        return failed

    async def _apply_routes(self) -> None:
        """One router per broker that has triggers whose filter does not pin ``type``."""
        routes: dict[tuple[str, str], dict[str, Filter]] = defaultdict(dict)
        pinned: dict[tuple[str, str, str], list[TriggerWorker]] = defaultdict(list)
        for (namespace, name), worker in self.workers.items():
            if worker.hop is not None:
                continue  # a hop's input is handed to it, never routed from the log
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
        await asyncio.gather(*(r.stop() for r in [*self.routers.values(), *self.parallels.values()]))
        self.routers.clear()
        self.parallels.clear()
        await asyncio.gather(*(w.stop() for w in self.workers.values()))
        self.workers.clear()
        await self.supervisor.close()
        await self._advisory_handlers.stop()
        self._advisories = False
        if self._session is not None:
            await self._session.close()
            self._session = None

    def stats(self) -> dict[str, dict[str, int]]:
        """Each trigger's counts (the hops of Sequences and Parallels are in :meth:`hops`)."""
        return {f"{ns}/{name}": w.stats.as_dict() for (ns, name), w in self.workers.items() if w.hop is None}

    def hops(self) -> list[TriggerWorker]:
        return [worker for worker in self.workers.values() if worker.hop is not None]

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
        """Dead-letter every message a consumer of Ripple's gave up on after ``max_deliver`` deliveries.

        The advisories are kept in a stream, so one sent while no dispatcher runs waits for the next; each is
        acknowledged only once its message is kept, and retried for as long as that takes.
        """
        await fetch_forever(self.store, subjects.ADVISORY_STREAM, self.store.ensure_advisory_stream,
                            self._advisory_handlers.take, reserve=self._advisory_slots.reserve,
                            release=self._advisory_slots.release)

    async def _on_advisory(self, msg: Msg) -> None:
        try:
            kept = await self._max_delivered(msg.data)
        except Exception:
            log.exception("max-deliveries backstop: handling an advisory failed; it will be retried")
            kept = False
        with contextlib.suppress(nats.errors.Error):
            await (msg.ack() if kept else msg.nak(delay=BACKSTOP_RETRY_DELAY))

    async def _max_delivered(self, advisory: bytes) -> bool:
        """Keep the message an advisory names as a dead letter; ``True`` when done (or nothing is to be done)."""
        try:
            doc = json.loads(advisory)
            stream, consumer, sequence = str(doc["stream"]), str(doc["consumer"]), int(doc["stream_seq"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a malformed max-deliveries advisory: %s", exc)
            return True
        owner = subjects.parse_stream_name(stream)
        if owner is None or not (consumer == subjects.ROUTER_CONSUMER or consumer.startswith(subjects.CONSUMER_PREFIX)):
            return True  # not a consumer of Ripple's
        namespace, broker = owner
        try:
            raw = await self.store.js.get_msg(stream, sequence)
        except nats.js.errors.NotFoundError:
            return True  # gone already (retention, or settled after all)
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("max-deliveries backstop: cannot read %s #%d yet: %s", stream, sequence, exc)
            return False
        reason = f"JetStream gave up after {doc.get('deliveries', '?')} deliveries that never settled (max_deliver)"
        if not await self._keep(namespace, broker, consumer, raw.data or b"", sequence, reason):
            return False
        self.backstop_dead_letters += 1
        log.error("%s #%d (%s): %s; kept as a dead letter", stream, sequence, consumer, reason)
        return True

    async def _keep(self, namespace: str, broker: str, consumer: str, payload: bytes, sequence: int,
                    reason: str) -> bool:
        router = self.routers.get((namespace, broker))
        if consumer == subjects.ROUTER_CONSUMER:
            if router is not None:  # counted with the router's own dead letters
                return await router.dead_letter(payload, sequence, reason)
            return await keep_message(self.store, namespace, broker, ROUTER_TRIGGER, payload, sequence, reason)
        trigger = consumer[len(subjects.CONSUMER_PREFIX):]
        worker = self.workers.get((namespace, trigger))
        if worker is None:  # the trigger is gone: its sink is unknown, the stream keeps the letter
            return await keep_message(self.store, namespace, broker, trigger, payload, sequence, reason)
        event = read_stored(payload, namespace=namespace, broker=broker, sequence=sequence)
        return await worker.dead_letter(event, DeliveryResult(CONNECTION_ERROR, error=reason), "", sequence,
                                        reason=reason)
