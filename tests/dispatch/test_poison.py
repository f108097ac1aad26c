"""Poison events at each stage of the dispatcher: each ends as one dead letter, and the events behind it flow.

The messages are put into the broker's stream as a bug, an old version or a hand-written publish could leave
them, bypassing the ingress's checks, since the dispatcher must survive whatever the log holds.
"""

from __future__ import annotations

import base64
import json

from aiohttp import web

from ripple.dispatch import Dispatcher
from ripple.dispatch.dead_letter import UNDECODABLE_TYPE
from ripple.dispatch.reply import INVALID_REPLY_STATUS
from ripple.dispatch.router import ROUTER_TRIGGER
from ripple.events.extensions import ERROR_CODE, ERROR_REASON, ERROR_TRIGGER, stamp_arrival
from ripple.store import EventStore, subjects
from ripple.store.jetstream import MSG_ID_HEADER
from tests.dispatch.test_delivery import consumer_settled, letters, publish
from tests.support import event, eventually, subscriber, trigger

FAST_RETRY = {"retry": 1, "backoffDelay": "PT0.05S"}
PINNED = {"attributes": {"type": "com.example.test"}}
"""A trigger whose filter pins the type reads the log itself; one without goes through the router."""


async def put_raw(store: EventStore, subject: str, payload: bytes, msg_id: str) -> None:
    await store.js.publish(subject, payload, headers={MSG_ID_HEADER: msg_id})


def stored_doc(**attributes: object) -> dict[str, object]:
    return {"specversion": "1.0", "id": "poison", "source": "/tests", "type": "com.example.test", **attributes}


async def test_undecodable_message_is_dead_lettered_at_once_and_the_next_event_delivered(store, dispatcher):
    async with subscriber() as sub:
        await dispatcher.apply([trigger("t", subscriber=sub.url, filter=PINNED, delivery=FAST_RETRY)])
        await put_raw(store, subjects.event_subject("default", "default", "com.example.test"), b"\xff not json", "p1")
        await publish(store, event("after"))
        await sub.wait_for(1)
        assert sub.ids() == ["after"]
        (letter,) = await eventually(lambda: letters(store))
        assert letter.event.type == UNDECODABLE_TYPE and letter.event.data == b"\xff not json"
        assert letter.event[ERROR_CODE] == 0 and "decode failed" in letter.event[ERROR_REASON]
        await eventually(lambda: consumer_settled(store, "t"))
        assert dispatcher.stats()["default/t"]["poison"] == 1


async def test_event_that_cannot_be_encoded_is_retried_then_dead_lettered(store, dispatcher):
    # A stored attribute name with a newline: aiohttp refuses to send it as a header (ValueError).
    doc = stored_doc(**{"bad\nname": "x"})
    async with subscriber() as sub:
        await dispatcher.apply([trigger("t", subscriber=sub.url, filter=PINNED, delivery=FAST_RETRY)])
        await put_raw(store, subjects.event_subject("default", "default", "com.example.test"),
                      json.dumps(doc).encode(), "p2")
        await publish(store, event("after"))
        await sub.wait_for(1)
        (letter,) = await eventually(lambda: letters(store))
        assert letter.event.id == "poison" and letter.event[ERROR_CODE] == 0
        assert "delivery failed: ValueError" in letter.event[ERROR_REASON]
        await eventually(lambda: consumer_settled(store, "t"))
        assert sub.ids() == ["after"]
        stats = dispatcher.stats()["default/t"]
        assert stats["poison"] == 2 and stats["retried"] == 1 and stats["dead_lettered"] == 1


async def test_data_nested_100000_deep_does_not_stop_the_worker_or_the_router(store, dispatcher):
    deep = b"[" * 100_000 + b"]" * 100_000
    doc = stored_doc(datacontenttype="application/json", data_base64=base64.b64encode(deep).decode())
    data_filter = [{"pattern": {"data": {"kind": ["x"]}}}]
    pinned_data_filter = [{"exact": {"type": "com.example.test"}}, *data_filter]
    async with subscriber() as routed, subscriber() as pinned:
        await dispatcher.apply([
            trigger("routed", subscriber=routed.url, filters=data_filter, delivery=FAST_RETRY),
            trigger("pinned", subscriber=pinned.url, filters=pinned_data_filter, delivery=FAST_RETRY),
        ])
        await put_raw(store, subjects.event_subject("default", "default", "com.example.test"),
                      json.dumps(doc).encode(), "p3")
        await publish(store, event("after", data={"kind": "x"}))
        await routed.wait_for(1)
        await pinned.wait_for(1)
        assert routed.ids() == ["after"] and pinned.ids() == ["after"]
        await eventually(lambda: consumer_settled(store, "pinned"))
        router = dispatcher.routers[("default", "default")]
        info = await store.js.consumer_info(subjects.stream_name("default", "default"), subjects.ROUTER_CONSUMER)
        await eventually(lambda: info.num_pending == 0)
        assert router.routed >= 1 and dispatcher.healthy()


