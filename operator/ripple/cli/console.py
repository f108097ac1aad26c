"""``ripple console --kubernetes``: the flow page for a cluster (``/ui/``), with ``/-/health`` for its probes."""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from ripple._aio import cancel_and_wait, wait_for_signal
from ripple.cli.logs import announce
from ripple.console import create_console_app
from ripple.serving import start_site
from ripple.store import EventStore

__all__ = ["run", "to_page"]


async def to_page(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ui/")


async def run(args: argparse.Namespace) -> int:
    from ripple.cluster.console import ClusterConsoleSource
    from ripple.kube.client import load_kube_config

    store = await EventStore.connect(args.nats, name="ripple-console")
    api = await load_kube_config()
    source = ClusterConsoleSource(store, api, dispatchers=args.dispatchers)
    watching = asyncio.create_task(source.run())

    async def health(request: web.Request) -> web.Response:
        connected, running = store.connected, not watching.done()
        return web.json_response({"nats": connected, "running": running}, status=200 if connected and running else 503)

    app = web.Application()
    app.router.add_get("/-/health", health)
    app.router.add_get("/", to_page)
    app.add_subapp("/ui/", create_console_app(source))
    runner = await start_site(app, args.host, args.port, name="console")
    announce(f"console listening on http://{args.host}:{args.port}/ui/")
    try:
        await wait_for_signal()
    finally:
        await runner.cleanup()
        await cancel_and_wait([watching])
        await api.close()
        await store.close()
    return 0
