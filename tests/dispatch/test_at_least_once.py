"""At-least-once: a dispatcher killed mid-stream loses nothing; every accepted event is delivered afterwards."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from ripple.events.http import encode_binary
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.store import subjects
from tests.processes import RippleProcess
from tests.support import event, eventually, serve, subscriber

pytestmark = pytest.mark.e2e

TOTAL = 300
MANIFEST = """
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata:
  name: all-events
spec:
  subscriber:
    uri: {url}
  delivery:
    retry: 5
    backoffDelay: PT0.1S
    concurrency: 8
"""


async def test_killed_dispatcher_loses_no_accepted_event(tmp_path: Path, nats_server, store):
    async def slow_ok(ev, attempt):
        await asyncio.sleep(0.05)
        return web.Response(status=202)

    async with subscriber(slow_ok) as sub:
        manifest = tmp_path / "trigger.yaml"
        manifest.write_text(MANIFEST.format(url=sub.url))
        settings = IngressSettings(brokers=lambda ns, b: (ns, b) == ("default", "default"))
        async with serve(create_ingress_app(store, settings)) as ingress_url:
            first = await RippleProcess("dispatcher", str(manifest), "--nats", nats_server.url).start()
            try:
                await first.wait_for_line("dispatcher running 1 triggers")
                accepted = await _send_all(ingress_url + "/default/default", stop_after=2 * TOTAL // 3)
                await sub.wait_for(50)  # mid-stream: deliveries are flowing, more are fetched and in flight
                await first.kill()
                accepted += await _send_all(ingress_url + "/default/default", start=len(accepted))
            finally:
                await first.stop()
            assert len(accepted) == TOTAL
            assert len(set(sub.ids())) < 2 * TOTAL // 3, "the kill came too late to be mid-stream"

            second = await RippleProcess("dispatcher", str(manifest), "--nats", nats_server.url).start()
            try:
                await eventually(lambda: set(sub.ids()) >= set(accepted), timeout=60, interval=0.2)
                await eventually(lambda: _all_acknowledged(store), timeout=60, interval=0.2)
            finally:
                await second.stop()
    assert set(sub.ids()) == set(accepted)
    # Deliveries cut off by the kill were not acknowledged, so JetStream handed them out again.
    assert len(sub.ids()) > len(accepted)


async def _all_acknowledged(store) -> bool:
    stream, consumer = subjects.stream_name("default", "default"), subjects.consumer_name("all-events")
    info = await store.js.consumer_info(stream, consumer)
    return info.num_pending == 0 and info.num_ack_pending == 0


async def _send_all(url: str, *, start: int = 0, stop_after: int | None = None) -> list[str]:
    """POST events one by one; return the ids answered 202."""
    accepted = []
    async with aiohttp.ClientSession() as session:
        for i in range(start, TOTAL if stop_after is None else stop_after):
            headers, body = encode_binary(event(f"ev-{i}", data={"i": i}))
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status == 202
                accepted.append(f"ev-{i}")
    return accepted
