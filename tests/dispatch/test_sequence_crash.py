"""A dispatcher killed with SIGKILL in the middle of 1,000 events through a 3-step Sequence: every event completes
every step, and a step runs again only for what was in flight, unacknowledged, when the process died."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from ripple.events.extensions import stamp_arrival
from ripple.store import subjects
from ripple.store.flows import Entry, store_entries
from tests.dispatch.test_sequences import counting_step
from tests.processes import RippleProcess, tcp_ports
from tests.support import Subscriber, event, eventually, subscriber

pytestmark = pytest.mark.e2e

TOTAL = 1000
CONCURRENCY = 8
MANIFEST = """
apiVersion: ripple.dev/v1alpha1
kind: Sequence
metadata: {{name: crash}}
spec:
  steps:
    - {{uri: "{one}", delivery: {{concurrency: {c}, retry: 5, backoffDelay: PT0.1S}}}}
    - {{uri: "{two}", delivery: {{concurrency: {c}, retry: 5, backoffDelay: PT0.1S}}}}
    - {{uri: "{three}", delivery: {{concurrency: {c}, retry: 5, backoffDelay: PT0.1S}}}}
---
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {{name: done}}
spec:
  filter: {{attributes: {{type: step3}}}}
  subscriber: {{uri: "{done}"}}
  delivery: {{concurrency: {c}}}
"""


def slow(type_: str):  # type: ignore[no-untyped-def]
    """A step that takes 5 ms and counts ``n`` up, answering with ``type_``."""
    step = counting_step(type_)

    async def respond(ev, attempt) -> web.StreamResponse:
        await asyncio.sleep(0.005)
        return step(ev, attempt)
    return respond


@asynccontextmanager
async def sequence_steps() -> AsyncIterator[tuple[Subscriber, Subscriber, Subscriber, Subscriber]]:
    """The three steps' subscribers and the final one."""
    async with subscriber(slow("step1")) as one, subscriber(slow("step2")) as two, \
            subscriber(slow("step3")) as three, subscriber() as done:
        yield one, two, three, done


def write_manifest(tmp_path: Path, one: Subscriber, two: Subscriber, three: Subscriber, done: Subscriber) -> Path:
    manifest = tmp_path / "sequence.yaml"
    manifest.write_text(MANIFEST.format(one=one.url, two=two.url, three=three.url, done=done.url, c=CONCURRENCY))
    return manifest


async def test_a_killed_dispatcher_leaves_every_event_to_complete_every_step(tmp_path: Path, nats_server, store):
    async with sequence_steps() as (one, two, three, done):
        manifest = write_manifest(tmp_path, one, two, three, done)
        first = await RippleProcess("dispatcher", str(manifest), "--nats", nats_server.url).start()
        try:
            await first.wait_for_line("dispatcher running 1 triggers and 1 sequences")
            entry = Entry("Sequence", "default", "crash", "default")
            for start in range(0, TOTAL, 100):
                await store_entries(store, entry, [stamp_arrival(event(f"order-{i}", data={"n": 0}))
                                                   for i in range(start, start + 100)])
            await three.wait_for(150, timeout=60)  # mid-run: all three steps are busy
            await first.kill()
        finally:
            await first.stop()
        assert len(set(done.ids())) < TOTAL, "the kill came too late to be mid-run"

        second = await RippleProcess("dispatcher", str(manifest), "--nats", nats_server.url).start()
        try:
            await eventually(lambda: len(set(done.ids())) == TOTAL, timeout=120, interval=0.2)
            await eventually(lambda: _settled(store), timeout=60, interval=0.2)
        finally:
            await second.stop()

    assert set(done.ids()) == {f"order-{i}#crash.out" for i in range(TOTAL)}
    assert all(r.event.json_data()["n"] == 3 for r in done.received)  # each went through all three steps
    repeats = {name: sum(n - 1 for n in Counter(s.ids()).values())
               for name, s in (("step 1", one), ("step 2", two), ("step 3", three), ("done", done))}
    report = {"events": TOTAL, "deliveries": {name: len(s.ids()) for name, s in
                                              (("step 1", one), ("step 2", two), ("step 3", three), ("done", done))},
              "repeated": repeats}
    print(json.dumps(report))
    (tmp_path / "report.json").write_text(json.dumps(report))
    # A step runs an event again only when the dead process held it unacknowledged: at most its concurrency.
    assert all(count <= CONCURRENCY for count in repeats.values()), report


async def _settled(store) -> bool:
    stream = subjects.stream_name("default", "default")
    for hop in ("_seq_crash_0", "_seq_crash_1", "_seq_crash_2", "done"):
        info = await store.js.consumer_info(stream, subjects.consumer_name(hop))
        if info.num_pending or info.num_ack_pending:
            return False
    return True


async def test_two_dispatchers_share_every_step_of_a_sequence(tmp_path: Path, nats_server, store):
    """Two dispatcher processes on the same Sequence: each step's durable consumer spreads its events between
    them (the hand-off from one step to the next too), and every event completes every step."""
    async with sequence_steps() as (one, two, three, done):
        manifest = write_manifest(tmp_path, one, two, three, done)
        dispatchers = [await RippleProcess("dispatcher", str(manifest), "--nats", nats_server.url).start()
                       for _ in range(2)]
        try:
            for dispatcher in dispatchers:
                await dispatcher.wait_for_line("dispatcher running 1 triggers and 1 sequences")
            entry = Entry("Sequence", "default", "crash", "default")
            for start in range(0, TOTAL, 100):
                await store_entries(store, entry, [stamp_arrival(event(f"order-{i}", data={"n": 0}))
                                                   for i in range(start, start + 100)])
            await eventually(lambda: len(set(done.ids())) == TOTAL, timeout=120, interval=0.2)
            ports = {}
            for name, dispatcher in zip(("first", "second"), dispatchers, strict=True):
                assert dispatcher.process is not None
                ports[name] = tcp_ports(dispatcher.process.pid)  # its keep-alive connections to each step
        finally:
            for dispatcher in dispatchers:
                await dispatcher.stop()

    steps = {"step 1": one, "step 2": two, "step 3": three}
    shares = {}
    for label, step in steps.items():
        by = Counter(next((name for name, owned in ports.items() if r.peer_port in owned), "unknown")
                     for r in step.received)
        shares[label] = {name: round(by[name] / len(step.received), 3) for name in ("first", "second")}
    report = {"events": TOTAL, "shares": shares, "completed": len(set(done.ids())),
              "repeated": {label: len(s.received) - len(set(s.ids())) for label, s in steps.items()}}
    print(json.dumps(report))
    assert all(r.event.json_data()["n"] == 3 for r in done.received)
    for share in shares.values():
        assert share["first"] > 0.3 and share["second"] > 0.3, report
