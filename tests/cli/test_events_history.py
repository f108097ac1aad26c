"""An event's history from the delivery records every trigger keeps: ``read_history`` against real JetStream
and a real dispatcher, then ``ripple events show`` and ``ripple events tail`` as the commands a person runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web

from ripple.api.models import BrokerSpec
from ripple.cli.events import format_history
from ripple.dispatch import Dispatcher
from ripple.dispatch.resolve import static_resolver
from ripple.events.extensions import stamp_arrival
from ripple.events.http import encode_binary
from ripple.store import EventStore
from ripple.store.history import read_history
from ripple.store.records import RECORDS_STREAM, RecordSettings
from tests.processes import RippleProcess
from tests.support import event, eventually, subscriber, trigger

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def validator(ev, attempt) -> web.StreamResponse:
    headers, body = encode_binary(event("validated-1", type="order.validated", data={"order": 7}))
    return web.Response(status=200, headers=headers, body=body)


async def dead_lettered_flow(store: EventStore, records: RecordSettings | None = None):
    """order-1 → validate (replies validated-1) → audit (fails twice: dead-lettered). Yields when all settled."""
    async with subscriber(validator) as validate, \
            subscriber(lambda ev, attempt: web.Response(status=500, text="audit is down")) as audit:
        dispatcher = Dispatcher(store, static_resolver({}), ack_wait=5.0, records=records)
        try:
            await dispatcher.apply([
                trigger("validate", subscriber=validate.url, filter={"attributes": {"type": "order.placed"}}),
                trigger("audit", subscriber=audit.url, filter={"attributes": {"type": "order.validated"}},
                        delivery={"retry": 1, "backoffDelay": "PT0.05S"}),
            ])
            placed = event("order-1", type="order.placed", data={"order": 7}, traceparent=TRACEPARENT)
            await store.publish_event("default", "default", stamp_arrival(placed))
            await eventually(lambda: dispatcher.workers[("default", "audit")].stats.dead_lettered == 1, timeout=20)
        finally:
            await dispatcher.close()


async def test_an_events_history_holds_every_attempt_reply_retry_and_dead_letter(store):
    await dead_lettered_flow(store)
    history = await eventually(lambda: _settled(store), timeout=10)
    assert history.event is not None and history.event.json_data() == {"order": 7}
    (validated,) = history.records
    assert (validated["trigger"], validated["outcome"], validated["status"]) == ("default/validate",
                                                                                "delivered, replied", 200)
    assert validated["reply"] == {"id": "validated-1", "type": "order.validated"}
    assert validated["traceId"] == TRACE and validated["attempt"] == 1
    (reply,) = history.replies
    assert reply.event is not None and reply.event.type == "order.validated"
    assert [(r["trigger"], r["attempt"], r["status"], r["outcome"]) for r in reply.records] == [
        ("default/audit", 1, 500, "retry"), ("default/audit", 2, 500, "dead-lettered")]
    assert {r["traceId"] for r in reply.records} == {TRACE}, "the reply stays in its cause's trace"
    text = format_history(history)
    print(text)
    assert text.splitlines()[0].startswith("event order-1  type order.placed  source /tests  trace " + TRACE)
    assert "delivered, replied validated-1 (order.validated)" in text and "dead-lettered" in text


async def _settled(store):
    history = await read_history(store, "order-1")
    replies = history.replies
    return history if replies and len(replies[0].records) == 2 else None


async def test_the_history_keeps_what_its_retention_says(store):
    await dead_lettered_flow(store, RecordSettings(max_age=600, max_bytes=1 << 20))
    info = await store.js.stream_info(RECORDS_STREAM)
    assert info.config.max_age == 600 and info.config.max_bytes == 1 << 20


@pytest.mark.parametrize(("age", "size"), [(0, 1), (60, 0), (-1, 1)])
def test_a_retention_of_nothing_is_refused(age, size):
    with pytest.raises(ValueError, match="positive age and size"):
        RecordSettings(max_age=age, max_bytes=size)


async def test_an_event_nobody_recorded_has_no_history(store):
    history = await read_history(store, "never-sent")
    assert history.event is None and history.records == [] and history.replies == []


@pytest.mark.e2e
async def test_ripple_events_show_prints_a_dead_lettered_events_history(tmp_path: Path, nats_server, store):
    await dead_lettered_flow(store)
    await eventually(lambda: _settled(store), timeout=10)
    shown = await RippleProcess("events", "show", "order-1", "--nats", nats_server.url).start()
    assert await shown.finished() == 0
    print(shown.output())
    assert "dead-lettered" in shown.output()
    assert "reply:" in shown.output() and "order.validated" in shown.output()
    as_json = await RippleProcess("events", "show", "order-1", "--json", "--nats", nats_server.url).start()
    assert await as_json.finished() == 0
    document = json.loads(as_json.output())
    assert document["event"]["id"] == "order-1" and document["replies"][0]["records"][-1]["outcome"] == "dead-lettered"
    missing = await RippleProcess("events", "show", "never-sent", "--nats", nats_server.url).start()
    assert await missing.finished() == 1 and "no delivery of event 'never-sent' is recorded" in missing.output()


@pytest.mark.e2e
async def test_ripple_events_tail_follows_a_broker_live(nats_server, store):
    await store.ensure_broker("shop", "default", BrokerSpec())
    tail = await RippleProcess("events", "tail", "--broker", "default/default", "--type", "order.placed",
                               "--count", "2", "--nats", nats_server.url).start()
    await tail.wait_for_line("following default/default (type order.placed)")
    for ident, kind in (("a", "order.placed"), ("b", "order.shipped"), ("c", "order.placed")):
        await store.publish_event("default", "default", stamp_arrival(event(ident, type=kind,
                                                                            traceparent=TRACEPARENT)))
    await store.publish_event("shop", "default", stamp_arrival(event("d", type="order.placed")))
    assert await tail.finished() == 0
    lines = [line for line in tail.lines if "order." in line and not line.startswith("following")]
    print("\n".join(lines))
    assert [line.split()[4] for line in lines] == ["a", "c"]
    assert all(line.split()[1] == "default/default" and line.endswith(TRACE) for line in lines)
