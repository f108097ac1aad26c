"""An event's history: the event as its broker stored it, the records of what every trigger did with it, and
its replies' histories (``ripple events show``, the console's event view)."""

from __future__ import annotations

import contextlib
from typing import Any

import nats.errors
import nats.js.errors

from ripple.events.http import structured_document
from ripple.events.model import CloudEvent, EventError
from ripple.store.jetstream import EventStore
from ripple.store.records import read_records

__all__ = ["MAX_REPLIES", "History", "read_history"]

MAX_REPLIES = 50
"""Replies followed from one event (their own replies included), so that a reply storm prints a page, not a day."""


class History:
    """One event as stored, the records of what every trigger did with it, and the histories of its replies."""

    def __init__(self, event_id: str, event: CloudEvent | None, records: list[dict[str, Any]]) -> None:
        self.event_id = event_id
        self.event = event
        self.records = records
        self.replies: list[History] = []

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.event_id, "event": None if self.event is None else structured_document(self.event),
                "records": self.records, "replies": [reply.as_dict() for reply in self.replies]}


async def _stored_event(store: EventStore, records: list[dict[str, Any]], event_id: str) -> CloudEvent | None:
    """The event as its broker stored it, read back by the stream sequence a record names."""
    for record in records:
        if record.get("id") != event_id or not record.get("stream") or not record.get("seq"):
            continue
        with contextlib.suppress(nats.js.errors.NotFoundError, nats.errors.Error, EventError, ValueError):
            raw = await store.js.get_msg(record["stream"], int(record["seq"]))
            return CloudEvent.from_json_bytes(raw.data or b"")
    return None


async def read_history(store: EventStore, event_id: str) -> History:
    """``event_id``'s history, and its replies' (breadth first, at most :data:`MAX_REPLIES`)."""
    root = event_id.split("#", 1)[0]  # a Sequence step's id (``root#flow.step``) is kept with its root's
    records = await read_records(store, root)
    history = History(event_id, await _stored_event(store, records, event_id), records)
    queue, seen = [history], {event_id}
    while queue:
        current = queue.pop(0)
        for record in current.records:
            reply = (record.get("reply") or {}).get("id")
            if not isinstance(reply, str) or reply in seen or len(seen) > MAX_REPLIES:
                continue
            seen.add(reply)
            reply_records = await read_records(store, reply)
            child = History(reply, await _stored_event(store, reply_records, reply), reply_records)
            current.replies.append(child)
            queue.append(child)
    return history
