"""The dispatcher: one :class:`TriggerWorker` per trigger, kept in step with the declared triggers."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable

import aiohttp

from ripple.api.models import Trigger
from ripple.dispatch.router import BrokerRouter
from ripple.dispatch.worker import ACK_WAIT, Resolver, TriggerWorker
from ripple.filters import Filter
from ripple.store import EventStore

log = logging.getLogger(__name__)


class TriggersNotStarted(Exception):
    """Some triggers could not start (the others run); ``apply`` again later to retry them."""

    def __init__(self, failures: list[str]) -> None:
        super().__init__("; ".join(failures))
        self.failures = failures


class Dispatcher:
    """Runs the workers of a set of triggers; :meth:`apply` reconciles that set, :meth:`close` stops them all."""

    def __init__(self, store: EventStore, resolve: Resolver, *, ack_wait: float = ACK_WAIT) -> None:
        self.store = store
        self.resolve = resolve
        self.ack_wait = ack_wait
        self.workers: dict[tuple[str, str], TriggerWorker] = {}
        self.routers: dict[tuple[str, str], BrokerRouter] = {}
        self._session: aiohttp.ClientSession | None = None

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
        wanted = {t.key: t for t in triggers}
        for key in list(self.workers):
            if key not in wanted or self.workers[key].trigger != wanted[key]:
                await self.workers.pop(key).stop()
        failed = []
        for key, trigger in wanted.items():
            if key not in self.workers:
                worker = TriggerWorker(trigger, self.store, self.session, self.resolve, ack_wait=self.ack_wait)
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
        for (namespace, name), worker in self.workers.items():
            if worker.filter.pinned_types() is None:
                routes[(namespace, worker.trigger.spec.broker)][name] = worker.filter
        for key in self.routers.keys() - routes.keys():
            await self.routers.pop(key).stop()
        for key, filters in routes.items():
            if key not in self.routers:
                router = BrokerRouter(self.store, *key, ack_wait=self.ack_wait)
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
        if self._session is not None:
            await self._session.close()
            self._session = None

    def stats(self) -> dict[str, dict[str, int]]:
        return {f"{ns}/{name}": worker.stats.as_dict() for (ns, name), worker in self.workers.items()}
