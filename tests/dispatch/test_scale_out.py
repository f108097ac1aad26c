"""Two dispatcher processes on one trigger: JetStream spreads the trigger's events between them, and when one is
killed with SIGKILL the other delivers the rest, its unacknowledged events included, after ``ackWait``."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web

from ripple.events.extensions import stamp_arrival
from ripple.store import subjects
from ripple.store.jetstream import MSG_ID_HEADER, dedup_id
from tests.processes import RippleProcess, tcp_ports
from tests.support import event, eventually, subscriber

pytestmark = pytest.mark.e2e

TOTAL = 4000
MANIFEST = """
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {{name: shared}}
spec:
  subscriber: {{uri: "{url}"}}
  delivery: {{concurrency: 16}}
"""


async def two_dispatchers(tmp_path: Path, nats_url: str, subscriber_url: str) -> list[RippleProcess]:
    """Two ``ripple dispatcher`` processes serving the same trigger, both fetching."""
    (tmp_path / "trigger.yaml").write_text(MANIFEST.format(url=subscriber_url))
    started = [await RippleProcess("dispatcher", str(tmp_path / "trigger.yaml"), "--nats", nats_url).start()
               for _ in range(2)]
    for dispatcher in started:
        await dispatcher.wait_for_line("dispatcher running 1 triggers")
    return started


async def publish(store, count: int) -> None:  # type: ignore[no-untyped-def]
    subject = subjects.event_subject("default", "default", "com.example.test")
    for start in range(0, count, 500):
        batch = [stamp_arrival(event(f"e{i}")) for i in range(start, min(count, start + 500))]
        await store.publish_many([(subject, e.to_json_bytes(), {MSG_ID_HEADER: dedup_id(e)}) for e in batch])


async def test_two_dispatchers_share_a_trigger_and_one_takes_over_when_the_other_dies(tmp_path: Path, nats_server,
                                                                                     store):
    async def slow(ev, attempt) -> web.StreamResponse:
        await asyncio.sleep(0.005)
        return web.Response(status=202)

    async with subscriber(slow) as sub:
        first, second = await two_dispatchers(tmp_path, nats_server.url, sub.url)
        try:
            await publish(store, TOTAL)
            await sub.wait_for(TOTAL // 3, timeout=60)
            assert first.process is not None and second.process is not None
            ports = {"first": tcp_ports(first.process.pid), "second": tcp_ports(second.process.pid)}
            shares = Counter(next((name for name, owned in ports.items() if r.peer_port in owned), "unknown")
                             for r in sub.received)
            await first.kill()
            await eventually(lambda: len(set(sub.ids())) == TOTAL, timeout=90, interval=0.2)
        finally:
            await first.stop()
            await second.stop()
    before = sum(shares.values())
    report = {"events": TOTAL, "before_kill": dict(shares), "share_first": round(shares["first"] / before, 3),
              "share_second": round(shares["second"] / before, 3), "deliveries": len(sub.received),
              "repeated": len(sub.received) - TOTAL, "lost": TOTAL - len(set(sub.ids()))}
    print(json.dumps(report))
    assert report["share_first"] > 0.3 and report["share_second"] > 0.3, report
    assert report["lost"] == 0


async def test_a_dispatcher_stopped_with_sigterm_finishes_what_it_holds(tmp_path: Path, nats_server, store):
    """A rolling restart: SIGTERM stops fetching, lets in-flight deliveries finish and acks them, so the other
    replica redelivers nothing."""
    async def slow(ev, attempt) -> web.StreamResponse:
        await asyncio.sleep(0.02)
        return web.Response(status=202)

    async with subscriber(slow) as sub:
        first, second = await two_dispatchers(tmp_path, nats_server.url, sub.url)
        try:
            await publish(store, 1000)
            await sub.wait_for(300, timeout=60)
            assert first.process is not None
            first.process.terminate()
            assert await asyncio.wait_for(first.process.wait(), 20) == 0
            await eventually(lambda: len(set(sub.ids())) == 1000, timeout=60, interval=0.2)
            await asyncio.sleep(1)
        finally:
            await first.stop()
            await second.stop()
    repeated = Counter(sub.ids())
    assert [i for i, n in repeated.items() if n > 1] == []
