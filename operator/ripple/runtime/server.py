"""The HTTP side of a function: receive one CloudEvent, call the handler, answer with its reply.

Answers: ``202`` when the handler returns nothing, ``200`` with the reply in binary mode when it returns an event,
``400`` for a request that is not one valid CloudEvent, ``500`` with the message when the handler raises
(``422`` for :class:`~ripple.runtime.errors.Reject`, ``409``/``503`` for ``RetryLater``), and ``504`` when it
runs past the function's timeout. ``GET /health`` answers 200 once a handler is loaded.

With delivery tokens on (``RIPPLE_DELIVERY_KEYS``, see :mod:`ripple.signing`; the operator sets it for every
Function in a cluster), a request without a valid token for this Function is answered ``401`` before anything
reads its body, so only a trigger's delivery can invoke it; ``503`` when the keys to check it cannot be read.

A runtime started without a handler is a **warm-pool** process: Python, aiohttp and Ripple are imported and the
port is open, but it serves nothing until ``POST /-/specialize`` names the function's code; a cold start then
costs an import, not a process start.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from ripple.events.extensions import in_trace
from ripple.events.http import UnsupportedFormat, decode_request, encode_binary
from ripple.events.model import CloudEvent, EventError
from ripple.runtime.errors import REJECTED, RETRY_LATER, Reject, RetryLater
from ripple.runtime.event import FunctionEvent, reply_event
from ripple.runtime.idempotency import FUNCTION_ENV
from ripple.runtime.loader import Handler, HandlerError, is_async, load_handler
from ripple.signing import DeliveryVerifier, function_audience, verifier_from_env
from ripple.tracing import TRACEPARENT, TRACESTATE, is_traceparent, span

__all__ = [
    "LISTENING",
    "PARENT_PID_ENV",
    "Slot",
    "call_handler",
    "create_function_app",
    "exit_with_parent",
    "health",
    "receive",
    "runtime_verifier",
    "specialize",
]

log = logging.getLogger(__name__)


@dataclass
class Slot:
    """The function this runtime serves; empty in a warm-pool process until it is specialized."""

    handler: Handler | None = None
    timeout: float = 30.0
    name: str = ""
    verifier: DeliveryVerifier | None = None
    """Checks each request's delivery token; ``None``: not checked."""


SLOT_KEY = web.AppKey("slot", Slot)


def runtime_verifier(environ: Mapping[str, str] = os.environ) -> DeliveryVerifier | None:
    """The delivery-token check the environment asks for, for the Function it names (``RIPPLE_FUNCTION``);
    ``ValueError`` naming the variable for a setting that cannot be used."""
    function = environ.get(FUNCTION_ENV, "")
    namespace, _, name = function.partition("/")
    verifier = verifier_from_env(function_audience(namespace, name), environ)
    if verifier is not None and not (namespace and name):
        raise ValueError(f"delivery tokens are checked for the Function {FUNCTION_ENV} names (NAMESPACE/NAME); "
                         f"it is '{function}'")
    return verifier
LISTENING = "listening on http://"
"""What a runtime prints once it serves: whoever started it may check its readiness at once."""
PARENT_PID_ENV = "RIPPLE_PARENT_PID"
"""Set by local mode: the runtime exits when that process is gone, so a killed ``ripple dev`` leaves nothing."""


async def exit_with_parent(app: web.Application) -> AsyncIterator[None]:
    expected = os.environ.get(PARENT_PID_ENV)

    async def watch() -> None:
        while True:  # no event tells a process that its parent died: ask once a second
            await asyncio.sleep(1)
            if str(os.getppid()) != expected:
                break
        log.warning("parent process %s is gone; exiting", expected)
        os._exit(0)

    task = asyncio.create_task(watch()) if expected else None
    yield
    if task is not None:
        task.cancel()


async def call_handler(handler: Handler, event: FunctionEvent) -> Any:
    """Run the handler without blocking the event loop: async handlers are awaited, others run in a thread."""
    if is_async(handler):
        return await handler(event)
    result = await asyncio.to_thread(handler, event)
    if inspect.isawaitable(result):
        result = await result
    return result


