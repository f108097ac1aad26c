"""One reconciling operator at a time: the operator's replicas wait on the Lease ``ripple-operator``, and only its
holder runs Kopf. A holder that cannot renew stops Kopf and exits before the lease can expire, so two never
reconcile at once; its pod is restarted as a standby. Standbys answer their liveness probe and nothing else, so
the webhook Service (ready pods only) reaches the leader alone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from ripple.kube.lease import KubeLease
from ripple.metrics import OPERATOR_LEADER

__all__ = ["OPERATOR_LEASE", "LeadershipLost", "run_when_leading"]

log = logging.getLogger(__name__)
OPERATOR_LEASE = "ripple-operator"
CHECK_INTERVAL = 1.0
"""How often the leader looks at its lease between renewals: well inside the lease's 20 % safety margin."""


class LeadershipLost(RuntimeError):
    """The operator lease could not be renewed in time; Kopf was stopped."""


async def _standby_liveness(url: str | None) -> web.AppRunner | None:
    if url is None:
        return None
    parts = urlsplit(url)

    async def alive(request: web.Request) -> web.Response:
        return web.json_response({"standby": True})

    app = web.Application()
    app.router.add_get(parts.path or "/", alive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, parts.hostname or "0.0.0.0", parts.port or 8080).start()
    return runner


async def _wait_for(lease: KubeLease, stop: asyncio.Event) -> bool:
    """Try the lease until it is held (True) or ``stop`` is set (False)."""
    while not await lease.attempt():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), lease.ttl / 5)
        if stop.is_set():
            return False
    return True


async def _keep(lease: KubeLease, stop: asyncio.Event, done: asyncio.Event, halt: asyncio.Event) -> bool:
    """Renew the lease until ``stop`` or ``done``; sets ``halt`` (always), and answers False when it stopped
    because the lease was no longer held."""
    clock = asyncio.get_running_loop().time
    renewed = clock()
    try:
        while not (stop.is_set() or done.is_set()):
            if clock() - renewed >= lease.ttl / 3:
                await lease.attempt()
                renewed = clock()
            if not lease.held():
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CHECK_INTERVAL)
        return True
    finally:
        halt.set()


async def run_when_leading(lease: KubeLease, run: Callable[[asyncio.Event], Awaitable[None]], *,
                           stop: asyncio.Event | None = None, liveness: str | None = None) -> None:
    """Wait as a standby until ``lease`` is held, then ``run`` (given the event that stops it) while it stays
    held. Raises :class:`LeadershipLost` when it was lost; gives it up when ``run`` ends or ``stop`` is set."""
    stop = stop or asyncio.Event()
    OPERATOR_LEADER.set(0)
    standby = await _standby_liveness(liveness)
    log.info("operator: standby, waiting for the lease %s/%s as %s", lease.namespace, lease.name, lease.holder)
    try:
        if not await _wait_for(lease, stop):
            return
    finally:
        if standby is not None:
            await standby.cleanup()
    log.info("operator: leading (lease %s/%s)", lease.namespace, lease.name)
    OPERATOR_LEADER.set(1)
    halt, done = asyncio.Event(), asyncio.Event()
    keeping = asyncio.create_task(_keep(lease, stop, done, halt))
    try:
        await run(halt)
    finally:
        done.set()
        kept = await keeping
        OPERATOR_LEADER.set(0)
        await lease.release()
    if not kept:
        raise LeadershipLost(f"lost the lease {lease.namespace}/{lease.name}: stopped reconciling")
