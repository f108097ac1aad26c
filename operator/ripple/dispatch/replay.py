"""Replays: a broker's stored events re-delivered to one trigger, through its filter, in order, at a bounded rate.

A replay reads the broker's stream by sequence (no consumer is made, so the trigger's live consumer keeps its
place) from a start (a sequence, or the first event stored at or after a time, found by bisecting the stream),
up to an end (a sequence, a time, or what the stream held when the replay began). Each event the trigger's filter
passes is stored again on the trigger's own redrive subject, marked with ``ripplereplay`` and with a fresh arrival
time (a replayed event's ``maxEventAge`` counts from its replay), under the message id ``replay:<name>:<seq>``:
a replay that is run again within the broker's dedup window stores nothing twice. The trigger's worker then
delivers it as any event: retries, replies, dead letters.

``ripple replay`` runs one from the command line; ``Trigger.spec.replay`` has the dispatcher run it once, with
its progress in the key-value bucket ``ripple-replays``, so that a dispatcher that stops mid-way is taken over
from where it was, and a replay that finished is not run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import nats.errors
import nats.js.errors
from nats.js.api import KeyValueConfig, RawStreamMsg, StorageType
from nats.js.kv import KeyValue

from ripple.api.durations import parse_duration
from ripple.api.models import Trigger
from ripple.defaults import REPLAY_RATE
from ripple.events.extensions import REPLAY, parse_rfc3339, stamp_arrival
from ripple.events.model import CloudEvent, EventError
from ripple.store import EventStore, StoreUnavailable, subjects

__all__ = [
    "DEFAULT_RATE",
    "REPLAY_BUCKET",
    "ReplayProgress",
    "ReplayWindow",
    "declared_replay_key",
    "first_seq_at",
    "replay",
    "run_declared_replay",
    "since_to_start",
]

log = logging.getLogger(__name__)

DEFAULT_RATE = REPLAY_RATE
REPLAY_BUCKET = "ripple-replays"
STALE_AFTER = 30.0
"""Seconds without progress after which another dispatcher takes a declared replay over."""
MARK_EVERY = 5.0
"""Seconds between writes of a declared replay's progress."""
STORE_RETRIES = 20


@dataclass(frozen=True)
class ReplayWindow:
    """Which stored events a replay reads: from ``start_seq`` or ``start_time``, to ``end_seq`` or ``end_time``."""

    start_seq: int | None = None
    start_time: datetime | None = None
    end_seq: int | None = None
    end_time: datetime | None = None


@dataclass
class ReplayProgress:
    scanned: int = 0
    """Events read from the broker's log."""
    matched: int = 0
    """Of those, the ones the trigger's filter passes."""
    published: int = 0
    """Of those, the ones stored for the trigger (none in a dry run)."""
    unreadable: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    """The last stream sequence read."""
    types: dict[str, int] = field(default_factory=dict)
    """Matched events per type (what a dry run shows)."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def first_seq_at(store: EventStore, stream: str, subject: str, when: datetime, first: int, last: int) -> int:
    """The sequence of the first event on ``subject`` stored at or after ``when`` (``last + 1`` when none): stored
    times grow with the sequence, so the stream is bisected instead of read."""
    low, high = first, last + 1
    while low < high:
        middle = (low + high) // 2
        found = await _next(store, stream, subject, middle)
        if found is None or found.seq is None or found.seq > last:
            high = middle
        elif found.time is not None and found.time >= when:
            high = middle
        else:
            low = found.seq + 1
    found = await _next(store, stream, subject, low) if low <= last else None
    return found.seq if found is not None and found.seq is not None and found.seq <= last else last + 1


async def _next(store: EventStore, stream: str, subject: str, seq: int) -> RawStreamMsg | None:
    try:
        return await store.js.get_msg(stream, seq, subject=subject, next=True)
    except nats.js.errors.NotFoundError:
        return None


class _Pace:
    """At most ``rate`` events a second, spread evenly."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        if self.next > now:
            await asyncio.sleep(self.next - now)
        self.next = max(self.next, now) + self.interval


