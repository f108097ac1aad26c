"""The Kubernetes backend's decisions: which endpoints are ready, what a scale request says, when a wait ends."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from ripple.scaling.backend import NotReady
from ripple.scaling.kubernetes import KubernetesBackend, ready_urls, scale_body, slice_function


def endpoint_slice(name: str, *endpoints: dict, function: str = "fn", namespace: str = "shop", port: int = 8080,
                   port_name: str | None = "http") -> dict:
    return {
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"ripple.dev/function": function, "kubernetes.io/service-name": function}},
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": list(endpoints),
    }


def endpoint(address: str, **conditions: bool | None) -> dict:
    return {"addresses": [address], "conditions": conditions}


class RecordingAppsApi:
    """Stands in for AppsV1Api: records the scale requests the backend makes, answers reads from them."""

    def __init__(self, replicas: int = 0) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        self.replicas = replicas

    async def patch_namespaced_deployment_scale(self, name: str, namespace: str, body: dict) -> None:
        self.calls.append((name, namespace, body))
        self.replicas = body["spec"]["replicas"]

    async def read_namespaced_deployment_scale(self, name: str, namespace: str):
        return SimpleNamespace(spec=SimpleNamespace(replicas=self.replicas))


def test_ready_urls_keep_ready_and_unknown_endpoints_only():
    slices = [
        endpoint_slice("a", endpoint("10.0.0.1", ready=True), endpoint("10.0.0.2", ready=False),
                       endpoint("10.0.0.3", ready=None), endpoint("10.0.0.4", ready=True, terminating=True)),
        endpoint_slice("b", endpoint("fd00::5", ready=True), port=9000, port_name=None),
    ]
    assert ready_urls(slices) == ["http://10.0.0.1:8080/", "http://10.0.0.3:8080/", "http://[fd00::5]:9000/"]


def test_ready_urls_default_to_the_runtime_port():
    bare = {"metadata": {"name": "x"}, "endpoints": [{"addresses": ["127.10.0.7"]}]}
    assert ready_urls([bare]) == ["http://127.10.0.7:8080/"]


def test_slices_map_to_functions_by_label_then_service_name():
    assert slice_function(endpoint_slice("a", function="resize")) == ("shop", "resize")
    by_service = {"metadata": {"name": "x", "namespace": "n", "labels": {"kubernetes.io/service-name": "svc"}}}
    assert slice_function(by_service) == ("n", "svc")
    assert slice_function({"metadata": {"name": "x"}}) is None


async def test_scale_writes_the_deployment_scale_subresource():
    apps = RecordingAppsApi()
    backend = KubernetesBackend(apps, [("shop", "fn")])
    await backend.scale(("shop", "fn"), 3)
    assert apps.calls == [("fn", "shop", scale_body(3))] and scale_body(3) == {"spec": {"replicas": 3}}
    assert backend.replicas(("shop", "fn")) == 3


async def test_endpoints_follow_slice_events():
    backend = KubernetesBackend(RecordingAppsApi(), [("shop", "fn")])
    key = ("shop", "fn")
    await backend.observe("ADDED", endpoint_slice("a", endpoint("10.0.0.1", ready=False)))
    assert backend.endpoints(key) == []
    await backend.observe("MODIFIED", endpoint_slice("a", endpoint("10.0.0.1", ready=True)))
    await backend.observe("ADDED", endpoint_slice("b", endpoint("10.0.0.2", ready=True)))
    assert backend.endpoints(key) == ["http://10.0.0.1:8080/", "http://10.0.0.2:8080/"]
    assert {backend.pick(key) for _ in range(4)} == set(backend.endpoints(key))  # spread over both
    await backend.observe("DELETED", endpoint_slice("a"))
    assert backend.endpoints(key) == ["http://10.0.0.2:8080/"]


async def test_slices_of_other_services_are_ignored():
    backend = KubernetesBackend(RecordingAppsApi(), [("shop", "fn")])
    await backend.observe("ADDED", endpoint_slice("x", endpoint("10.0.0.9", ready=True), function="other"))
    assert backend.endpoints(("shop", "other")) == []


async def test_wait_ready_wakes_when_a_replica_becomes_ready():
    backend = KubernetesBackend(RecordingAppsApi(), [("shop", "fn")])
    waiting = asyncio.create_task(backend.wait_ready(("shop", "fn"), timeout=5))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await backend.observe("ADDED", endpoint_slice("a", endpoint("10.0.0.1", ready=True)))
    assert await waiting == "http://10.0.0.1:8080/"


async def test_wait_ready_gives_up_after_the_timeout():
    backend = KubernetesBackend(RecordingAppsApi(), [("shop", "fn")])
    with pytest.raises(NotReady, match="no ready replica of shop/fn"):
        await backend.wait_ready(("shop", "fn"), timeout=0.1)


async def test_wake_scales_from_zero_only():
    at_zero, running = RecordingAppsApi(replicas=0), RecordingAppsApi(replicas=3)
    await KubernetesBackend(at_zero, [("shop", "fn")]).wake(("shop", "fn"))
    await KubernetesBackend(running, [("shop", "fn")]).wake(("shop", "fn"))
    assert at_zero.calls == [("fn", "shop", {"spec": {"replicas": 1}})]
    assert running.calls == []  # the separate autoscaler's figure is left alone
