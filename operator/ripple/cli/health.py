"""The health and metrics server of the components without an HTTP server of their own, and running such a
component until it is signalled."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from aiohttp import web

from ripple._aio import cancel_and_wait, wait_for_signal
from ripple.metrics import serve_metrics
from ripple.serving import start_site
from ripple.store import EventStore

__all__ = ["run_component", "serve_health"]


async def serve_health(store: EventStore, alive: Callable[[], bool], host: str, port: int,
                       routes: Iterable[web.RouteDef] = ()) -> web.AppRunner:
    """``GET /-/health`` (200 while NATS is connected and the component's loops run, else 503), ``/metrics`` and
    ``routes`` (the dispatcher's JWKS)."""

    async def health(request: web.Request) -> web.Response:
        connected, running = store.connected, alive()
        return web.json_response({"nats": connected, "running": running}, status=200 if connected and running else 503)

    app = web.Application()
    app.router.add_get("/-/health", health)
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_routes(routes)
    return await start_site(app, host, port, name="health")


async def run_component(
    store: EventStore, work: Coroutine[Any, Any, None], banner: str, health_port: int | None,
    healthy: Callable[[], bool], routes: Iterable[web.RouteDef] = (),
) -> None:
    running = asyncio.create_task(work)
    health = None
    if health_port is not None:
        health = await serve_health(store, lambda: not running.done() and healthy(), "0.0.0.0", health_port, routes)
    print(banner, flush=True)
    try:
        await wait_for_signal()
    finally:
        await cancel_and_wait([running])
        if health is not None:
            await health.cleanup()
        await store.close()