async def replay(
    store: EventStore, trigger: Trigger, window: ReplayWindow, *, name: str, rate: float = DEFAULT_RATE,
    dry_run: bool = False, on_progress: Callable[[ReplayProgress], object] | None = None,
) -> ReplayProgress:
    """Replay ``window`` of the trigger's broker to the trigger; what it read, matched and stored."""
    namespace, broker = trigger.namespace, trigger.spec.broker
    stream = subjects.stream_name(namespace, broker)
    events = subjects.all_events_subject(namespace, broker)
    target = subjects.redrive_subject(namespace, broker, trigger.name)
    info = await store.js.stream_info(stream)
    first, last = info.state.first_seq, info.state.last_seq
    if window.end_seq is not None:
        last = min(last, window.end_seq)
    seq = max(first, window.start_seq or first)
    if window.start_time is not None:
        seq = max(seq, await first_seq_at(store, stream, events, window.start_time, first, last))
    progress, pace, matches = ReplayProgress(), _Pace(rate), trigger.spec.compiled_filter.matches
    while seq <= last:
        raw = await _next(store, stream, events, seq)
        if raw is None or raw.seq is None or raw.seq > last:
            break
        if window.end_time is not None and raw.time is not None and raw.time > window.end_time:
            break
        seq = raw.seq + 1
        progress.scanned += 1
        progress.first_seq = progress.first_seq or raw.seq
        progress.last_seq = raw.seq
        try:
            event = CloudEvent.from_json_bytes(raw.data or b"")
            matched = matches(event.as_mapping())
        except (EventError, ValueError) as exc:
            progress.unreadable += 1
            log.warning("replay %s: skipped the unreadable message %d of %s: %s", name, raw.seq, stream, exc)
            continue
        if not matched:
            continue
        progress.matched += 1
        progress.types[event.type] = progress.types.get(event.type, 0) + 1
        if not dry_run:
            await pace.wait()
            await _store(store, target, stamp_arrival(event.with_attributes(**{REPLAY: name})),
                         f"replay:{name}:{raw.seq}")
            progress.published += 1
        if on_progress is not None:
            on_progress(progress)
    return progress


async def _store(store: EventStore, subject: str, event: CloudEvent, msg_id: str) -> None:
    """Store one replayed event, waiting out a short loss of the store (ack after store: no event is skipped)."""
    for attempt in range(STORE_RETRIES):
        try:
            await store.publish(subject, event, msg_id=msg_id)
            return
        except StoreUnavailable:
            if attempt == STORE_RETRIES - 1:
                raise
            await asyncio.sleep(min(5.0, 0.2 * 2 ** attempt))


# --- Trigger.spec.replay: once per trigger and spec, taken over when its dispatcher stops -----------------------

def declared_replay_key(trigger: Trigger) -> str:
    """The bucket key of a trigger's declared replay: a new spec is a new replay, the same spec runs once."""
    assert trigger.spec.replay is not None
    spec = trigger.spec.replay.model_dump_json(by_alias=True, exclude_none=True)
    digest = hashlib.sha256(f"{trigger.spec.broker}/{spec}".encode()).hexdigest()[:16]
    return f"{trigger.namespace}.{trigger.name}.{digest}"


async def _bucket(store: EventStore) -> KeyValue:
    try:
        return await store.js.key_value(REPLAY_BUCKET)
    except nats.js.errors.BucketNotFoundError:
        config = KeyValueConfig(bucket=REPLAY_BUCKET, history=1, storage=StorageType.FILE,
                                replicas=store.own_replicas(), ttl=30 * 24 * 3600.0,
                                description="Ripple: declared replays of triggers, their progress and end")
        with contextlib.suppress(nats.js.errors.BadRequestError):
            return await store.js.create_key_value(config)
        return await store.js.key_value(REPLAY_BUCKET)


def _window(mark: dict[str, object], trigger: Trigger) -> ReplayWindow:
    spec = trigger.spec.replay
    assert spec is not None
    start_time = mark.get("startTime")
    return ReplayWindow(start_seq=int(str(mark["nextSeq"])) if mark.get("nextSeq") else spec.from_seq,
                        start_time=parse_rfc3339(str(start_time)) if start_time and not mark.get("nextSeq") else None,
                        end_time=parse_rfc3339(spec.until) if spec.until else None,
                        end_seq=int(str(mark["endSeq"])) if mark.get("endSeq") else None)


