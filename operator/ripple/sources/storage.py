"""The object-storage source: objects created and deleted in an S3-compatible bucket become events.

* ``mode: poll`` (default): ``ListObjectsV2`` under ``prefix`` every ``pollInterval``, compared with a checkpoint
  of every key and ETag kept in JetStream KV. A new object or a new ETag is ``created``, a key gone is ``deleted``.
  The checkpoint is written only after every event of the poll was accepted (or dead-lettered), so a restart
  neither misses an object (one uploaded while the source was down arrives once it starts) nor repeats one (a
  crash between the sends and the checkpoint re-sends with the same ids, which the broker's dedup absorbs). A new
  source takes the bucket as it is as its starting point unless ``initialListing: emit``.
* ``mode: notifications``: an HTTP endpoint (served like a webhook, with its signature schemes) accepting S3
  event notifications as AWS sends them (directly, or wrapped by SNS), as MinIO's webhook target does, and as
  versitygw does; ``s3:ObjectCreated:Put`` and ``ObjectCreated:Put`` alike.

Events: ``dev.ripple.sources.storage.object.created`` / ``.deleted``; ``subject`` the key; data ``{"bucket",
"key", "size", "etag", "contentType"?, "versionId"?}``; ``id`` a hash of (bucket, key, ETag) (and the change, for
deletes), the same from a poll and from a notification.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import orjson

from ripple.api.durations import seconds
from ripple.api.models import EventSource
from ripple.events.extensions import now_rfc3339
from ripple.events.model import CloudEvent, EventError, try_json
from ripple.sources.delivery import SourceDelivery
from ripple.sources.webhook import source_path

__all__ = [
    "CHECKPOINT_BUCKET",
    "EVENT_TYPES",
    "ObjectInfo",
    "StorageStatus",
    "checkpoint_bucket",
    "list_objects",
    "notification_events",
    "object_event",
    "object_id",
    "poll_once",
    "run_storage_poll",
]

log = logging.getLogger(__name__)

EVENT_TYPES = {"created": "dev.ripple.sources.storage.object.created",
               "deleted": "dev.ripple.sources.storage.object.deleted"}
CHECKPOINT_BUCKET = "ripple-storage-checkpoints"
Checkpoints = Any
"""A JetStream KeyValue bucket (``nats.js.kv.KeyValue``)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    etag: str
    size: int | None = None
    content_type: str | None = None
    version_id: str | None = None


@dataclass
class StorageStatus:
    """What status shows of a storage source."""

    objects: int | None = None
    """Objects in the last checkpoint."""
    last_checkpoint: str | None = None
    """When the checkpoint was last written (RFC 3339)."""


def object_id(bucket: str, change: str, obj: ObjectInfo) -> str:
    """The event id of one change of one object version: the same from a poll and from a notification."""
    etag = obj.etag.strip('"')
    return hashlib.sha256(f"{bucket}\x1f{obj.key}\x1f{etag}\x1f{change}".encode()).hexdigest()


def object_event(source: EventSource, bucket: str, change: str, obj: ObjectInfo) -> CloudEvent:
    etag = obj.etag.strip('"')
    ident = object_id(bucket, change, obj)
    data: dict[str, Any] = {"bucket": bucket, "key": obj.key, "size": obj.size, "etag": etag}
    if obj.content_type:
        data["contentType"] = obj.content_type
    if obj.version_id:
        data["versionId"] = obj.version_id
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": ident,
        "source": source_path(source.namespace, source.name),
        "type": EVENT_TYPES[change],
        "subject": obj.key,
        "datacontenttype": "application/json",
    }
    overrides = source.spec.ce_overrides
    if overrides is not None:
        attributes.update(overrides.extensions)
    return CloudEvent.create(attributes, orjson.dumps(data))


# --- notifications ----------------------------------------------------------------------------------------------


def _records(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, dict) and document.get("Type") == "Notification" and isinstance(document.get("Message"),
                                                                                             str):
        document = try_json(document["Message"].encode())  # SNS wraps the S3 notification as a string
    if not isinstance(document, dict):
        raise EventError("an S3 event notification is a JSON object with Records")
    if document.get("Event") == "s3:TestEvent" or document.get("Type") == "SubscriptionConfirmation":
        return []
    records = document.get("Records")
    if not isinstance(records, list):
        raise EventError("an S3 event notification is a JSON object with Records")
    return [r for r in records if isinstance(r, dict)]


def _change(event_name: str) -> str | None:
    name = event_name.removeprefix("s3:")
    if name.startswith("ObjectCreated:"):
        return "created"
    if name.startswith("ObjectRemoved:"):
        return "deleted"
    return None


