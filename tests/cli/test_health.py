"""``ripple.cli.health``: the health and metrics server of the components without an HTTP server of their own
(dispatcher, autoscaler), and running such a component until it is signalled."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from ripple._aio import free_port
from ripple.cli.health import run_component, serve_health
from ripple.store import EventStore
from tests.support import eventually


async def status_of(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status


async def fetch(url: str) -> tuple[int, str, Any]:
    """Status, Content-Type and body (JSON when it is JSON)."""
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        if response.content_type == "application/json":
            return response.status, response.content_type, await response.json()
        return response.status, response.content_type, await response.text()


async def refused(url: str) -> bool:
    try:
        await status_of(url)
    except aiohttp.ClientConnectionError:
        return True
    return False


async def test_component_health_is_503_without_nats(nats_server):
    store = await EventStore.connect(nats_server.url)
    port = free_port()
    running = True
    runner = await serve_health(store, lambda: running, "127.0.0.1", port)
    try:
        url = f"http://127.0.0.1:{port}/-/health"
        assert await status_of(url) == 200
        running = False
        assert await status_of(url) == 503
        running = True
        await nats_server.stop()
        await eventually(lambda: not store.connected)
        assert await status_of(url) == 503
    finally:
        await runner.cleanup()
        await store.close()


async def test_health_body_says_which_part_is_down_and_metrics_are_served(nats_server):
    store = await EventStore.connect(nats_server.url)
    port = free_port()
    running = True
    runner = await serve_health(store, lambda: running, "127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    try:
        assert await fetch(base + "/-/health") == (200, "application/json", {"nats": True, "running": True})
        running = False
        assert await fetch(base + "/-/health") == (503, "application/json", {"nats": True, "running": False})

        status, content_type, text = await fetch(base + "/metrics")
        assert status == 200 and content_type == "text/plain"
        assert "# TYPE ripple_task_restarts_total counter" in text
        assert "# TYPE ripple_deliveries_total counter" in text
    finally:
        await runner.cleanup()
        await store.close()
    assert await refused(base + "/-/health")


class Output:
    """What the test printed so far; a component's banner comes right before it waits for a signal."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.text = ""

    def has(self, line: str) -> bool:
        self.text += self.capsys.readouterr().out
        return line in self.text


@pytest.fixture
def output(capsys: pytest.CaptureFixture[str]) -> Output:
    return Output(capsys)


@asynccontextmanager
async def component(
    store: EventStore, work: Coroutine[Any, Any, None], port: int, healthy: Callable[[], bool], output: Output
) -> AsyncIterator[asyncio.Task[None]]:
    """``run_component`` as ``ripple dispatcher`` runs it, started and (should the test fail) cancelled."""
    running = asyncio.create_task(run_component(store, work, "component ready", port, healthy))
    try:
        # Once the banner is out, the signal handlers are installed: nothing is awaited in between.
        await eventually(lambda: output.has("component ready") or running.done(), timeout=10)
        assert not running.done(), output.text
        yield running
    finally:
        if not running.done():
            running.cancel()
        await asyncio.gather(running, return_exceptions=True)


def stop_signal() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


async def test_run_component_serves_health_and_a_signal_stops_work_health_and_store(nats_server, output):
    store = await EventStore.connect(nats_server.url)
    port = free_port()
    url = f"http://127.0.0.1:{port}/-/health"
    cancelled = asyncio.Event()
    healthy = True

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with asyncio.timeout(15), component(store, work(), port, lambda: healthy, output) as running:
        assert await status_of(url) == 200
        healthy = False
        assert await status_of(url) == 503
        healthy = True
        assert await status_of(url) == 200

        stop_signal()
        await running
    assert cancelled.is_set()
    assert not store.connected
    assert await refused(url)


async def test_health_is_503_once_the_work_has_ended(nats_server, output):
    store = await EventStore.connect(nats_server.url)
    port = free_port()
    url = f"http://127.0.0.1:{port}/-/health"
    finish = asyncio.Event()

    async def work() -> None:
        await finish.wait()

    async with asyncio.timeout(15), component(store, work(), port, lambda: True, output) as running:
        assert await status_of(url) == 200
        finish.set()
        assert await eventually(lambda: is_503(url), timeout=5)
        assert not running.done()  # a component whose work ended still runs until it is told to stop

        stop_signal()
        await running
    assert not store.connected


async def is_503(url: str) -> bool:
    return await status_of(url) == 503
