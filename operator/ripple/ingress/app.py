"""The ingress aiohttp application.

The contract with producers: ``202`` means every event of the request is stored in JetStream, so the producer
may forget it. Anything short of that is an answer the producer can act on: ``400`` (fix the event), ``404``
(no such broker), ``413`` (too large: the body, an event, or a batch of more than ``max_batch`` events),
``415`` (unsupported format or content coding), ``429`` with ``Retry-After`` (a rate limit of
:mod:`ripple.ingress.limits`: send slower) or ``503`` with ``Retry-After`` (try again).

Every input is hostile until checked: a request the ingress cannot use is answered 4xx naming the problem, never
500. The body is read by :func:`ripple.ingress.body.read_body`: bounded by ``max_body`` however it is sent
(declared length, chunked, compressed), and decoded from ``gzip``/``deflate`` by Ripple, not aiohttp.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from ripple.defaults import MAX_BATCH, MAX_BODY
from ripple.events import EventError, UnsupportedFormat, decode_request
from ripple.events.extensions import now_rfc3339, stamp_arrival
from ripple.events.http import BatchTooLarge
from ripple.events.model import CloudEvent
from ripple.ingress.body import BodyRefused, read_body
from ripple.ingress.limits import RateLimiter, client_sender
from ripple.ingress.policies import Refusal, RippleHops, SenderCheck
from ripple.logformat import fields, trace_id
from ripple.metrics import INGRESS_EVENTS, INGRESS_REQUESTS, INGRESS_THROTTLED, child, serve_metrics
from ripple.signing import flow_audience
from ripple.store import EventStore, EventTooLarge, StoreUnavailable
from ripple.store.flows import Entry, FlowKind, store_entries
from ripple.tracing import TRACEPARENT, TRACESTATE, is_traceparent, span

__all__ = [
    "UNKNOWN_BROKER",
    "FlowLookup",
    "IngressSettings",
    "create_ingress_app",
    "error",
    "handshake",
    "health",
    "method_not_allowed",
    "not_found",
    "receive",
    "receive_flow",
]

log = logging.getLogger(__name__)

BrokerLookup = Callable[[str, str], bool]
FlowLookup = Callable[[FlowKind, str, str], Entry | None]
DEFAULT_MAX_BODY = MAX_BODY
UNKNOWN_BROKER = "_unknown"
"""The ``namespace`` and ``broker`` labels of requests to brokers that do not exist: one series whatever the path,
so that requests to made-up names cannot grow the metrics without bound (Kubernetes names never start with _)."""
STORE_KEY = web.AppKey("store", EventStore)


@dataclass(frozen=True)
class IngressSettings:
    brokers: BrokerLookup
    """Whether (namespace, broker) exists: unknown brokers are answered 404."""
    max_body: int = DEFAULT_MAX_BODY
    retry_after: int = 1
    """Seconds a producer is told to wait when JetStream cannot store."""
    healthy: Callable[[], bool] = lambda: True
    """Whether the ingress's background work (the cluster's broker watch, local mode's dispatcher) can go on."""
    flows: FlowLookup = lambda kind, namespace, name: None
    """Where events sent to a Sequence or Parallel go; ``None`` (answered 404) for one that is not ready."""
    policies: SenderCheck | None = None
    """Who may send to which broker (EventPolicies); ``None``: every broker is open."""
    hops: RippleHops | None = None
    """Recognises a dispatcher's delivery to a flow's address (its delivery token); ``None``: none is."""
    max_batch: int | None = MAX_BATCH
    """Most events in one batched request (more is 413); ``None``: as many as the body holds."""
    rates: RateLimiter | None = None
    """Per-broker and per-sender rate limits (429); ``None``: none."""


SETTINGS_KEY = web.AppKey("settings", IngressSettings)


def error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


async def not_found(request: web.Request) -> web.Response:
    return error(404, "Not Found")


async def method_not_allowed(request: web.Request) -> web.Response:
    return error(405, "Method Not Allowed", Allow="POST, OPTIONS")