def notification_events(source: EventSource, headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
    """The events of one notification request (AWS, SNS-wrapped AWS, MinIO or versitygw body)."""
    spec = source.spec.storage
    assert spec is not None
    document = try_json(body)
    if document is None:
        raise EventError("an S3 event notification must be JSON")
    events = []
    for index, record in enumerate(_records(document)):
        change = _change(str(record.get("eventName", "")))
        if change is None or change not in spec.events:
            continue
        s3 = record.get("s3")
        bucket_info = s3.get("bucket") if isinstance(s3, dict) else None
        obj = s3.get("object") if isinstance(s3, dict) else None
        if not isinstance(bucket_info, dict) or not isinstance(obj, dict) or not isinstance(obj.get("key"), str):
            raise EventError(f"Records[{index}]: an object notification needs s3.bucket.name and s3.object.key")
        bucket = bucket_info.get("name")
        if bucket != spec.bucket:
            continue
        key = unquote_plus(obj["key"])  # S3 notifications URL-encode the key
        if not key.startswith(spec.prefix):
            continue
        size = obj.get("size")
        info = ObjectInfo(key, str(obj.get("eTag") or obj.get("sequencer") or ""),
                          size if isinstance(size, int) else None, obj.get("contentType"), obj.get("versionId"))
        events.append(object_event(source, bucket, change, info))
    return events


# --- polling ----------------------------------------------------------------------------------------------------


async def list_objects(client: Any, bucket: str, prefix: str) -> dict[str, ObjectInfo]:
    """Every object under ``prefix`` (all pages of ListObjectsV2)."""
    found: dict[str, ObjectInfo] = {}
    paginator = client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = ObjectInfo(item["Key"], str(item.get("ETag", "")).strip('"'), item.get("Size"))
    return found


def _checkpoint_key(source: EventSource) -> str:
    return hashlib.sha256(f"{source.namespace}/{source.name}".encode()).hexdigest()


async def _load(kv: Checkpoints, key: str) -> dict[str, str] | None:
    import nats.js.errors

    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None
    if not entry.value:
        return None
    loaded: dict[str, str] = orjson.loads(zlib.decompress(entry.value))
    return loaded


async def _save(kv: Checkpoints, key: str, objects: Mapping[str, ObjectInfo]) -> None:
    # Compressed: keys and ETags of 10,000 objects take ~100 KB this way, well inside a NATS message.
    await kv.put(key, zlib.compress(orjson.dumps({k: o.etag for k, o in objects.items()})))


async def poll_once(source: EventSource, delivery: SourceDelivery, client: Any, kv: Checkpoints,
                    status: StorageStatus) -> int:
    """One poll: list, compare with the checkpoint, send the differences, then write the checkpoint. The number
    of events sent."""
    spec = source.spec.storage
    assert spec is not None
    key = _checkpoint_key(source)
    current = await list_objects(client, spec.bucket, spec.prefix)
    previous = await _load(kv, key)
    if previous is None and spec.initial_listing == "skip":
        await _save(kv, key, current)
        status.objects, status.last_checkpoint = len(current), now_rfc3339()
        return 0
    previous = previous or {}
    changes: list[tuple[str, ObjectInfo]] = []
    if "created" in spec.events:
        changes += [("created", obj) for name, obj in current.items() if previous.get(name) != obj.etag]
    if "deleted" in spec.events:
        changes += [("deleted", ObjectInfo(name, etag)) for name, etag in previous.items() if name not in current]
    for change, obj in changes:
        try:
            event = object_event(source, spec.bucket, change, obj)
        except EventError as exc:  # a key no event can carry (control characters): kept, so the poll goes on
            await delivery.keep_undecodable(obj.key.encode(errors="replace"), f"object {change}: {exc}",
                                            ident=object_id(spec.bucket, change, obj))
            continue
        await delivery.deliver(event)
    if changes or previous.keys() != current.keys():
        await _save(kv, key, current)
    status.objects = len(current)
    status.last_checkpoint = now_rfc3339()
    return len(changes)


async def checkpoint_bucket(js: Any) -> Checkpoints:
    """The KV bucket of storage checkpoints, created on first use (``js``: a nats-py JetStream context)."""
    import nats.js.errors

    try:
        return await js.key_value(CHECKPOINT_BUCKET)
    except nats.js.errors.BucketNotFoundError:
        return await js.create_key_value(bucket=CHECKPOINT_BUCKET, history=1)


async def run_storage_poll(source: EventSource, delivery: SourceDelivery, client_factory: Callable[[], Any],
                           checkpoints: Callable[[], Awaitable[Checkpoints]], status: StorageStatus) -> None:
    """Poll until cancelled; an error ends the run (its supervisor restarts it, the checkpoint holds)."""
    spec = source.spec.storage
    assert spec is not None
    interval = seconds(spec.poll_interval)
    kv = await checkpoints()
    async with client_factory() as client:
        while True:
            sent = await poll_once(source, delivery, client, kv, status)
            if sent:
                log.info("source %s: %d object changes sent", delivery.name, sent)
            await asyncio.sleep(interval)
