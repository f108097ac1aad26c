"""The Kubernetes backend: a Function's replicas are its Deployment's pods.

Scaling writes the Deployment's ``scale`` subresource; readiness comes from the EndpointSlices of the
Function's Service, as a Service's clients see it. The decisions are pure functions over the API's JSON
(:func:`ready_urls`, :func:`scale_body`, :meth:`KubernetesBackend.observe`), the I/O is two calls and a watch.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from ripple.kube.conditions import is_ready
from ripple.kube.names import FUNCTION_LABEL, RUNTIME_PORT, RUNTIME_PORT_NAME, SERVICE_NAME_LABEL, deployment_name
from ripple.scaling.backend import FunctionKey, ReadyReplicas

__all__ = ["AppsApi", "KubernetesBackend", "pod_function", "pod_url", "ready_urls", "scale_body", "slice_function"]

log = logging.getLogger(__name__)

def scale_body(replicas: int) -> dict[str, Any]:
    return {"spec": {"replicas": replicas}}


def slice_function(endpoint_slice: Mapping[str, Any]) -> FunctionKey | None:
    """Which Function an EndpointSlice serves: its ``ripple.dev/function`` label, else its Service's name."""
    metadata = endpoint_slice.get("metadata") or {}
    labels = metadata.get("labels") or {}
    name = labels.get(FUNCTION_LABEL) or labels.get(SERVICE_NAME_LABEL)
    namespace = metadata.get("namespace")
    return (namespace, name) if name and namespace else None


def ready_urls(slices: Iterable[Mapping[str, Any]]) -> list[str]:
    """Base URLs of the endpoints that are ready and not terminating (an unset ``ready`` means ready)."""
    urls: set[str] = set()
    for endpoint_slice in slices:
        ports = endpoint_slice.get("ports") or []
        port = next((p.get("port") for p in ports if p.get("name") in (None, "", RUNTIME_PORT_NAME)), RUNTIME_PORT)
        for endpoint in endpoint_slice.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is False or conditions.get("terminating") is True:
                continue
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in address else address
                urls.add(f"http://{host}:{port}/")
    return sorted(urls)


def pod_function(pod: Mapping[str, Any]) -> FunctionKey | None:
    metadata = pod.get("metadata") or {}
    name = (metadata.get("labels") or {}).get(FUNCTION_LABEL)
    namespace = metadata.get("namespace")
    return (namespace, name) if name and namespace else None


def pod_url(pod: Mapping[str, Any]) -> str | None:
    """The runtime URL of a pod that reports Ready and is not being deleted, else None."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    status = pod.get("status") or {}
    address = status.get("podIP")
    if not is_ready(status) or not address:
        return None
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{RUNTIME_PORT}/"


class AppsApi(Protocol):
    def patch_namespaced_deployment_scale(self, name: str, namespace: str, body: Any) -> Awaitable[Any]: ...

    def read_namespaced_deployment_scale(self, name: str, namespace: str) -> Awaitable[Any]: ...


class KubernetesBackend(ReadyReplicas):
    """Replicas through ``deployments/scale``; endpoints from EndpointSlices fed to :meth:`observe`."""

    def __init__(
        self,
        apps: AppsApi,
        functions: Iterable[FunctionKey],
        *,
        probe: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        super().__init__()
        self.apps = apps
        self.functions = set(functions)
        self.probe = probe
        self._pods: dict[FunctionKey, dict[str, str]] = {}
        self._replicas: dict[FunctionKey, int] = {}
        self._slices: dict[FunctionKey, dict[str, Mapping[str, Any]]] = {}
        self._urls: dict[FunctionKey, list[str]] = {}

    def replicas(self, function: FunctionKey) -> int:
        return self._replicas.get(function, 0)

    def endpoints(self, function: FunctionKey) -> list[str]:
        return self._urls.get(function, [])

    async def scale(self, function: FunctionKey, replicas: int, *, initial: bool = False) -> None:
        namespace, name = function
        await self.apps.patch_namespaced_deployment_scale(deployment_name(name), namespace, scale_body(replicas))
        self._replicas[function] = replicas

    async def wake(self, function: FunctionKey) -> None:
        """Scale from zero to one replica if the Deployment is at zero (the autoscaler runs elsewhere)."""
        namespace, name = function
        scale = await self.apps.read_namespaced_deployment_scale(deployment_name(name), namespace)
        if not (scale.spec.replicas or 0):
            await self.scale(function, 1)

    async def observe(self, event_type: str, endpoint_slice: Mapping[str, Any]) -> None:
        """Apply one watch event (``ADDED``, ``MODIFIED``, ``DELETED``) of an EndpointSlice, as JSON."""
        function = slice_function(endpoint_slice)
        if function is None or function not in self.functions:
            return
        slices = self._slices.setdefault(function, {})
        name = str((endpoint_slice.get("metadata") or {}).get("name"))
        if event_type == "DELETED":
            slices.pop(name, None)
        else:
            slices[name] = endpoint_slice
        await self._set_urls(function, ready_urls(slices.values()))

    async def observe_pod(self, event_type: str, pod: Mapping[str, Any]) -> None:
        """Readiness from Pods instead of EndpointSlices (where those cannot list the pods' addresses, as on a
        test control plane whose fake nodes hand out loopback IPs): a pod counts once its Ready condition is
        True and, when ``probe`` is set, its ``/health`` answers."""
        function = pod_function(pod)
        if function is None or function not in self.functions:
            return
        pods = self._pods.setdefault(function, {})
        name = str((pod.get("metadata") or {}).get("name"))
        url = None if event_type == "DELETED" else pod_url(pod)
        if url is not None and self.probe is not None and pods.get(name) != url:
            if not await self.probe(url):
                url = None
        if url is None:
            pods.pop(name, None)
        else:
            pods[name] = url
        await self._set_urls(function, sorted(set(pods.values())))

    async def _set_urls(self, function: FunctionKey, urls: list[str]) -> None:
        if urls != self._urls.get(function):
            self._urls[function] = urls
            await self._notify()

    async def close(self) -> None:
        return None
