"""The HTTP side of a function: receive one CloudEvent, call the handler, answer with its reply.

Answers: ``202`` when the handler returns nothing, ``200`` with the reply in binary mode when it returns an event,
``400`` for a request that is not one valid CloudEvent, ``500`` with the message when the handler raises, and
``504`` when it runs past the function's timeout. ``GET /health`` answers 200 once the handler is loaded.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

from aiohttp import web

from ripple.events.http import UnsupportedFormat, decode_request, encode_binary
from ripple.events.model import EventError
from ripple.runtime.event import FunctionEvent, reply_event
from ripple.runtime.loader import Handler, is_async

log = logging.getLogger(__name__)
HANDLER_KEY = web.AppKey("handler", object)
TIMEOUT_KEY = web.AppKey("timeout", float)


async def call_handler(handler: Handler, event: FunctionEvent) -> Any:
    """Run the handler without blocking the event loop: async handlers are awaited, others run in a thread."""
    if is_async(handler):
        return await handler(event)
    result = await asyncio.to_thread(handler, event)
    if inspect.isawaitable(result):
        result = await result
    return result


async def receive(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        events = decode_request(request.headers.items(), body)
    except (EventError, UnsupportedFormat) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    if len(events) != 1:
        return web.json_response({"error": "a function receives exactly one event per request"}, status=400)
    timeout = request.app[TIMEOUT_KEY]
    try:
        async with asyncio.timeout(timeout):
            result = await call_handler(request.app[HANDLER_KEY], FunctionEvent(events[0]))  # type: ignore[arg-type]
    except TimeoutError:
        return web.json_response({"error": f"handler timed out after {timeout:g}s"}, status=504)
    except Exception as exc:
        log.error("handler failed on event %s: %s: %s", events[0].id, type(exc).__name__, exc)
        log.debug("handler traceback", exc_info=True)
        return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=500)
    if result is None:
        return web.Response(status=202)
    try:
        reply = reply_event(result)
    except (TypeError, EventError) as exc:
        return web.json_response({"error": f"invalid reply: {exc}"}, status=500)
    headers, payload = encode_binary(reply)
    return web.Response(status=200, body=payload, headers=headers)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_function_app(handler: Handler, *, timeout: float = 30.0) -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[HANDLER_KEY] = handler
    app[TIMEOUT_KEY] = timeout
    app.router.add_get("/health", health)
    app.router.add_post("/", receive)
    return app
