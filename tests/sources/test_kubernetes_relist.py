"""The Kubernetes source when its watch expires (410 Gone): it lists again and sends what changed meanwhile.

A real API server compacts old versions only every few minutes, so the expiry is played by a small HTTP server
speaking the list and watch protocol (discovery, a paged list with a resourceVersion, a watch stream with an
ERROR 410 event); the adapter talks to it through the real Kubernetes client. The rest of the source's behaviour
is tested against the real control plane in ``tests/k8s/test_sources.py``.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from kubernetes_asyncio import client

from ripple.api.models import DeliverySpec, EventSource
from ripple.dispatch.client import DeliveryResult
from ripple.dispatch.policy import DeliveryPolicy
from ripple.events.model import CloudEvent
from ripple.sources.delivery import SourceDelivery
from ripple.sources.kubernetes import run_kubernetes
from tests.support import eventually, serve


def configmap(name: str, uid: str, version: str, value: str) -> dict:
    return {"metadata": {"name": name, "namespace": "shop", "uid": uid, "resourceVersion": version},
            "data": {"v": value}}


class FakeApiServer:
    def __init__(self) -> None:
        self.lists = [
            ([configmap("a", "u-a", "10", "1"), configmap("b", "u-b", "11", "1")], "12"),
            ([configmap("a", "u-a", "15", "2"), configmap("c", "u-c", "16", "1")], "17"),
        ]
        self.watches: list[str] = []
        self.done = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1", self.discovery)
        app.router.add_get("/api/v1/namespaces/shop/configmaps", self.configmaps)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response({"resources": [{"name": "configmaps", "kind": "ConfigMap", "namespaced": True},
                                                {"name": "configmaps/status", "kind": "ConfigMap"}]})

    async def configmaps(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            items, version = self.lists.pop(0)
            return web.json_response({"items": items, "metadata": {"resourceVersion": version}})
        self.watches.append(request.query["resourceVersion"])
        response = web.StreamResponse()
        await response.prepare(request)
        if len(self.watches) == 1:
            gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}
            await response.write(json.dumps(gone).encode() + b"\n")
            return response
        await self.done.wait()  # the second watch stays open until the test ends
        return response


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []

    async def send(self, event: CloudEvent) -> DeliveryResult:
        self.events.append(event)
        return DeliveryResult(202)


async def test_a_410_relists_and_sends_what_changed_meanwhile():
    fake = FakeApiServer()
    source = EventSource.model_validate({
        "apiVersion": "ripple.dev/v1alpha1", "kind": "EventSource", "metadata": {"name": "cm", "namespace": "shop"},
        "spec": {"sink": {"uri": "http://unused/"}, "kubernetes": {"resources": [{"apiVersion": "v1",
                                                                                  "kind": "ConfigMap"}]}},
    })
    recorder = Recorder()
    delivery = SourceDelivery("shop/cm", recorder, DeliveryPolicy.from_spec(DeliverySpec()))
    async with serve(fake.app()) as url:
        configuration = client.Configuration(host=url)
        async with client.ApiClient(configuration) as api:
            task = asyncio.create_task(run_kubernetes(source, delivery, api))
            try:
                await eventually(lambda: len(recorder.events) >= 5, timeout=10)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                fake.done.set()
    changes = [(e.type.rsplit(".", 1)[-1], e["subject"].rsplit("/", 1)[-1], e.id) for e in recorder.events]
    assert changes == [
        ("add", "a", "u-a.10"), ("add", "b", "u-b.11"),  # the first list, announced as adds
        ("update", "a", "u-a.15"), ("add", "c", "u-c.16"),  # the relist after 410: what changed ...
        ("delete", "b", "u-b.deleted-17"),  # ... and what went away while no watch ran
    ]
    assert fake.watches == ["12", "17"]  # each watch starts at its list's version
