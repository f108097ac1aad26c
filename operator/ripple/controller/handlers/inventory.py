"""Every watched object's Ready condition, tallied into ``ripple_operator_objects`` as the watch reports it: no
handler progress, no finalizer, only the events Kopf receives anyway."""

from __future__ import annotations

from typing import Any

import kopf

from ripple.api.models import Broker, EventPolicy, EventSource, Function, Parallel, Resource, Sequence, Trigger
from ripple.controller.observe import Inventory, ready_status
from ripple.kube.resources import custom_object

__all__ = ["INVENTORY", "KINDS", "tally"]

KINDS: tuple[type[Resource], ...] = (Broker, Function, Trigger, EventSource, Sequence, Parallel, EventPolicy)
INVENTORY = Inventory(tuple(kind.__name__ for kind in KINDS))


async def tally(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    metadata = body["metadata"]
    key = (body["kind"], metadata.get("namespace") or "", metadata["name"])
    if event.get("type") == "DELETED":
        INVENTORY.gone(*key)
    else:  # ADDED, MODIFIED, or None: listed when the watch started
        INVENTORY.saw(*key, ready_status(body.get("status")))


for _kind in KINDS:
    kopf.on.event(*custom_object(_kind), id="inventory")(tally)
