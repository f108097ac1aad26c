"""The live flow page: ``/ui/`` and the small JSON and server-sent-events API it reads.

The page itself is static (HTML, CSS, one ES module, and htm's Preact build vendored beside it), served from the
package, so nothing is loaded from anywhere else at run time. What it shows comes from a :class:`ConsoleSource`
(local mode's, or a cluster's): a snapshot of brokers, triggers, subscribers and their counts, streamed every
second over server-sent events together with the events brokers stored meanwhile; an event's history
(``store/history.py``); a broker's dead letters, which a ``POST`` redrives.

Every input is bounded: at most :data:`MAX_STREAMS` live streams (503 beyond), ids and broker names checked
before use, request bodies of at most 4 KiB, and a redrive must come from the page's own origin (``Origin`` equal
to the host), so another site cannot make a visitor's browser send one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import deque
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

import nats.errors
import nats.js.errors
from aiohttp import web
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy

from ripple.events.model import CloudEvent, EventError
from ripple.store import EventStore, subjects
from ripple.store.dlq import dead_letters, get_dead_letter, redrive
from ripple.store.history import read_history
from ripple.tracing import trace_id_of

__all__ = [
    "FEED_SIZE",
    "MAX_STREAMS",
    "STREAM_PERIOD",
    "ConsoleSource",
    "create_console_app",
]

log = logging.getLogger(__name__)

MAX_STREAMS = 32
"""Live streams served at once; one more is answered 503."""
STREAM_PERIOD = 1.0
"""Seconds between two snapshots on a live stream."""
FEED_SIZE = 200
"""Recent events the page is shown (the newest)."""
FOLLOW_EVERY = 5.0
"""Seconds between two looks for brokers the feed does not follow yet."""
DLQ_LIMIT = 100
MAX_REQUEST = 4096
ASSETS = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
    "vendor/htm-preact.module.js": "text/javascript",
    "vendor/LICENSE.htm.txt": "text/plain",
    "vendor/LICENSE.preact.txt": "text/plain",
}
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_MAX_ID = 1024


class ConsoleSource(Protocol):
    """Where the page's figures come from."""

    store: EventStore

    async def snapshot(self) -> dict[str, Any]:
        """``{"brokers": [...], "triggers": [...], "functions": [...], "flows": [...]}`` with their counts."""
        ...

    def brokers(self) -> list[tuple[str, str]]:
        """(namespace, name) of every broker to follow."""
        ...


class _Snapshots:
    """The source's snapshot, taken at most once per :data:`STREAM_PERIOD` however many pages ask."""

    def __init__(self, source: ConsoleSource) -> None:
        self.source = source
        self.taken: tuple[float, dict[str, Any]] | None = None
        self.lock = asyncio.Lock()

    async def get(self) -> dict[str, Any]:
        async with self.lock:
            now = asyncio.get_running_loop().time()
            if self.taken is None or now - self.taken[0] >= STREAM_PERIOD * 0.9:
                self.taken = (now, await self.source.snapshot())
            return self.taken[1]


@dataclass
class _Feed:
    """The newest events stored in any broker, shared by every stream."""

    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=FEED_SIZE))
    counter: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    subscriptions: list[Subscription] = field(default_factory=list)
    followed: set[tuple[str, str]] = field(default_factory=set)


SOURCE_KEY = web.AppKey("console_source", ConsoleSource)
FEED_KEY = web.AppKey("console_feed", _Feed)
STREAMS_KEY = web.AppKey("console_streams", list)
STOPPING_KEY = web.AppKey("console_stopping", asyncio.Event)
SNAPSHOTS_KEY = web.AppKey("console_snapshots", _Snapshots)
ASSETS_KEY = web.AppKey("console_assets", dict)


def _broker(text: str) -> tuple[str, str] | None:
    namespace, _, name = text.partition("/")
    return (namespace, name) if _NAME.fullmatch(namespace) and _NAME.fullmatch(name) else None


