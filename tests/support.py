"""Test helpers: real HTTP servers on loopback, a recording subscriber, event and manifest builders."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ripple._aio import free_port
from ripple.api.models import API_VERSION, Trigger
from ripple.events.http import decode_request
from ripple.events.model import CloudEvent


def event(id: str = "e1", type: str = "com.example.test", source: str = "/tests", **extra: Any) -> CloudEvent:
    data = extra.pop("data", None)
    attributes = {"specversion": "1.0", "id": id, "type": type, "source": source, **extra}
    if data is not None and not isinstance(data, bytes):
        import json

        attributes.setdefault("datacontenttype", "application/json")
        data = json.dumps(data).encode()
    return CloudEvent.create(attributes, data)


def trigger(name: str = "t", *, namespace: str = "default", subscriber: str | None = None, **spec: Any) -> Trigger:
    body: dict[str, Any] = {"subscriber": {"uri": subscriber} if subscriber else spec.pop("subscriber_ref")}
    body.update(spec)
    return Trigger.model_validate(
        {"apiVersion": API_VERSION, "kind": "Trigger", "metadata": {"name": name, "namespace": namespace}, "spec": body}
    )


@asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run an aiohttp app on a free loopback port; yield its base URL (no trailing slash)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port(host)
    await web.TCPSite(runner, host, port).start()
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


Responder = Callable[[CloudEvent, int], Awaitable[web.StreamResponse] | web.StreamResponse]


@dataclass
class Received:
    event: CloudEvent
    at: float
    headers: dict[str, str]
    peer_port: int = 0
    """The sender's TCP port: which process delivered it (see ``tests.processes.tcp_ports``)."""


@dataclass
class Subscriber:
    """A real HTTP subscriber that records every delivery and answers as told."""

    respond: Responder | None = None
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _attempts: Counter[str] = field(default_factory=Counter)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        (ev,) = decode_request(request.headers.items(), body)
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        self.received.append(Received(ev, time.monotonic(), dict(request.headers), peer[1] if peer else 0))
        self._attempts[ev.id] += 1
        attempt = self._attempts[ev.id]
        async with self._changed:
            self._changed.notify_all()
        if self.respond is None:
            return web.Response(status=202)
        result = self.respond(ev, attempt)
        if isinstance(result, Awaitable):
            result = await result
        return result

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        return app

    def ids(self) -> list[str]:
        return [r.event.id for r in self.received]

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """Wait until at least ``count`` deliveries arrived; fail with what did arrive."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.received) >= count)
        return self.received


@asynccontextmanager
async def subscriber(respond: Responder | None = None) -> AsyncIterator[Subscriber]:
    sub = Subscriber(respond)
    async with serve(sub.app()) as url:
        sub.url = url + "/"
        yield sub


async def eventually(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy (awaiting it if it is a coroutine)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
