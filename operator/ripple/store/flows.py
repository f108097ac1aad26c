"""How an event enters a Sequence or Parallel, and how each hand-off between their hops is named and stamped.

Every hand-off is a JetStream message on the next hop's subject. Its message id comes from what caused it (the
entering event's source and id, or the stream sequence of the message the previous hop was handling), so a hop
that crashes after storing and before acknowledging stores nothing twice when its input is redelivered. The
event gets a stable id as well (the root's id, the flow and the step), so a function that keeps idempotency keys
sees the same id when a step is run again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from nats.js.api import PubAck

from ripple.events.extensions import (
    ARRIVAL_TIME,
    BRANCH,
    FANOUT,
    HOPS,
    PARALLEL,
    ROOT,
    SEQUENCE,
    STEP,
    in_trace,
    now_rfc3339,
)
from ripple.events.model import MAX_ID_BYTES, AttributeValue, CloudEvent
from ripple.store import subjects
from ripple.store.jetstream import MSG_ID_HEADER, EventStore, dedup_id

__all__ = [
    "TRACE_CONTEXT",
    "Entry",
    "FlowKind",
    "derived_id",
    "entry_event",
    "handed_off",
    "hop_msg_id",
    "root_of",
    "store_entries",
    "store_hand_off",
]

FlowKind = Literal["Sequence", "Parallel"]
TRACE_CONTEXT = ("traceparent", "tracestate")
"""The distributed-tracing extension: every hand-off keeps the root's, so one trace spans the whole flow."""


@dataclass(frozen=True)
class Entry:
    """Where events sent to a Sequence or Parallel are stored: its first hop, in its broker's stream."""

    kind: FlowKind
    namespace: str
    name: str
    broker: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def hop(self) -> str:
        return subjects.sequence_step(self.name, 0) if self.kind == "Sequence" else subjects.parallel_entry(self.name)

    @property
    def subject(self) -> str:
        return subjects.hop_subject(self.namespace, self.broker, self.hop)


def root_of(event: CloudEvent) -> str:
    """The id of the event that started the flows ``event`` is part of (its own id when it starts one)."""
    root = event.get(ROOT)
    return root if isinstance(root, str) and root else event.id


def entry_event(event: CloudEvent, entry: Entry) -> CloudEvent:
    """``event`` as its flow's first hop stores it: flow, step or branch, and root set; the other flow's cleared."""
    changes: dict[str, AttributeValue | None] = {ROOT: root_of(event), SEQUENCE: None, STEP: None, PARALLEL: None,
                                                 BRANCH: None}
    if entry.kind == "Sequence":
        changes.update({SEQUENCE: entry.key, STEP: 0})
    else:
        changes[PARALLEL] = entry.key
    return event.with_attributes(**changes)


def derived_id(root: str, flow: str, position: str) -> str:
    """The stable id of what a flow's hop hands on: readable when it fits an id, else a digest of the same."""
    candidate = f"{root}#{flow}.{position}"
    if len(candidate.encode("utf-8", "surrogatepass")) <= MAX_ID_BYTES:
        return candidate
    return hashlib.sha256(candidate.encode("utf-8", "surrogatepass")).hexdigest()


def handed_off(parent: CloudEvent, child: CloudEvent, *, flow: str, position: str,
               flow_attributes: dict[str, AttributeValue | None]) -> CloudEvent:
    """``child`` (a step's reply) as the next hop stores it: a stable id, the parent's root, budgets and trace
    context, and the flow attributes given (``None`` removes one)."""
    root = root_of(parent)
    changes: dict[str, AttributeValue | None] = {
        "id": derived_id(root, flow, position),
        ROOT: root,
        ARRIVAL_TIME: now_rfc3339(),
        HOPS: parent.get(HOPS),
        FANOUT: parent.get(FANOUT),
        **flow_attributes,
    }
    # The child stays in its own context when that is in the parent's trace (the reply of a traced step).
    return in_trace(child, parent.get(TRACE_CONTEXT[0]), parent.get(TRACE_CONTEXT[1])).with_attributes(**changes)


def hop_msg_id(hop: str, cause: str) -> str:
    """The message id of a hop's input: its hop and what caused it, so a re-sent hand-off is stored once."""
    return f"hop:{hop}:{cause}"


async def store_hand_off(store: EventStore, namespace: str, broker: str, hop: str, payload: bytes,
                         cause: str) -> PubAck:
    """Store an event (in its stored form) as ``hop``'s input; ``cause`` names the message that led to it, so
    that handing the same message on again stores nothing twice. Errors as for :meth:`EventStore.publish`."""
    return await store.publish_stored(subjects.hop_subject(namespace, broker, hop), payload,
                                      {MSG_ID_HEADER: hop_msg_id(hop, cause)})


async def store_entries(store: EventStore, entry: Entry, events: Sequence[CloudEvent]) -> list[PubAck]:
    """Store events sent to a Sequence or Parallel (all or an error, as :meth:`EventStore.publish_events`)."""
    messages = []
    for event in events:
        stored = entry_event(event, entry).to_json_bytes()
        store.check_size(stored)
        messages.append((entry.subject, stored, {MSG_ID_HEADER: hop_msg_id(entry.hop, dedup_id(event))}))
    return await store.publish_many(messages)
