"""What each trigger, and each hop of a Sequence or Parallel, did with each event, kept in a bounded stream so
that one id answers "where did my event go?".

A record is one settled attempt (delivered, retried, replied, routed to an error hop, dead-lettered, ended the
chain) as a small JSON object, published on ``ripplerecords.<digest of the root id>``: an event's own id, or for
the steps of a Sequence or Parallel the id of the event that entered it, so every record of one root, across every
trigger and flow it went through, reads back from one subject; a record of a stored reply names the reply's id,
whose records are read the same way. Records are observations, not events: they are sent without waiting for
JetStream's acknowledgement (the event's own settling is what is acknowledged after store), and the stream drops
the oldest first, so keeping them costs the data plane nothing it must wait for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
import orjson
from nats.js.api import DeliverPolicy, DiscardPolicy, StorageType, StreamConfig

from ripple.store.jetstream import EventStore

__all__ = [
    "RECORDS_MAX_AGE",
    "RECORDS_MAX_BYTES",
    "RECORDS_PER_ROOT",
    "RECORDS_STREAM",
    "RecordSettings",
    "ensure_records_stream",
    "publish_record",
    "read_records",
    "record_subject",
]

log = logging.getLogger(__name__)

RECORDS_STREAM = "RIPPLE_RECORDS"
RECORDS_MAX_AGE = 24 * 3600.0
"""Seconds a record is kept."""
RECORDS_MAX_BYTES = 256 * 1024 * 1024
RECORDS_PER_ROOT = 1000
"""Records kept per root id (the oldest go first), so that one hot id cannot take the stream."""
READ_TIMEOUT = 2.0


@dataclass(frozen=True)
class RecordSettings:
    """How much delivery history the records stream keeps (the oldest records go first)."""

    max_age: float = RECORDS_MAX_AGE
    """Seconds a record is kept."""
    max_bytes: int = RECORDS_MAX_BYTES
    """Bytes the whole stream may hold."""

    def __post_init__(self) -> None:
        if self.max_age <= 0 or self.max_bytes <= 0:
            raise ValueError("delivery records need a positive age and size (seconds, bytes)")


def record_subject(root: str) -> str:
    digest = hashlib.sha256(root.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"ripplerecords.{digest}"


async def ensure_records_stream(store: EventStore, settings: RecordSettings | None = None) -> None:
    settings = settings or RecordSettings()
    config = StreamConfig(
        name=RECORDS_STREAM,
        subjects=["ripplerecords.*"],
        storage=StorageType.FILE,
        max_age=settings.max_age,
        max_bytes=settings.max_bytes,
        max_msgs_per_subject=RECORDS_PER_ROOT,
        discard=DiscardPolicy.OLD,
        description="Ripple: what each trigger and each hop of a Sequence or Parallel did with each event",
        num_replicas=store.own_replicas(),
    )
    try:
        await store.js.stream_info(RECORDS_STREAM)
    except nats.js.errors.NotFoundError:
        await store.js.add_stream(config)
        return
    await store.js.update_stream(config)


async def publish_record(store: EventStore, root: str, record: dict[str, Any]) -> None:
    """Send one record; a lost connection loses the record, never the event it describes."""
    with contextlib.suppress(nats.errors.Error, OSError):
        await store.nc.publish(record_subject(root), orjson.dumps(record))


async def read_records(store: EventStore, root: str, *, limit: int = RECORDS_PER_ROOT) -> list[dict[str, Any]]:
    """Every record kept for ``root``, oldest first."""
    subject = record_subject(root)
    try:
        info = await store.js.stream_info(RECORDS_STREAM, subjects_filter=subject)
    except nats.js.errors.NotFoundError:
        return []
    count = (info.state.subjects or {}).get(subject, 0)
    if not count:
        return []
    found: list[dict[str, Any]] = []
    subscription = await store.js.subscribe(subject, stream=RECORDS_STREAM, ordered_consumer=True,
                                            deliver_policy=DeliverPolicy.ALL)
    try:
        while len(found) < min(count, limit):
            try:
                msg = await subscription.next_msg(timeout=READ_TIMEOUT)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            with contextlib.suppress(ValueError):
                found.append(json.loads(msg.data))
    finally:
        with contextlib.suppress(nats.errors.Error):
            await subscription.unsubscribe()
    return found
