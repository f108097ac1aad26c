"""The store against a real nats-server: a connection the server closes is replaced, and work resumes on it."""

from __future__ import annotations

import asyncio

from ripple.events.extensions import stamp_arrival
from ripple.store import EventStore, subjects
from tests.support import event, eventually, subscriber, trigger


async def provoke_protocol_error(store: EventStore) -> None:
    """A subject over nats-server's control-line limit: the server answers -ERR and drops the connection."""
    await store.nc.publish("ripple." + "x" * 5000, b"")
    await asyncio.sleep(0.1)


async def test_a_connection_closed_by_the_server_is_replaced(store: EventStore):
    assert store.connections == 1
    await provoke_protocol_error(store)
    await eventually(lambda: store.connections == 2 and store.connected)
    ack = await store.publish_event("default", "default", stamp_arrival(event("after")))
    assert ack.seq == 1


async def test_delivery_resumes_on_the_new_connection(store: EventStore, dispatcher):
    async with subscriber() as sub:
        await dispatcher.apply([trigger("t", subscriber=sub.url)])
        await store.publish_event("default", "default", stamp_arrival(event("before")))
        await sub.wait_for(1)
        await provoke_protocol_error(store)
        await eventually(lambda: store.connections == 2 and store.connected)
        await store.publish_event("default", "default", stamp_arrival(event("after")))
        await sub.wait_for(2, timeout=20)
        assert sub.ids()[-1] == "after"
        assert dispatcher.healthy()


async def test_close_stops_replacing(nats_server):
    store = await EventStore.connect(nats_server.url)
    await store.close()
    await asyncio.sleep(0.3)
    assert store.connections == 1 and not store.connected


def test_stream_names_parse_back():
    assert subjects.parse_stream_name(subjects.stream_name("shop", "orders")) == ("shop", "orders")
    assert subjects.parse_stream_name(subjects.dead_letter_stream_name("shop", "orders")) is None
    assert subjects.parse_stream_name("OTHER_x_y") is None and subjects.parse_stream_name("RIPPLE_x") is None