def _summary(namespace: str, broker: str, event: CloudEvent, seq: int) -> dict[str, Any]:
    return {"n": 0, "broker": f"{namespace}/{broker}", "seq": seq, "id": event.id, "type": event.type,
            "source": event.source, "time": event.get("ripplearrivaltime"),
            "traceId": trace_id_of(event.get("traceparent")), "replay": event.get("ripplereplay")}


async def _follow(app: web.Application) -> None:
    """Subscribe the feed to every broker's events from now on (ordered consumers: nothing is acknowledged),
    and to each broker that appears later (a cluster's come and go)."""
    source, feed = app[SOURCE_KEY], app[FEED_KEY]
    while True:
        for namespace, broker in source.brokers():
            if (namespace, broker) in feed.followed:
                continue

            async def on_event(msg: Msg, namespace: str = namespace, broker: str = broker) -> None:
                try:
                    event = CloudEvent.from_json_bytes(msg.data)
                except (EventError, ValueError):
                    return
                feed.counter += 1
                feed.events.append({**_summary(namespace, broker, event, msg.metadata.sequence.stream),
                                    "n": feed.counter})
                feed.changed.set()

            try:
                feed.subscriptions.append(await source.store.js.subscribe(
                    subjects.all_events_subject(namespace, broker), stream=subjects.stream_name(namespace, broker),
                    ordered_consumer=True, deliver_policy=DeliverPolicy.NEW, cb=on_event))
                feed.followed.add((namespace, broker))
            except (nats.errors.Error, nats.js.errors.Error) as exc:
                log.warning("console: cannot follow broker %s/%s yet: %s", namespace, broker, exc)
        await asyncio.sleep(FOLLOW_EVERY)


