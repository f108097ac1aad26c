"""``ripple dlq list|show|redrive`` against a real broker's dead-letter stream."""

from __future__ import annotations

import json

import pytest

from ripple.events.extensions import stamp_arrival
from ripple.store import EventStore, subjects
from ripple.store.dlq import dead_letters
from tests.processes import RippleProcess
from tests.support import event

pytestmark = pytest.mark.e2e


async def run(*args: str) -> tuple[int, str]:
    process = await RippleProcess(*args).start()
    assert process.process is not None
    code = await process.process.wait()
    await process.stop()
    return code, process.output()


async def test_list_show_and_redrive(nats_server, store: EventStore):
    for i, trigger in enumerate(["ship", "bill"], start=1):
        letter = stamp_arrival(event(f"ev-{i}", type="order.validated", data={"n": i})).with_attributes(
            rippleerrorcode=503, rippleerrordest="http://fn/", rippleerrortrigger=f"default/{trigger}"
        )
        await store.store_dead_letter("default", "default", trigger, letter, delivery_id=str(i))
    nats = ["--nats", nats_server.url]

    code, out = await run("dlq", *nats, "list")
    assert code == 0
    rows = [line for line in out.splitlines() if "order.validated" in line]
    assert len(rows) == 2 and "default/ship" in rows[0] and "status=503" in rows[0]

    code, out = await run("dlq", *nats, "show", "2")
    shown = json.loads(out)
    assert code == 0 and shown["event"]["id"] == "ev-2" and shown["event"]["data"] == {"n": 2}

    code, out = await run("dlq", *nats, "redrive", "1", "--trigger", "ship")
    assert code == 0 and "redrove 1 (ev-1) to ship" in out
    stream = subjects.stream_name("default", "default")
    raw = await store.js.get_last_msg(stream, "ripple.default.default.r.ship")
    assert json.loads(raw.data)["id"] == "ev-1" and "rippleerrorcode" not in json.loads(raw.data)

    code, out = await run("dlq", *nats, "redrive")
    assert code == 0 and "redrove 2 (ev-2) to the broker" in out
    raw = await store.js.get_last_msg(stream, "ripple.default.default.e.order.validated")
    assert json.loads(raw.data)["id"] == "ev-2"
    assert [letter async for letter in dead_letters(store, "default", "default")] == []

    code, out = await run("dlq", *nats, "redrive", "99")
    assert code == 1 and "no dead letter with sequence [99]" in out
