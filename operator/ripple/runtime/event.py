"""What a handler receives and how what it returns becomes a reply."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from ripple.events.model import CloudEvent, is_json_media_type

__all__ = ["FunctionEvent", "reply_event"]


class FunctionEvent(Mapping[str, Any]):
    """The event as a handler sees it: ``event["type"]`` and ``event.get("ext")`` read attributes and
    extensions; ``event.data`` is the payload, decoded from JSON when the content type says JSON."""

    def __init__(self, event: CloudEvent) -> None:
        self.cloudevent = event

    def __getitem__(self, name: str) -> Any:
        return self.cloudevent.attributes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.cloudevent.attributes)

    def __len__(self) -> int:
        return len(self.cloudevent.attributes)

    @property
    def data(self) -> Any:
        return self.cloudevent.json_data()

    @property
    def raw_data(self) -> bytes | None:
        return self.cloudevent.data

    def __repr__(self) -> str:
        return f"FunctionEvent({dict(self.cloudevent.attributes)!r}, data={self.data!r})"


def reply_event(value: Any) -> CloudEvent:
    """Turn a handler's return value into a CloudEvent, filling ``id`` and ``specversion``.

    Accepts a ``dict`` (``type``, ``source`` and usually ``data``), Ripple's own event types, or any object shaped
    like the CloudEvents SDK's (``get_attributes()`` and ``get_data()`` or ``data``).
    """
    if isinstance(value, CloudEvent):
        return value
    if isinstance(value, FunctionEvent):
        return value.cloudevent
    if isinstance(value, Mapping):
        attributes = {k: v for k, v in value.items() if k not in ("data", "data_base64")}
        data = value.get("data")
    elif hasattr(value, "get_attributes"):
        attributes = dict(value.get_attributes())
        data = value.get_data() if hasattr(value, "get_data") else value.data
    else:
        raise TypeError(f"a handler must return None, a dict or a CloudEvent, not {type(value).__name__}")
    attributes.setdefault("specversion", "1.0")
    attributes.setdefault("id", str(uuid.uuid4()))
    if "time" in attributes and hasattr(attributes["time"], "isoformat"):
        attributes["time"] = attributes["time"].isoformat()
    payload: bytes | None
    if data is None:
        payload = None
    elif isinstance(data, bytes):
        payload = data
    elif isinstance(data, str) and not is_json_media_type(attributes.get("datacontenttype")):
        attributes.setdefault("datacontenttype", "text/plain; charset=utf-8")
        payload = data.encode()
    else:
        attributes.setdefault("datacontenttype", "application/json")
        payload = json.dumps(data, separators=(",", ":"), default=str).encode()
    return CloudEvent.create(attributes, payload)