def since_to_start(since: str, now: datetime | None = None) -> datetime:
    """A replay's start: a duration before ``now`` (``PT1H``) or an RFC 3339 time."""
    return (now or datetime.now(UTC)) - parse_duration(since) if since.startswith("P") else parse_rfc3339(since)


async def _claim(kv: KeyValue, key: str, store: EventStore, trigger: Trigger) -> tuple[dict[str, Any], int] | None:
    """This dispatcher's hold on the declared replay (its mark and revision); ``None`` once it is done."""
    spec = trigger.spec.replay
    assert spec is not None
    while True:
        try:
            entry = await kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            entry = None
        try:
            if entry is None:
                info = await store.js.stream_info(subjects.stream_name(trigger.namespace, trigger.spec.broker))
                start = since_to_start(spec.since) if spec.since is not None else None
                mark: dict[str, Any] = {"state": "running", "startTime": start and start.isoformat(),
                                        "nextSeq": spec.from_seq, "endSeq": info.state.last_seq, "published": 0,
                                        "heartbeat": time.time()}
                return mark, await kv.create(key, json.dumps(mark).encode())
            mark = json.loads(entry.value or b"{}")
            if mark.get("state") == "done":
                return None
            if time.time() - float(mark.get("heartbeat", 0)) < STALE_AFTER:
                await asyncio.sleep(STALE_AFTER / 3)  # another dispatcher is at it: take over if it stops
                continue
            mark["heartbeat"] = time.time()
            return mark, await kv.update(key, json.dumps(mark).encode(), last=entry.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            continue  # another dispatcher wrote first: read again


async def run_declared_replay(store: EventStore, trigger: Trigger) -> None:
    """Run the trigger's ``spec.replay`` unless it ran already; wait while another dispatcher runs it."""
    spec = trigger.spec.replay
    assert spec is not None
    kv, key = await _bucket(store), declared_replay_key(trigger)
    claimed = await _claim(kv, key, store, trigger)
    if claimed is None:
        return
    mark, revision = claimed
    name, before = f"{trigger.name}-{key[-8:]}", int(mark.get("published", 0))
    start_time = parse_rfc3339(mark["startTime"]) if mark.get("startTime") and not mark.get("nextSeq") else None
    window = ReplayWindow(start_seq=mark.get("nextSeq"), start_time=start_time, end_seq=mark.get("endSeq"),
                          end_time=parse_rfc3339(spec.until) if spec.until else None)
    log.info("trigger %s/%s: replay %s from %s", trigger.namespace, trigger.name, name,
             f"sequence {window.start_seq}" if window.start_seq else f"events stored since {mark['startTime']}")
    written, writing = time.monotonic(), cast("asyncio.Task[None] | None", None)

    async def keep(progress: ReplayProgress, state: str) -> None:
        nonlocal revision
        if progress.last_seq is not None:
            mark["nextSeq"] = progress.last_seq + 1
        mark.update(state=state, published=before + progress.published, heartbeat=time.time())
        revision = await kv.update(key, json.dumps(mark).encode(), last=revision)

    async def keep_now(progress: ReplayProgress) -> None:
        try:
            await keep(progress, "running")
        except Exception as exc:  # the next write tries again; a lost hold shows at the end
            log.warning("replay %s: could not write its progress: %s", name, exc)

    def on_progress(progress: ReplayProgress) -> None:
        nonlocal written, writing
        if time.monotonic() - written >= MARK_EVERY and (writing is None or writing.done()):
            written = time.monotonic()
            writing = asyncio.get_running_loop().create_task(keep_now(progress))

    progress = await replay(store, trigger, window, name=name, rate=spec.rate, on_progress=on_progress)
    if writing is not None:
        await writing
    await keep(progress, "done")
    log.info("trigger %s/%s: replay %s done: %d events replayed of %d read", trigger.namespace, trigger.name, name,
             before + progress.published, progress.scanned)
