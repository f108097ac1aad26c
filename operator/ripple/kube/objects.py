"""Ripple's custom objects as typed models: parsing one, and following all of a kind through a watch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from ripple.api.loading import format_validation_error
from ripple.api.models import Resource
from ripple.kube.resources import custom_object

__all__ = ["InvalidSpec", "Key", "RippleObjects", "as_resource", "parse", "watch_forever"]

log = logging.getLogger(__name__)
R = TypeVar("R", bound=Resource)
Key = tuple[str, str]


class InvalidSpec(ValueError):
    """A resource the schema let through but the models refuse (a rule the CRD cannot express)."""


def parse(model: type[R], body: Mapping[str, Any]) -> R:
    metadata = body.get("metadata") or {}
    doc = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace") or "default"},
        "spec": dict(body.get("spec") or {}),
    }
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise InvalidSpec(format_validation_error(exc)) from None


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


class RippleObjects:
    """The current Brokers, Triggers or Functions of the cluster, kept up to date by a watch."""

    def __init__(self, api: client.ApiClient, model: type[Resource],
                 on_change: Callable[[], None] = lambda: None,
                 wanted: Callable[[dict[str, Any]], bool] = lambda obj: True, *, status_matters: bool = False) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.wanted = wanted
        self.model = model
        self.items: dict[Key, Resource] = {}
        self.addresses: dict[Key, str] = {}
        """``status.address.url`` of the objects that have one (Brokers, Sequences, Parallels)."""
        self.statuses: dict[Key, dict[str, Any]] = {}
        """Each object's ``status`` as the operator wrote it (an EventPolicy's token digests)."""
        self.status_matters = status_matters
        """Whether a change of status alone is a change (an EventPolicy's digests); else only the model counts."""
        self.on_change = on_change

    async def _event(self, event_type: str, obj: dict[str, Any]) -> None:
        metadata = obj.get("metadata") or {}
        key = (metadata.get("namespace"), metadata.get("name"))
        if event_type == "DELETED" or not self.wanted(obj):
            self.addresses.pop(key, None)  # type: ignore[arg-type]
            self.statuses.pop(key, None)  # type: ignore[arg-type]
            if self.items.pop(key, None) is None:  # type: ignore[arg-type]
                return
        else:
            url = ((obj.get("status") or {}).get("address") or {}).get("url")
            if isinstance(url, str):
                self.addresses[key] = url  # type: ignore[index]
            status = obj.get("status") or {}
            changed_status = self.status_matters and self.statuses.get(key) != status  # type: ignore[arg-type]
            self.statuses[key] = dict(status)  # type: ignore[index]
            resource = as_resource(self.model, obj)
            if resource is None or (self.items.get(key) == resource and not changed_status):  # type: ignore[arg-type]
                return
            self.items[key] = resource  # type: ignore[index]
        self.on_change()

    async def run(self) -> None:
        list_all = self.custom.list_cluster_custom_object
        await watch_forever(list_all, self._event, lambda o: o, *custom_object(self.model))
