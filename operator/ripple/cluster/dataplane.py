"""The data plane in a cluster: brokers, triggers and functions learned from the API server, not from files.

``ripple ingress --kubernetes`` watches Brokers (unknown ones are answered 404). ``ripple dispatcher
--kubernetes`` watches Triggers and Functions, runs a worker per Trigger, and scales Functions through their
Deployments, with readiness from EndpointSlices (or from Pods, where EndpointSlices cannot carry the pods'
addresses, as on a test control plane whose fake nodes hand out loopback IPs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

import aiohttp
from kubernetes_asyncio import client

from ripple.api.models import Broker, Function, Parallel, Sequence, Trigger
from ripple.defaults import ACTIVATION_TIMEOUT
from ripple.dispatch import Dispatcher
from ripple.dispatch.dispatcher import TriggersNotStarted
from ripple.dispatch.hops import flow_hops
from ripple.dispatch.resolve import with_addresses
from ripple.kube.conditions import is_ready
from ripple.kube.lease import KubeLease
from ripple.kube.names import FUNCTION_LABEL
from ripple.kube.objects import Key, RippleObjects, watch_forever
from ripple.scaling.activator import Activator
from ripple.scaling.autoscaler import Autoscaler
from ripple.scaling.kubernetes import KubernetesBackend
from ripple.signing import DeliverySigner
from ripple.store import EventStore
from ripple.store.flows import Entry, FlowKind
from ripple.store.records import RecordSettings
from ripple.supervision import Supervisor

__all__ = [
    "AUTOSCALER_LEASE",
    "ClusterAutoscaler",
    "ClusterBrokers",
    "ClusterDispatcher",
    "ClusterFlows",
    "autoscaler_lease",
    "run_supervised",
]

log = logging.getLogger(__name__)


async def run_supervised(supervisor: Supervisor, loops: dict[str, Callable[[], Awaitable[None]]]) -> None:
    """Run loops side by side, each restarted when it fails, until the caller is cancelled; then stop them all.

    A loop's name starts with its kind (``watch ...``, ``apply ...``), which labels its restarts."""
    for name, loop in loops.items():
        supervisor.start(name, loop, kind=name.split(" ", 1)[0])
    try:
        await asyncio.Event().wait()
    finally:
        for name in loops:
            await supervisor.stop(name)


AUTOSCALER_LEASE = "ripple-autoscaler"


def autoscaler_lease(api: client.ApiClient) -> KubeLease:
    """The Lease only the deciding autoscaler holds, in the pod's namespace (``POD_NAMESPACE``, from the
    downward API), held under the pod's name (``POD_NAME``, else host and process)."""
    namespace = os.environ.get("POD_NAMESPACE") or "default"
    holder = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    return KubeLease(api, namespace, AUTOSCALER_LEASE, holder)


class ClusterDispatcher:
    """Dispatcher, autoscaler and activator for every Trigger and Function in the cluster."""

    def __init__(self, store: EventStore, api: client.ApiClient, *, readiness: str = "endpointslices",
                 activation_timeout: float = ACTIVATION_TIMEOUT, autoscale: bool = True,
                 records: RecordSettings | None = None, signer: DeliverySigner | None = None) -> None:
        self.store = store
        self.autoscale = autoscale
        self.api = api
        self.readiness = readiness
        self._changed = asyncio.Event()
        # The operator makes a trigger's consumer and says Ready: only then is there something to deliver from.
        self.triggers = RippleObjects(api, Trigger, self._changed.set,
                                      wanted=lambda obj: is_ready(obj.get("status")))
        self.functions = RippleObjects(api, Function, self._changed.set)
        self.sequences = RippleObjects(api, Sequence, self._changed.set, wanted=lambda obj: is_ready(obj.get("status")))
        self.parallels = RippleObjects(api, Parallel, self._changed.set, wanted=lambda obj: is_ready(obj.get("status")))
        self._http = aiohttp.ClientSession()
        self.backend = KubernetesBackend(client.AppsV1Api(api), [],
                                         probe=self._probe if readiness == "pods" else None)
        self.lease = autoscaler_lease(api)
        self.autoscaler = Autoscaler(store, self.backend, {}, [], leading=self.lease.held)
        self.function_keys: set[Key] = set()
        # With the autoscaler in another process (`ripple autoscaler`), waking from zero is this process's job.
        activate = self.autoscaler.activate if autoscale else self.backend.wake
        self.activator = Activator(self.backend, activate, self.function_keys, timeout=activation_timeout)
        self.dispatcher = Dispatcher(store, with_addresses(self.activator.resolve, self._address), records=records,
                                     signer=signer)

    def _address(self, kind: str, namespace: str, name: str) -> str | None:
        return (self.sequences if kind == "Sequence" else self.parallels).addresses.get((namespace, name))

    def flows(self) -> list[Sequence | Parallel]:
        found = [*self.sequences.items.values(), *self.parallels.items.values()]
        return [flow for flow in found if isinstance(flow, Sequence | Parallel)]

    def healthy(self) -> bool:
        return self.dispatcher.healthy()

    async def _probe(self, url: str) -> bool:
        for _ in range(100):
            try:
                async with self._http.get(url + "health", timeout=aiohttp.ClientTimeout(total=1)) as response:
                    if response.status == 200:
                        return True
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
        return False

    async def _apply_loop(self) -> None:
        self._changed.set()  # a restarted loop applies what it may have missed when it failed
        while True:
            await self._changed.wait()
            await asyncio.sleep(0.2)  # let a burst of watch events settle
            self._changed.clear()
            functions: dict[Key, Function] = dict(self.functions.items)  # type: ignore[arg-type]
            self.function_keys.clear()
            self.function_keys.update(functions)
            self.backend.functions = set(functions)
            triggers = [t for t in self.triggers.items.values() if isinstance(t, Trigger)]
            flows = self.flows()
            if self.autoscale:
                await self.autoscaler.set_functions(functions, [*triggers, *(h.trigger for h in flow_hops(flows))])
            try:
                await self.dispatcher.apply(triggers, flows)
            except TriggersNotStarted as exc:
                log.warning("triggers not started yet, retrying: %s", exc)
                await asyncio.sleep(2)
                self._changed.set()

    async def _watch_readiness(self) -> None:
        serialize = self.api.sanitize_for_serialization
        if self.readiness == "pods":
            core = client.CoreV1Api(self.api)
            await watch_forever(core.list_pod_for_all_namespaces, self.backend.observe_pod, serialize,
                                label_selector=FUNCTION_LABEL)
        else:
            discovery = client.DiscoveryV1Api(self.api)
            await watch_forever(discovery.list_endpoint_slice_for_all_namespaces, self.backend.observe, serialize)

    async def run(self) -> None:
        if self.autoscale:
            await self.autoscaler.start()
        try:
            await run_supervised(self.dispatcher.supervisor, {
                "watch triggers": self.triggers.run, "watch functions": self.functions.run,
                "watch sequences": self.sequences.run, "watch parallels": self.parallels.run,
                "apply triggers": self._apply_loop, "watch readiness": self._watch_readiness,
                **({"lease autoscaler": self.lease.run} if self.autoscale else {}),
            })
        finally:
            await self.lease.release()
            await self.autoscaler.stop()
            await self.dispatcher.close()
            await self._http.close()


