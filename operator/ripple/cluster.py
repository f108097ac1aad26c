"""The data plane in a cluster: brokers, triggers and functions learned from the API server, not from files.

``ripple ingress --kubernetes`` watches Brokers (unknown ones are answered 404). ``ripple dispatcher
--kubernetes`` watches Triggers and Functions, runs a worker per Trigger, and scales Functions through their
Deployments, with readiness from EndpointSlices (or from Pods, where EndpointSlices cannot carry the pods'
addresses, as on a test control plane whose fake nodes hand out loopback IPs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from ripple.api.models import GROUP, VERSION, Broker, Function, Resource, Trigger
from ripple.controller.config import InvalidSpec, parse
from ripple.controller.resources.conditions import is_ready
from ripple.dispatch import Dispatcher
from ripple.dispatch.dispatcher import TriggersNotStarted
from ripple.scaling.activator import Activator
from ripple.scaling.autoscaler import Autoscaler
from ripple.scaling.kubernetes import FUNCTION_LABEL, KubernetesBackend
from ripple.store import EventStore
from ripple.supervision import Supervisor

log = logging.getLogger(__name__)
Key = tuple[str, str]


async def load_kube_config() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


def as_resource(model: type[Resource], obj: dict[str, Any]) -> Resource | None:
    try:
        return parse(model, obj)
    except InvalidSpec as exc:
        metadata = obj.get("metadata") or {}
        log.warning("ignoring %s %s/%s: %s", obj.get("kind"), metadata.get("namespace"), metadata.get("name"), exc)
        return None


async def watch_forever(
    list_call: Callable[..., Awaitable[Any]],
    on_event: Callable[[str, dict[str, Any]], Awaitable[None]],
    serialize: Callable[[Any], dict[str, Any]],
    *args: Any,
    **kwargs: Any,
) -> None:
    """List-and-watch ``list_call`` for ever, reconnecting; each event's object is handed over as JSON."""
    while True:
        try:
            async with watch.Watch() as stream:
                async for event in stream.stream(list_call, *args, timeout_seconds=300, **kwargs):
                    await on_event(event["type"], serialize(event["object"]))
        except asyncio.CancelledError:
            raise
        except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("watch failed, reconnecting: %s", exc)
            await asyncio.sleep(1)


async def run_supervised(supervisor: Supervisor, loops: dict[str, Callable[[], Awaitable[None]]]) -> None:
    """Run loops side by side, each restarted when it fails, until the caller is cancelled; then stop them all."""
    for name, loop in loops.items():
        supervisor.start(name, loop, kind="watch")
    try:
        await asyncio.Event().wait()
    finally:
        for name in loops:
            await supervisor.stop(name)


class RippleObjects:
    """The current Brokers, Triggers or Functions of the cluster, kept up to date by a watch."""

    def __init__(self, api: client.ApiClient, plural: str, model: type[Resource],
                 on_change: Callable[[], None] = lambda: None,
                 wanted: Callable[[dict[str, Any]], bool] = lambda obj: True) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.wanted = wanted
        self.plural = plural
        self.model = model
        self.items: dict[Key, Resource] = {}
        self.on_change = on_change

    async def _event(self, event_type: str, obj: dict[str, Any]) -> None:
        metadata = obj.get("metadata") or {}
        key = (metadata.get("namespace"), metadata.get("name"))
        if event_type == "DELETED" or not self.wanted(obj):
            if self.items.pop(key, None) is None:  # type: ignore[arg-type]
                return
        else:
            resource = as_resource(self.model, obj)
            if resource is None or self.items.get(key) == resource:  # type: ignore[arg-type]
                return
            self.items[key] = resource  # type: ignore[index]
        self.on_change()

    async def run(self) -> None:
        await watch_forever(self.custom.list_cluster_custom_object, self._event, lambda o: o, GROUP, VERSION,
                            self.plural)


class ClusterDispatcher:
    """Dispatcher, autoscaler and activator for every Trigger and Function in the cluster."""

    def __init__(self, store: EventStore, api: client.ApiClient, *, readiness: str = "endpointslices",
                 activation_timeout: float = 60.0, autoscale: bool = True) -> None:
        self.store = store
        self.autoscale = autoscale
        self.api = api
        self.readiness = readiness
        self._changed = asyncio.Event()
        # The operator makes a trigger's consumer and says Ready: only then is there something to deliver from.
        self.triggers = RippleObjects(api, "triggers", Trigger, self._changed.set,
                                      wanted=lambda obj: is_ready(obj.get("status")))
        self.functions = RippleObjects(api, "functions", Function, self._changed.set)
        self._http = aiohttp.ClientSession()
        self.backend = KubernetesBackend(client.AppsV1Api(api), [],
                                         probe=self._probe if readiness == "pods" else None)
        self.autoscaler = Autoscaler(store, self.backend, {}, [])
        self.function_keys: set[Key] = set()
        # With the autoscaler in another process (`ripple autoscaler`), waking from zero is this process's job.
        activate = self.autoscaler.activate if autoscale else self.backend.wake
        self.activator = Activator(self.backend, activate, self.function_keys, timeout=activation_timeout)
        self.dispatcher = Dispatcher(store, self.activator.resolve)

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
        while True:
            await self._changed.wait()
            await asyncio.sleep(0.2)  # let a burst of watch events settle
            self._changed.clear()
            functions: dict[Key, Function] = dict(self.functions.items)  # type: ignore[arg-type]
            self.function_keys.clear()
            self.function_keys.update(functions)
            self.backend.functions = set(functions)
            triggers = [t for t in self.triggers.items.values() if isinstance(t, Trigger)]
            if self.autoscale:
                await self.autoscaler.set_functions(functions, triggers)
            try:
                await self.dispatcher.apply(triggers)
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
                "apply triggers": self._apply_loop, "watch readiness": self._watch_readiness,
            })
        finally:
            await self.autoscaler.stop()
            await self.dispatcher.close()
            await self._http.close()


class ClusterAutoscaler:
    """The autoscaler on its own: Functions' Deployments follow the backlog of the Triggers that target them."""

    def __init__(self, store: EventStore, api: client.ApiClient) -> None:
        self._changed = asyncio.Event()
        self.triggers = RippleObjects(api, "triggers", Trigger, self._changed.set)
        self.functions = RippleObjects(api, "functions", Function, self._changed.set)
        self.backend = KubernetesBackend(client.AppsV1Api(api), [])
        self.autoscaler = Autoscaler(store, self.backend, {}, [])
        self.supervisor = Supervisor()

    def healthy(self) -> bool:
        return self.supervisor.healthy()

    async def _apply_loop(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(0.2)
            self._changed.clear()
            functions: dict[Key, Function] = dict(self.functions.items)  # type: ignore[arg-type]
            self.backend.functions = set(functions)
            triggers = [t for t in self.triggers.items.values() if isinstance(t, Trigger)]
            await self.autoscaler.set_functions(functions, triggers)

    async def run(self) -> None:
        await self.autoscaler.start()
        try:
            await run_supervised(self.supervisor, {
                "watch triggers": self.triggers.run, "watch functions": self.functions.run,
                "apply functions": self._apply_loop,
            })
        finally:
            await self.autoscaler.stop()


class ClusterBrokers:
    """The set of Brokers in the cluster, for the ingress's 404s."""

    def __init__(self, api: client.ApiClient) -> None:
        self.objects = RippleObjects(api, "brokers", Broker)

    def __call__(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self.objects.items

    async def run(self) -> None:
        await self.objects.run()