async def receive(request: web.Request) -> web.Response:
    """One POST to a broker: read, decode, stamp, store, answer; every known failure answered by its status."""
    namespace, broker = request.match_info["namespace"], request.match_info["broker"]
    settings = request.app[SETTINGS_KEY]
    if not settings.brokers(namespace, broker):
        child(INGRESS_REQUESTS, UNKNOWN_BROKER, UNKNOWN_BROKER, "404").inc()
        return error(404, f"no broker '{broker}' in namespace '{namespace}'")
    store = request.app[STORE_KEY]
    return await _accept(request, namespace, broker, lambda events: store.publish_events(namespace, broker, events))


async def receive_flow(request: web.Request) -> web.Response:
    """One POST to a Sequence's or Parallel's address: stored on its first hop, in its broker, as for a broker."""
    namespace, plural, name = request.match_info["namespace"], request.match_info["kind"], request.match_info["name"]
    kind: FlowKind = "Sequence" if plural == "sequences" else "Parallel"
    entry = request.app[SETTINGS_KEY].flows(kind, namespace, name)
    if entry is None:
        child(INGRESS_REQUESTS, UNKNOWN_BROKER, UNKNOWN_BROKER, "404").inc()
        return error(404, f"no {kind} '{name}' ready in namespace '{namespace}'")
    store = request.app[STORE_KEY]
    hops = request.app[SETTINGS_KEY].hops
    hop = hops is not None and await hops.proves(flow_audience(kind, namespace, name),
                                                 request.headers.get("Authorization"))
    return await _accept(request, namespace, entry.broker, lambda events: store_entries(store, entry, events),
                         hop=hop)


async def _accept(request: web.Request, namespace: str, broker: str,
                  store: Callable[[list[CloudEvent]], Awaitable[object]], *, hop: bool = False) -> web.Response:
    """``hop``: a dispatcher moving an event along a flow (proved by its delivery token): neither the broker's
    policies nor the producers' rate limits apply to it."""
    settings = request.app[SETTINGS_KEY]
    try:
        body = await read_body(request, settings.max_body)
    except BodyRefused as exc:
        response = error(exc.status, str(exc))
        response.force_close()  # what is left of the body is not read: do not reuse the connection
        return _counted(response, namespace, broker)
    except web.HTTPException as exc:  # the body timeout (408), set on the payload by the server
        response = error(exc.status, exc.text or exc.reason)
        response.force_close()
        return _counted(response, namespace, broker)
    try:
        events = decode_request(request.headers.items(), body, max_batch=settings.max_batch)
    except EventError as exc:
        return _counted(error(400, str(exc)), namespace, broker)
    except BatchTooLarge as exc:
        return _counted(error(413, str(exc)), namespace, broker)
    except UnsupportedFormat as exc:
        return _counted(error(415, str(exc)), namespace, broker)
    sender: str | None = None
    if settings.policies is not None and not hop:
        found = await settings.policies.check(namespace, broker, request.headers.get("Authorization"), events)
        if isinstance(found, Refusal):
            challenge = {"WWW-Authenticate": 'Bearer realm="ripple"'} if found.status == 401 else {}
            return _counted(error(found.status, found.message, **challenge), namespace, broker)
        sender = found.identity if found is not None else None
    if settings.rates is not None and not hop:
        # Counted in events, after the policies (a refused request takes no tokens) and before anything is stored.
        throttled = settings.rates.admit(namespace, broker, sender or client_sender(request.remote), len(events))
        if throttled is not None:
            child(INGRESS_THROTTLED, namespace, broker, throttled.limit).inc()
            response = error(429, throttled.message, **{"Retry-After": str(throttled.retry_after)})
            return _counted(response, namespace, broker)
    # The request's own W3C context is the span's parent; an event's extension is its fallback (one event, or a
    # batch sent without one). Events without a context join the request's trace.
    header = request.headers.get(TRACEPARENT)
    first = events[0] if events else None
    parent, state = ((header, request.headers.get(TRACESTATE)) if is_traceparent(header) else
                     (first.get(TRACEPARENT), first.get(TRACESTATE)) if first is not None else (None, None))
    only = first if len(events) == 1 else None  # a batch's span and log lines name no one event
    with span(f"ingress {namespace}/{broker}", parent=parent if isinstance(parent, str) else None,
              tracestate=state if isinstance(state, str) else None, kind="server",
              attributes={"namespace": namespace, "broker": broker, "events": len(events),
                          "event_id": only.id if only else None, "event_type": only.type if only else None}) as trace:
        try:
            arrival = now_rfc3339()  # one clock reading for every event of the request: they arrived together
            events = [stamp_arrival(e, arrival=arrival, traceparent=trace.traceparent) for e in events]
            only = events[0] if only is not None else None
        except EventError as exc:
            trace.fail(str(exc))
            return _counted(error(400, str(exc)), namespace, broker)
        try:
            await store(events)
        except EventTooLarge as exc:
            trace.fail(str(exc))
            return _counted(error(413, str(exc)), namespace, broker)
        except StoreUnavailable as exc:
            trace.fail(str(exc))
            log.warning("ingress %s/%s: %s", namespace, broker, exc,
                        extra=fields(namespace=namespace, broker=broker, event_id=only and only.id,
                                     outcome="unavailable", status=503,
                                     trace_id=only and trace_id(only.get(TRACEPARENT)), error=str(exc)[:200]))
            retry = str(settings.retry_after)
            response = error(503, f"the event store is unavailable, retry later: {exc}", **{"Retry-After": retry})
            return _counted(response, namespace, broker)
    child(INGRESS_EVENTS, namespace, broker).inc(len(events))
    child(INGRESS_REQUESTS, namespace, broker, "202").inc()
    return web.Response(status=202)