async def test_router_dead_letters_what_it_cannot_decode_and_keeps_routing(store, dispatcher):
    async with subscriber() as sub:
        await dispatcher.apply([trigger("t", subscriber=sub.url, filters=[{"prefix": {"source": "/tests"}}])])
        await put_raw(store, subjects.event_subject("default", "default", "x"), b"{not json", "p4")
        await publish(store, event("after"))
        await sub.wait_for(1)
        (letter,) = await eventually(lambda: letters(store))
        assert letter.trigger == f"default/{ROUTER_TRIGGER}" and letter.event[ERROR_TRIGGER] == letter.trigger
        assert letter.event.type == UNDECODABLE_TYPE and "router decode failed" in letter.event[ERROR_REASON]
        assert sub.ids() == ["after"]


async def test_invalid_reply_is_a_failed_delivery_not_a_stored_event(store, dispatcher: Dispatcher):
    def bad_reply(ev, attempt):
        headers = {"ce-specversion": "0.3", "ce-id": "r", "ce-source": "/r", "ce-type": "reply"}
        return web.Response(status=200, headers=headers, body=b"")

    async with subscriber(bad_reply) as sub, subscriber() as replies:
        await dispatcher.apply([
            trigger("t", subscriber=sub.url, delivery=FAST_RETRY),
            trigger("r", subscriber=replies.url, filter={"attributes": {"type": "reply"}}),
        ])
        await publish(store, event("a"))
        await sub.wait_for(2)
        (letter,) = await eventually(lambda: letters(store))
        assert letter.event.id == "a" and letter.event[ERROR_CODE] == INVALID_REPLY_STATUS
        assert "invalid reply" in letter.event[ERROR_REASON] and "specversion" in letter.event[ERROR_REASON]
        assert replies.received == [] and dispatcher.stats()["default/t"]["replies"] == 0


async def test_reply_with_an_oversized_type_never_reaches_nats(store, dispatcher: Dispatcher):
    def long_reply(ev, attempt):
        headers = {"ce-specversion": "1.0", "ce-id": "r", "ce-source": "/r", "ce-type": "x" * 5000}
        return web.Response(status=200, headers=headers, body=b"")

    async with subscriber(long_reply) as sub, subscriber() as other:
        await dispatcher.apply([trigger("t", subscriber=sub.url, delivery=FAST_RETRY),
                                trigger("o", subscriber=other.url)])
        await publish(store, event("a"))
        (letter,) = await eventually(lambda: letters(store))
        assert letter.event[ERROR_CODE] == INVALID_REPLY_STATUS and "type" in letter.event[ERROR_REASON]
        assert store.connections == 1  # the connection was never closed by the server
        await store.publish_event("default", "default", stamp_arrival(event("b")))
        await eventually(lambda: "b" in other.ids())


async def test_a_sink_that_cannot_take_the_letter_falls_back_to_the_stream(store, dispatcher):
    # The same unencodable event: the sink delivery raises too, and the stream still keeps the letter.
    doc = stored_doc(**{"bad\nname": "x"})
    async with subscriber() as sink, subscriber() as sub:
        delivery = {**FAST_RETRY, "retry": 0, "deadLetterSink": {"uri": sink.url}}
        await dispatcher.apply([trigger("t", subscriber=sub.url, filter=PINNED, delivery=delivery)])
        await put_raw(store, subjects.event_subject("default", "default", "com.example.test"),
                      json.dumps(doc).encode(), "p5")
        (letter,) = await eventually(lambda: letters(store))
        assert letter.event.id == "poison" and "delivery failed: ValueError" in letter.event[ERROR_REASON]
        assert sink.received == [] and dispatcher.healthy()
