"""The Kubernetes source: adds, updates and deletes of the watched kinds become events.

Each kind (``spec.kubernetes.resources``) in each namespace (``spec.kubernetes.namespaces``, else the source's
own; a cluster-scoped kind is watched once) is listed, then watched from the list's ``resourceVersion``, as an
informer does: the objects the list returns are announced as adds, a watch that ends is resumed from the last
version seen (bookmarks keep it current), and a watch answered ``410 Gone`` (the version was compacted away) is
replaced by a new list, compared with what was known so that changes missed in between still become events.

Events: type ``dev.ripple.sources.kubernetes.{add,update,delete}``; ``id`` ``<uid>.<resourceVersion>``, the same
for every adapter that sees the change, so the broker stores it once; ``subject`` the object's API path
(``/api/v1/namespaces/<ns>/configmaps/<name>``, ``/apis/<group>/<version>/namespaces/<ns>/<plural>/<name>``);
data the whole object (``mode: Resource``) or its reference (``mode: Reference``). Changes of one object are
sent in the order the API server made them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from ripple.api.models import EventSource, ResourceSelector
from ripple.events.extensions import now_rfc3339
from ripple.events.model import CloudEvent
from ripple.sources.delivery import SourceDelivery
from ripple.sources.webhook import source_path

__all__ = [
    "EVENT_TYPES",
    "WATCH_SECONDS",
    "KindNotFound",
    "WatchedKind",
    "discover",
    "kubernetes_event",
    "run_kubernetes",
]

log = logging.getLogger(__name__)

EVENT_TYPES = {
    "add": "dev.ripple.sources.kubernetes.add",
    "update": "dev.ripple.sources.kubernetes.update",
    "delete": "dev.ripple.sources.kubernetes.delete",
}
WATCH_SECONDS = 240
"""How long the API server keeps one watch open before the adapter resumes it."""
REQUEST_TIMEOUT = 30.0
PAGE_SIZE = 500
_WATCH_CHANGE = {"ADDED": "add", "MODIFIED": "update", "DELETED": "delete"}


class KindNotFound(Exception):
    """The API server does not serve the kind a selector names."""


@dataclass(frozen=True)
class WatchedKind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def collection(self, namespace: str | None) -> str:
        root = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{root}/namespaces/{namespace}/{self.plural}" if namespace and self.namespaced \
            else f"{root}/{self.plural}"

    def object_path(self, obj: Mapping[str, Any]) -> str:
        metadata = obj.get("metadata") or {}
        return f"{self.collection(metadata.get('namespace'))}/{metadata.get('name', '')}"


async def discover(api: client.ApiClient, selector: ResourceSelector) -> WatchedKind:
    """The plural and scope of a selector's kind, from the API server's discovery document."""
    root = "/api/v1" if selector.api_version == "v1" else f"/apis/{selector.api_version}"
    try:
        document = await _get_json(api, root, [])
    except ApiException as exc:
        if exc.status == 404:
            raise KindNotFound(f"the API server does not serve {selector.api_version}") from None
        raise
    for resource in document.get("resources", []):
        if resource.get("kind") == selector.kind and "/" not in resource.get("name", "/"):
            return WatchedKind(selector.api_version, selector.kind, resource["name"], bool(resource.get("namespaced")))
    raise KindNotFound(f"the API server serves no kind {selector.kind} in {selector.api_version}")


def kubernetes_event(source: EventSource, kind: WatchedKind, change: str, obj: Mapping[str, Any],
                     *, version: str | None = None) -> CloudEvent:
    """The event of one change; ``version`` overrides the object's resourceVersion in the id (a delete that
    was missed while no watch ran has no version of its own)."""
    spec = source.spec.kubernetes
    assert spec is not None
    metadata = obj.get("metadata") or {}
    uid, resource_version = metadata.get("uid", ""), version or metadata.get("resourceVersion", "")
    if spec.mode == "Resource":
        data = dict(obj)
        data.setdefault("apiVersion", kind.api_version)
        data.setdefault("kind", kind.kind)
    else:
        data = {"apiVersion": kind.api_version, "kind": kind.kind, "name": metadata.get("name"), "uid": uid,
                "resourceVersion": metadata.get("resourceVersion")}
        if metadata.get("namespace"):
            data["namespace"] = metadata["namespace"]
    attributes = {
        "specversion": "1.0",
        "id": f"{uid}.{resource_version}",
        "source": source_path(source.namespace, source.name),
        "type": EVENT_TYPES[change],
        "subject": kind.object_path(obj),
        "time": now_rfc3339(),
        "datacontenttype": "application/json",
    }
    overrides = source.spec.ce_overrides
    if overrides is not None:
        attributes.update(overrides.extensions)
    return CloudEvent.create(attributes, orjson.dumps(data))


async def run_kubernetes(source: EventSource, delivery: SourceDelivery, api: client.ApiClient) -> None:
    """Watch every selected kind in every namespace until cancelled; a watch that fails ends the run."""
    spec = source.spec.kubernetes
    assert spec is not None, "run_kubernetes runs a Kubernetes source"
    namespaces = spec.namespaces or [source.namespace]
    watches = []
    for selector in spec.resources:
        kind = await discover(api, selector)
        for namespace in (namespaces if kind.namespaced else [None]):
            watches.append(_Watch(source, delivery, api, kind, namespace, selector.label_selector).run())
    tasks = [asyncio.ensure_future(watch) for watch in watches]
    try:
        # The first watch to fail ends the run with its own error (not an ExceptionGroup), which the
        # supervisor reports and restarts from: a Forbidden says 403 where a person looks.
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Watch:
    """One kind in one namespace: list, then watch, relisting on 410 with the difference sent as events."""

    def __init__(self, source: EventSource, delivery: SourceDelivery, api: client.ApiClient, kind: WatchedKind,
                 namespace: str | None, label_selector: str | None) -> None:
        self.source, self.delivery, self.api, self.kind = source, delivery, api, kind
        self.path = kind.collection(namespace)
        self.selector = label_selector
        self.known: dict[str, dict[str, Any]] = {}
        """The objects seen, by uid: compared with a relist to find what changed while no watch ran."""

    async def run(self) -> None:
        version = await self._relist()
        while True:
            try:
                async for change, obj in self._watch(version):
                    metadata = obj.get("metadata") or {}
                    version = metadata.get("resourceVersion") or version
                    if change == "bookmark":
                        continue
                    await self._send(change, obj)
            except _Gone:
                log.info("source %s: watch of %s expired (410); listing again", self.delivery.name, self.path)
                version = await self._relist()

    async def _send(self, change: str, obj: dict[str, Any], *, version: str | None = None) -> None:
        uid = (obj.get("metadata") or {}).get("uid", "")
        if change == "delete":
            self.known.pop(uid, None)
        else:
            self.known[uid] = obj
        await self.delivery.deliver(kubernetes_event(self.source, self.kind, change, obj, version=version))

    async def _relist(self) -> str:
        listed: dict[str, dict[str, Any]] = {}
        params: list[tuple[str, Any]] = [("limit", PAGE_SIZE)]
        if self.selector:
            params.append(("labelSelector", self.selector))
        token: str | None = None
        while True:
            page = await _get_json(self.api, self.path, [*params, *([("continue", token)] if token else [])])
            for obj in page.get("items", []):
                listed[obj["metadata"]["uid"]] = obj
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                version: str = page["metadata"]["resourceVersion"]
                break
        for uid, obj in listed.items():
            before = self.known.get(uid)
            if before is None:
                await self._send("add", obj)
            elif before["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                await self._send("update", obj)
        for uid in [uid for uid in self.known if uid not in listed]:
            # Deleted while no watch ran: its last version is unknown, so the list's version stands in for it.
            await self._send("delete", self.known[uid], version=f"deleted-{version}")
        return version

    async def _watch(self, version: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        params: list[tuple[str, Any]] = [("watch", "true"), ("resourceVersion", version),
                                         ("allowWatchBookmarks", "true"), ("timeoutSeconds", WATCH_SECONDS)]
        if self.selector:
            params.append(("labelSelector", self.selector))
        response = await _get(self.api, self.path, params, WATCH_SECONDS + REQUEST_TIMEOUT)
        async with response:
            if response.status == 410:
                raise _Gone()
            await _raise_for_status(response, self.path)
            while True:
                line = await response.content.readline()
                if not line:
                    return
                if not line.strip():
                    continue
                item = orjson.loads(line)
                kind, obj = item.get("type"), item.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone()
                    raise ApiException(status=obj.get("code", 0), reason=obj.get("message", "watch error"))
                if kind == "BOOKMARK":
                    yield "bookmark", obj
                elif kind in _WATCH_CHANGE:
                    yield _WATCH_CHANGE[kind], obj


class _Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


async def _get_json(api: client.ApiClient, path: str, params: list[tuple[str, Any]]) -> dict[str, Any]:
    response = await _get(api, path, params, REQUEST_TIMEOUT)
    async with response:
        await _raise_for_status(response, path)
        body: dict[str, Any] = orjson.loads(await response.read())
        return body


async def _get(api: client.ApiClient, path: str, params: list[tuple[str, Any]], timeout: float) -> Any:
    """The API server's raw answer (an aiohttp response, streamed): the client neither reads nor checks it, so
    every caller goes through :func:`_raise_for_status`."""
    return await api.call_api(path, "GET", query_params=params, auth_settings=["BearerToken"],
                              _preload_content=False, _return_http_data_only=True, _request_timeout=timeout)


async def _raise_for_status(response: Any, path: str) -> None:
    """An answer other than 2xx as :class:`ApiException`, with the API server's own message."""
    if response.status < 400:
        return
    text = (await response.content.read(4096)).decode(errors="replace")
    try:
        message = orjson.loads(text).get("message", text)
    except orjson.JSONDecodeError:
        message = text
    raise ApiException(status=response.status, reason=f"GET {path}: {response.status} {message}")
