"""The ingress aiohttp application.

The contract with producers: ``202`` means every event of the request is stored in JetStream, so the producer
may forget it. Anything short of that is an answer the producer can act on: ``400`` (fix the event), ``404``
(no such broker), ``413`` (too large), ``415`` (unsupported format) or ``503`` with ``Retry-After`` (try again).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from ripple.events import EventError, UnsupportedFormat, decode_request
from ripple.events.extensions import stamp_arrival
from ripple.metrics import INGRESS_EVENTS, INGRESS_REQUESTS, serve_metrics
from ripple.store import EventStore, StoreUnavailable

log = logging.getLogger(__name__)

BrokerLookup = Callable[[str, str], bool]
DEFAULT_MAX_BODY = 1024 * 1024
STORE_KEY = web.AppKey("store", EventStore)
SETTINGS_KEY = web.AppKey("settings", "IngressSettings")


@dataclass(frozen=True)
class IngressSettings:
    brokers: BrokerLookup
    """Whether (namespace, broker) exists: unknown brokers are answered 404."""
    max_body: int = DEFAULT_MAX_BODY
    retry_after: int = 1
    """Seconds a producer is told to wait when JetStream cannot store."""


def error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer aiohttp's own errors (404, 405, 413) with the same JSON body as Ripple's."""
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge as exc:
        return error(413, f"request body is larger than the limit of {exc.max_size} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return error(exc.status, exc.reason, **headers)


async def receive(request: web.Request) -> web.Response:
    namespace, broker = request.match_info["namespace"], request.match_info["broker"]
    response = await _receive(request, namespace, broker)
    INGRESS_REQUESTS.labels(namespace, broker, str(response.status)).inc()
    return response


async def _receive(request: web.Request, namespace: str, broker: str) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    if not settings.brokers(namespace, broker):
        return error(404, f"no broker '{broker}' in namespace '{namespace}'")
    if request.content_length is not None and request.content_length > settings.max_body:
        return error(413, f"request body is larger than the limit of {settings.max_body} bytes")
    body = await request.read()
    try:
        events = [stamp_arrival(e) for e in decode_request(request.headers.items(), body)]
    except EventError as exc:
        return error(400, str(exc))
    except UnsupportedFormat as exc:
        return error(415, str(exc))
    try:
        await request.app[STORE_KEY].publish_events(namespace, broker, events)
    except StoreUnavailable as exc:
        log.warning("ingress %s/%s: %s", namespace, broker, exc)
        retry = str(settings.retry_after)
        return error(503, f"the event store is unavailable, retry later: {exc}", **{"Retry-After": retry})
    INGRESS_EVENTS.labels(namespace, broker).inc(len(events))
    return web.Response(status=202)


async def handshake(request: web.Request) -> web.Response:
    """The CloudEvents webhook abuse-protection handshake (``WebHook-Request-Origin``)."""
    headers = {"Allow": "POST, OPTIONS"}
    origin = request.headers.get("WebHook-Request-Origin")
    if origin is not None:
        headers["WebHook-Allowed-Origin"] = origin
        headers["WebHook-Allowed-Rate"] = "*"
    return web.Response(status=200, headers=headers)


async def health(request: web.Request) -> web.Response:
    connected = request.app[STORE_KEY].nc.is_connected
    return web.json_response({"nats": connected}, status=200 if connected else 503)


def create_ingress_app(store: EventStore, settings: IngressSettings) -> web.Application:
    """The ingress as an aiohttp application (the caller owns the store's connection)."""
    app = web.Application(client_max_size=settings.max_body, middlewares=[json_errors])
    app[STORE_KEY] = store
    app[SETTINGS_KEY] = settings
    app.router.add_get("/-/health", health)
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_post("/{namespace}/{broker}", receive)
    app.router.add_route("OPTIONS", "/{namespace}/{broker}", handshake)
    return app