def _to(location: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(location)

    return redirect


def _counted(response: web.Response, namespace: str, broker: str) -> web.Response:
    child(INGRESS_REQUESTS, namespace, broker, str(response.status)).inc()
    return response


async def handshake(request: web.Request) -> web.Response:
    """The CloudEvents webhook abuse-protection handshake (``WebHook-Request-Origin``)."""
    headers = {"Allow": "POST, OPTIONS"}
    origin = request.headers.get("WebHook-Request-Origin")
    if origin is not None:
        headers["WebHook-Allowed-Origin"] = origin
        headers["WebHook-Allowed-Rate"] = "*"
    return web.Response(status=200, headers=headers)


async def health(request: web.Request) -> web.Response:
    """200 only while the ingress can store events and its background work runs, so probes tell the truth."""
    connected, running = request.app[STORE_KEY].connected, request.app[SETTINGS_KEY].healthy()
    return web.json_response({"nats": connected, "running": running}, status=200 if connected and running else 503)


def create_ingress_app(
    store: EventStore, settings: IngressSettings, routes: Iterable[web.AbstractRouteDef] = (),
    subapps: Iterable[tuple[str, web.Application]] = (),
) -> web.Application:
    """The ingress as an aiohttp application (the caller owns the store's connection); ``routes`` and
    ``subapps`` (prefix, application) are served too (``ripple dev``'s status and flow pages), ahead of the
    answers for everything else."""
    # No middleware: aiohttp then calls the handler directly, which is most of what a middleware costs per
    # request (profiled). aiohttp's own answers (unknown path, method) come from the last two routes instead.
    app = web.Application(
        client_max_size=settings.max_body,
        handler_args={"auto_decompress": False},  # bodies are decoded, bounded, by read_body
    )
    app[STORE_KEY] = store
    app[SETTINGS_KEY] = settings
    app.router.add_get("/-/health", health)
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_routes(routes)
    for prefix, subapp in subapps:
        app.router.add_get(prefix.rstrip("/"), _to(prefix))  # ahead of the sub-application, which takes it too
        app.add_subapp(prefix, subapp)
    app.router.add_post("/{namespace}/{kind:sequences|parallels}/{name}", receive_flow)
    app.router.add_route("OPTIONS", "/{namespace}/{kind:sequences|parallels}/{name}", handshake)
    app.router.add_route("*", "/{namespace}/{kind:sequences|parallels}/{name}", method_not_allowed)
    app.router.add_post("/{namespace}/{broker}", receive)
    app.router.add_route("OPTIONS", "/{namespace}/{broker}", handshake)
    app.router.add_route("*", "/{namespace}/{broker}", method_not_allowed)
    app.router.add_route("*", "/{path:.*}", not_found)
    return app
