"""NATS sources against a real nats-server: core subjects and durable JetStream consumers, CloudEvents forwarded
as they are, and a ``kill -9`` of the adapter process mid-stream losing nothing in JetStream mode."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig

from ripple.events.http import encode_binary, encode_structured
from ripple.local.nats_server import NatsServer
from ripple.sources.nats import MESSAGE_TYPE
from tests.processes import RippleProcess
from tests.support import event, eventually, subscriber


def manifest(url: str, extra: str = "") -> str:
    return (
        "apiVersion: ripple.dev/v1alpha1\nkind: EventSource\nmetadata: {name: orders}\nspec:\n"
        "  sink: {ref: {kind: Broker, name: default}}\n"
        f"  nats: {{url: '{url}', subject: 'orders.>'{extra}}}\n"
    )


async def test_core_messages_become_events_and_cloudevents_pass_as_they_are(serve_sources, nats_server: NatsServer):
    async with serve_sources(manifest(nats_server.url, ", queueGroup: adapters")) as served:
        nc = await nats.connect(nats_server.url)
        try:
            await eventually(lambda: served.sources.supervisor.states()[0].run_started > 0)
            await asyncio.sleep(0.3)  # the adapter's subscription reaches the server
            await nc.publish("orders.created", b'{"n": 1}', headers={"Nats-Msg-Id": "m-1",
                                                                  "Content-Type": "application/json"})
            headers, body = encode_binary(event("ce-1", type="com.example.binary", data={"n": 2}))
            await nc.publish("orders.binary", body, headers=headers)
            _, structured = encode_structured(event("ce-2", type="com.example.structured"))
            await nc.publish("orders.structured", structured)
            await nc.flush()
            events = await eventually(lambda: _at_least(served, 3), timeout=10)
        finally:
            await nc.close()
    by_id = {e.id: e for e in events}
    plain = by_id["m-1"]
    assert plain.type == MESSAGE_TYPE and plain["subject"] == "orders.created" and plain.data == b'{"n": 1}'
    assert by_id["ce-1"].type == "com.example.binary" and by_id["ce-1"].source == "/tests"
    assert by_id["ce-2"].type == "com.example.structured"


async def _at_least(served, count: int):  # type: ignore[no-untyped-def]
    events = await served.events()
    return events if len(events) >= count else None


async def test_a_message_no_event_can_carry_is_dead_lettered_and_the_next_one_goes(serve_sources,
                                                                                   nats_server: NatsServer):
    async with serve_sources(manifest(nats_server.url)) as served:
        nc = await nats.connect(nats_server.url)
        try:
            await eventually(lambda: served.sources.supervisor.states()[0].run_started > 0)
            await asyncio.sleep(0.3)
            await nc.publish("orders." + "x" * 1100, b"{}")  # a subject longer than an event's subject may be
            await nc.publish("orders.ok", b"{}", headers={"Nats-Msg-Id": "ok-1"})
            await nc.flush()
            (event,) = await eventually(lambda: _at_least(served, 1), timeout=10)
            assert await eventually(served.dead_letters, timeout=10) == 1
        finally:
            await nc.close()
    assert event.id == "ok-1"


async def test_jetstream_messages_are_identified_by_stream_sequence(serve_sources, nats_server: NatsServer):
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="ORDERS", subjects=["orders.>"]))
    for n in range(5):
        await js.publish("orders.placed", json.dumps({"n": n}).encode())
    await nc.close()
    async with serve_sources(manifest(nats_server.url, ", stream: ORDERS, durable: ripple")) as served:
        events = await eventually(lambda: _at_least(served, 5), timeout=10)
    assert sorted(e.id for e in events) == [f"ORDERS:{n}" for n in range(1, 6)]


@pytest.mark.e2e
async def test_kill_9_of_the_adapter_mid_stream_loses_nothing(tmp_path: Path, nats_server: NatsServer):
    total = 300
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="ORDERS", subjects=["orders.>"]))
    for n in range(total):
        await js.publish("orders.placed", json.dumps({"n": n}).encode())
    await nc.close()
    source = tmp_path / "source.yaml"
    source.write_text(manifest(nats_server.url, ", stream: ORDERS, durable: ripple").replace(
        "{ref: {kind: Broker, name: default}}", "{uri: 'http://127.0.0.1:1/'}"))

    async def slow(e, attempt):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.005)
        from aiohttp import web
        return web.Response(status=202)

    async with subscriber(slow) as sub:
        args = ("source", "run", "--source", str(source), "--sink", sub.url, "--port", "0",
                "--host", "127.0.0.1")
        first = await RippleProcess(*args).start()
        try:
            await first.wait_for_line("source adapter listening")
            await sub.wait_for(total // 4, timeout=30)
            first.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            await first.process.wait()  # type: ignore[union-attr]
        finally:
            await first.stop()
        killed_at = len(set(sub.ids()))
        assert killed_at < total  # killed mid-stream
        second = await RippleProcess(*args).start()
        try:
            await eventually(lambda: len(set(sub.ids())) >= total, timeout=60)
        finally:
            await second.stop()
    assert set(sub.ids()) == {f"ORDERS:{n}" for n in range(1, total + 1)}