async def receive(request: web.Request) -> web.Response:
    slot = request.app[SLOT_KEY]
    if slot.handler is None:
        return web.json_response({"error": "this runtime has no function yet"}, status=503)
    if slot.verifier is not None:
        refusal = await slot.verifier.check(request.headers.get("Authorization"))
        if refusal is not None:
            headers = {"WWW-Authenticate": 'Bearer realm="ripple"'} if refusal.status == 401 else {"Retry-After": "5"}
            response = web.json_response({"error": refusal.message}, status=refusal.status, headers=headers)
            response.force_close()  # the body is not read
            return response
    body = await request.read()
    try:
        events = decode_request(request.headers.items(), body)
    except (EventError, UnsupportedFormat) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    if len(events) != 1:
        return web.json_response({"error": "a function receives exactly one event per request"}, status=400)
    event = events[0]
    header = request.headers.get(TRACEPARENT)
    parent, state = ((header, request.headers.get(TRACESTATE)) if is_traceparent(header)
                     else (event.get(TRACEPARENT), event.get(TRACESTATE)))
    with span(f"handle {slot.name or 'function'}", parent=parent if isinstance(parent, str) else None,
              tracestate=state if isinstance(state, str) else None, kind="server",
              attributes={"function": slot.name, "event_id": event.id, "event_type": event.type}) as trace:
        response = await _handle(slot, event, trace.traceparent, trace.tracestate)
        trace.set(status=response.status)
        if response.status >= 400:
            trace.fail(f"answered {response.status}")
        return response


async def _handle(slot: Slot, event: CloudEvent, traceparent: str, tracestate: str | None) -> web.Response:
    try:
        async with asyncio.timeout(slot.timeout):
            result = await call_handler(slot.handler, FunctionEvent(event))  # type: ignore[arg-type]
    except TimeoutError:
        return web.json_response({"error": f"handler timed out after {slot.timeout:g}s"}, status=504)
    except Reject as exc:
        log.warning("handler rejected event %s: %s", event.id, exc)
        return web.json_response({"error": str(exc) or "rejected"}, status=REJECTED)
    except RetryLater as exc:
        if exc.after is not None:
            return web.json_response({"error": str(exc)}, status=503,
                                     headers={"Retry-After": str(max(0, round(exc.after)))})
        return web.json_response({"error": str(exc)}, status=RETRY_LATER)
    except Exception as exc:
        log.error("handler failed on event %s: %s: %s", event.id, type(exc).__name__, exc)
        log.debug("handler traceback", exc_info=True)
        return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=500)
    if result is None:
        return web.Response(status=202)
    try:
        reply = reply_event(result)
    except (TypeError, EventError) as exc:
        return web.json_response({"error": f"invalid reply: {exc}"}, status=500)
    reply = in_trace(reply, traceparent, tracestate)  # the reply is part of the handler's trace
    headers, payload = encode_binary(reply)
    return web.Response(status=200, body=payload, headers=headers)


async def health(request: web.Request) -> web.Response:
    slot = request.app[SLOT_KEY]
    if slot.handler is None:
        return web.json_response({"status": "pool"}, status=503)
    return web.json_response({"status": "ok", "function": slot.name})


async def specialize(request: web.Request) -> web.Response:
    """Load a function into a warm-pool process: ``{"handler", "path", "env", "timeout", "name"}``."""
    slot = request.app[SLOT_KEY]
    if slot.handler is not None:
        return web.json_response({"error": f"already serving {slot.name}"}, status=409)
    spec = await request.json()
    os.environ.update({str(k): str(v) for k, v in (spec.get("env") or {}).items()})
    path = spec.get("path")
    if path:
        os.chdir(path)
    try:
        handler = await asyncio.to_thread(load_handler, spec["handler"], Path(path) if path else None)
        verifier = await asyncio.to_thread(runtime_verifier)  # imports PyJWT: not on the loop of a cold start
    except (HandlerError, KeyError, ValueError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    slot.verifier = verifier
    slot.handler, slot.timeout, slot.name = handler, float(spec.get("timeout", 30.0)), str(spec.get("name", ""))
    return web.json_response({"status": "ok", "function": slot.name})


def create_function_app(handler: Handler | None, *, timeout: float = 30.0, name: str = "",
                        verifier: DeliveryVerifier | None = None) -> web.Application:
    """The runtime's app; ``handler=None`` makes a warm-pool process that waits for ``/-/specialize`` (which
    reads the delivery-token settings from the environment it is given)."""
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[SLOT_KEY] = Slot(handler, timeout, name, verifier)
    app.router.add_get("/health", health)
    app.router.add_post("/", receive)
    if handler is None:
        app.router.add_post("/-/specialize", specialize)
    app.cleanup_ctx.append(exit_with_parent)
    return app
