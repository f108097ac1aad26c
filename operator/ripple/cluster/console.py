"""What the cluster's flow page (``ripple console --kubernetes``) shows: the topology from the API server, the
counts from where they live.

Brokers, Triggers, Functions, Sequences and Parallels come from watches. A trigger's pending backlog is its
consumer's, read from JetStream; what the dispatchers did (delivered, retried, dead-lettered) is in their own
memory, so it is read from their ``/metrics``: every address the dispatchers' headless Service resolves to is
scraped and the ``ripple_deliveries_total`` series are summed, so the page counts all replicas. A Function's
replicas are its Deployment's. The console takes a snapshot at most once a second, whatever the number of pages
open.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import aiohttp
import nats.errors
import nats.js.errors
from kubernetes_asyncio import client
from prometheus_client.parser import text_string_to_metric_families

from ripple.api.models import Broker, Function, Parallel, Sequence, Trigger
from ripple.console.topology import broker_counts, trigger_node
from ripple.kube.names import FUNCTION_LABEL
from ripple.kube.objects import RippleObjects
from ripple.store import EventStore, subjects

__all__ = ["ClusterConsoleSource", "delivery_counts"]

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT = 2.0
OUTCOMES = {"ack": "delivered", "retry": "retried", "dead-letter": "deadLettered"}


def delivery_counts(texts: list[str]) -> dict[str, dict[str, int]]:
    """``trigger → {delivered, retried, deadLettered}``, summed over the dispatchers' metrics pages."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES.values(), 0))
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name != "ripple_deliveries":
                continue
            for sample in family.samples:
                outcome = OUTCOMES.get(sample.labels.get("outcome", ""))
                if sample.name.endswith("_total") and outcome is not None:
                    counts[sample.labels["trigger"]][outcome] += int(sample.value)
    return dict(counts)


class ClusterConsoleSource:
    """The page's figures for a cluster; :meth:`run` keeps the watches going."""

    def __init__(self, store: EventStore, api: client.ApiClient, *, dispatchers: str | None) -> None:
        self.store = store
        self.dispatchers = dispatchers
        """``host:port`` of the dispatchers' metrics (a headless Service: every replica's address), or None."""
        self.objects = {kind.__name__: RippleObjects(api, kind) for kind in (Broker, Trigger, Function, Sequence,
                                                                              Parallel)}
        self.apps = client.AppsV1Api(api)

    async def run(self) -> None:
        await asyncio.gather(*(objects.run() for objects in self.objects.values()))

    def brokers(self) -> list[tuple[str, str]]:
        return sorted(self.objects["Broker"].items)

    async def snapshot(self) -> dict[str, Any]:
        deliveries = delivery_counts(await self._scrape())
        brokers = [{"id": f"{ns}/{name}", **await broker_counts(self.store, ns, name)} for ns, name in self.brokers()]
        triggers = []
        for (namespace, name), resource in sorted(self.objects["Trigger"].items.items()):
            assert isinstance(resource, Trigger)
            triggers.append(trigger_node(resource, {
                "pending": await self._pending(namespace, resource.spec.broker, name), "inFlight": None,
                **deliveries.get(f"{namespace}/{name}", dict.fromkeys(OUTCOMES.values(), 0))}))
        return {"brokers": brokers, "triggers": triggers, "functions": await self._functions(),
                "flows": [{"id": f"{kind} {ns}/{name}", "kind": kind, "hops": []}
                          for kind in ("Sequence", "Parallel") for ns, name in sorted(self.objects[kind].items)],
                "sources": {}}

    async def _scrape(self) -> list[str]:
        if not self.dispatchers:
            return []
        host, _, port = self.dispatchers.rpartition(":")
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, int(port), type=0, proto=6)
        except OSError as exc:
            log.warning("console: cannot resolve the dispatchers at %s: %s", self.dispatchers, exc)
            return []
        addresses = sorted({str(info[4][0]) for info in found})
        timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async def one(address: str) -> str:
                url = f"http://[{address}]:{port}/metrics" if ":" in address else f"http://{address}:{port}/metrics"
                try:
                    async with http.get(url) as answer:
                        return await answer.text() if answer.status == 200 else ""
                except (aiohttp.ClientError, TimeoutError) as exc:
                    log.warning("console: cannot read %s: %s", url, exc)
                    return ""

            return list(await asyncio.gather(*(one(address) for address in addresses)))

    async def _pending(self, namespace: str, broker: str, trigger: str) -> int | None:
        try:
            info = await self.store.js.consumer_info(subjects.stream_name(namespace, broker),
                                                     subjects.consumer_name(trigger))
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError):
            return None
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def _functions(self) -> list[dict[str, Any]]:
        try:
            deployments = await self.apps.list_deployment_for_all_namespaces(label_selector=FUNCTION_LABEL,
                                                                             _request_timeout=SCRAPE_TIMEOUT)
        except (client.ApiException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("console: cannot list the Functions' Deployments: %s", exc)
            deployments = None
        scale = {(d.metadata.namespace, (d.metadata.labels or {}).get(FUNCTION_LABEL)): d
                 for d in (deployments.items if deployments else [])}
        found = []
        for namespace, name in sorted(self.objects["Function"].items):
            deployment = scale.get((namespace, name))
            desired = deployment.spec.replicas if deployment is not None else None
            ready = (deployment.status.ready_replicas or 0) if deployment is not None else 0
            found.append({"id": f"{namespace}/{name}", "desired": desired, "replicas": desired, "ready": ready,
                          "demand": None, "coldStarts": None, "lastColdStartSeconds": None})
        return found