async def _feed_context(app: web.Application) -> Any:
    task = asyncio.get_running_loop().create_task(_follow(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    for subscription in app[FEED_KEY].subscriptions:
        with contextlib.suppress(nats.errors.Error):
            await subscription.unsubscribe()


def _read_assets() -> dict[str, bytes]:
    """The page's files, read from the package once (not from disk on the event loop for each request)."""
    root = resources.files("ripple.console").joinpath("assets")
    return {name: root.joinpath(*name.split("/")).read_bytes() for name in ASSETS}


async def _asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("name") or "index.html"
    body = request.app[ASSETS_KEY].get(name)
    if body is None:
        raise web.HTTPNotFound(text=f"no asset {name!r}")
    return web.Response(body=body, content_type=ASSETS[name], headers={
        "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'"})


async def _snapshot(request: web.Request) -> web.Response:
    return web.json_response(await request.app[SNAPSHOTS_KEY].get())


async def _stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: a snapshot every :data:`STREAM_PERIOD` seconds, and each newly stored event."""
    streams = request.app[STREAMS_KEY]
    if len(streams) >= MAX_STREAMS:
        return web.json_response({"error": f"at most {MAX_STREAMS} live views at once"}, status=503,
                                 headers={"Retry-After": "5"})
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    feed, snapshots, stopping = request.app[FEED_KEY], request.app[SNAPSHOTS_KEY], request.app[STOPPING_KEY]
    streams.append(response)
    seen = 0
    try:
        await _send(response, "events", list(feed.events))
        seen = feed.counter
        while not stopping.is_set():
            await _send(response, "snapshot", await snapshots.get())
            loop = asyncio.get_running_loop()
            deadline = loop.time() + STREAM_PERIOD
            while (left := deadline - loop.time()) > 0 and not stopping.is_set():
                feed.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await feed.changed.wait()
                fresh = [e for e in feed.events if e["n"] > seen]
                if fresh:
                    seen = fresh[-1]["n"]
                    await _send(response, "events", fresh)
    except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
        pass  # the page went away, or the server is stopping
    finally:
        streams.remove(response)
    return response


async def _send(response: web.StreamResponse, kind: str, data: object) -> None:
    await response.write(f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode())


async def _event(request: web.Request) -> web.Response:
    event_id = request.match_info["id"]
    if not event_id or len(event_id) > _MAX_ID:
        return web.json_response({"error": "an event id is 1 to 1024 characters"}, status=400)
    history = await read_history(request.app[SOURCE_KEY].store, event_id)
    if history.event is None and not history.records:
        return web.json_response({"error": f"no delivery of event {event_id!r} is recorded"}, status=404)
    return web.json_response(history.as_dict())


async def _dlq(request: web.Request) -> web.Response:
    source = request.app[SOURCE_KEY]
    letters = []
    for namespace, broker in source.brokers():
        with contextlib.suppress(nats.js.errors.NotFoundError):
            async for letter in dead_letters(source.store, namespace, broker, limit=DLQ_LIMIT):
                original = letter.event
                letters.append({
                    "broker": f"{namespace}/{broker}", "sequence": letter.sequence, "trigger": letter.trigger,
                    "id": original.id, "type": original.type, "status": original.get("rippleerrorcode"),
                    "reason": original.get("rippleerrorreason"), "traceId": trace_id_of(original.get("traceparent")),
                })
    return web.json_response({"deadLetters": letters})


async def _redrive(request: web.Request) -> web.Response:
    origin, host = request.headers.get("Origin"), request.headers.get("Host")
    if origin is None or host is None or origin.split("://", 1)[-1] != host:
        return web.json_response({"error": "a redrive must come from this page (Origin must be this host)"},
                                 status=403)
    if (request.content_length or 0) > MAX_REQUEST or request.content_type != "application/json":
        return web.json_response({"error": "send a JSON object of at most 4 KiB"}, status=400)
    try:
        body = json.loads(await request.content.read(MAX_REQUEST + 1))
        where, sequence, trigger = _broker(str(body["broker"])), int(body["sequence"]), body.get("trigger")
    except (ValueError, KeyError, TypeError):
        return web.json_response({"error": 'expected {"broker": "ns/name", "sequence": N, "trigger"?: name}'},
                                 status=400)
    source = request.app[SOURCE_KEY]
    if where is None or where not in source.brokers() or sequence < 1:
        return web.json_response({"error": "no such broker, or a sequence below 1"}, status=400)
    if trigger is not None and (not isinstance(trigger, str) or not _NAME.fullmatch(trigger)):
        return web.json_response({"error": "trigger must be a trigger's name"}, status=400)
    try:
        letter = await get_dead_letter(source.store, *where, sequence)
    except nats.js.errors.NotFoundError:
        return web.json_response({"error": f"no dead letter {sequence} in {where[0]}/{where[1]}"}, status=404)
    await redrive(source.store, *where, letter, trigger=trigger)
    log.info("console: redrove dead letter %d (%s) of %s/%s", sequence, letter.event.id, *where)
    return web.json_response({"redriven": sequence, "id": letter.event.id})


def create_console_app(source: ConsoleSource) -> web.Application:
    """The page and its API, to be added under ``/ui/`` (``app.add_subapp("/ui/", ...)``)."""
    app = web.Application(client_max_size=MAX_REQUEST)
    app[SOURCE_KEY] = source
    app[FEED_KEY] = _Feed()
    app[STREAMS_KEY] = []
    app[STOPPING_KEY] = asyncio.Event()
    app[SNAPSHOTS_KEY] = _Snapshots(source)
    app[ASSETS_KEY] = _read_assets()
    app.cleanup_ctx.append(_feed_context)
    app.on_shutdown.append(_close_streams)
    app.router.add_get("/", _asset)
    app.router.add_get("/assets/{name:.+}", _asset)
    app.router.add_get("/api/snapshot", _snapshot)
    app.router.add_get("/api/stream", _stream)
    app.router.add_get("/api/events/{id:.+}", _event)
    app.router.add_get("/api/dlq", _dlq)
    app.router.add_post("/api/dlq/redrive", _redrive)
    return app


async def _close_streams(app: web.Application) -> None:
    """Live streams never end by themselves: end them, so that the server stops at once."""
    app[STOPPING_KEY].set()
    app[FEED_KEY].changed.set()