class ClusterAutoscaler:
    """The autoscaler on its own: Functions' Deployments follow the backlog of the Triggers that target them."""

    def __init__(self, store: EventStore, api: client.ApiClient) -> None:
        self._changed = asyncio.Event()
        self.triggers = RippleObjects(api, Trigger, self._changed.set)
        self.functions = RippleObjects(api, Function, self._changed.set)
        self.sequences = RippleObjects(api, Sequence, self._changed.set)
        self.parallels = RippleObjects(api, Parallel, self._changed.set)
        self.backend = KubernetesBackend(client.AppsV1Api(api), [])
        self.lease = autoscaler_lease(api)
        self.autoscaler = Autoscaler(store, self.backend, {}, [], leading=self.lease.held)
        self.supervisor = Supervisor()

    def healthy(self) -> bool:
        return self.supervisor.healthy()

    async def _apply_loop(self) -> None:
        self._changed.set()  # a restarted loop applies what it may have missed when it failed
        while True:
            await self._changed.wait()
            await asyncio.sleep(0.2)
            self._changed.clear()
            functions: dict[Key, Function] = dict(self.functions.items)  # type: ignore[arg-type]
            self.backend.functions = set(functions)
            triggers = [t for t in self.triggers.items.values() if isinstance(t, Trigger)]
            flows = [f for f in [*self.sequences.items.values(), *self.parallels.items.values()]
                     if isinstance(f, Sequence | Parallel)]
            await self.autoscaler.set_functions(functions, [*triggers, *(h.trigger for h in flow_hops(flows))])

    async def run(self) -> None:
        await self.autoscaler.start()
        try:
            await run_supervised(self.supervisor, {
                "watch triggers": self.triggers.run, "watch functions": self.functions.run,
                "watch sequences": self.sequences.run, "watch parallels": self.parallels.run,
                "apply functions": self._apply_loop, "lease autoscaler": self.lease.run,
            })
        finally:
            await self.lease.release()
            await self.autoscaler.stop()


class ClusterBrokers:
    """The set of Brokers in the cluster, for the ingress's 404s."""

    def __init__(self, api: client.ApiClient) -> None:
        self.objects = RippleObjects(api, Broker)

    def __call__(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self.objects.items

    async def run(self) -> None:
        await self.objects.run()


class ClusterFlows:
    """The Sequences and Parallels of the cluster that are Ready, for the ingress to store what is sent to them."""

    def __init__(self, api: client.ApiClient) -> None:
        ready = lambda obj: is_ready(obj.get("status"))  # noqa: E731
        self.sequences = RippleObjects(api, Sequence, wanted=ready)
        self.parallels = RippleObjects(api, Parallel, wanted=ready)

    def __call__(self, kind: FlowKind, namespace: str, name: str) -> Entry | None:
        flow = (self.sequences if kind == "Sequence" else self.parallels).items.get((namespace, name))
        if not isinstance(flow, Sequence | Parallel):
            return None
        return Entry(kind, namespace, name, flow.spec.broker)

    async def run(self) -> None:
        await asyncio.gather(self.sequences.run(), self.parallels.run())
