"""The pull loop against a real nats-server: requests stay outstanding, expire and are renewed with their slots
given back, and a consumer that disappears ends the loop for its supervisor."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from ripple.store import EventStore, fetching, subjects
from ripple.store.fetching import Handlers, PullFailed, Slots, fetch_forever
from ripple.store.jetstream import MSG_ID_HEADER
from tests.support import eventually

STREAM = subjects.stream_name("default", "default")


async def durable(store: EventStore, name: str = "reader") -> str:
    await store.js.add_consumer(STREAM, ConsumerConfig(durable_name=name, ack_policy=AckPolicy.EXPLICIT,
                                                       ack_wait=30))
    return name


async def publish(store: EventStore, count: int, prefix: str = "m") -> None:
    subject = subjects.event_subject("default", "default", "t")
    await store.publish_many([(subject, b"%d" % i, {MSG_ID_HEADER: f"{prefix}{i}"}) for i in range(count)])


async def test_messages_arrive_as_stored_within_the_room_reserved(store: EventStore):
    name = await durable(store)
    slots = Slots(4)
    seen: list[bytes] = []
    handled = asyncio.Event()

    async def handle(msg: Msg) -> None:
        seen.append(msg.data)
        await msg.ack()
        if len(seen) == 25:
            handled.set()

    async def consumer() -> str:
        return name

    handlers = Handlers(handle, slots)
    loop = asyncio.create_task(fetch_forever(store, STREAM, consumer, handlers.take, reserve=slots.reserve,
                                             release=slots.release))
    try:
        await asyncio.sleep(0.2)
        await publish(store, 25)  # after the requests were made: pushed to them, not fetched
        await asyncio.wait_for(handled.wait(), 10)
        assert sorted(seen, key=int) == [b"%d" % i for i in range(25)]
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    await eventually(lambda: not slots._free.locked())


async def test_expired_requests_give_their_room_back_and_are_renewed(store: EventStore,
                                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(fetching, "EXPIRES", 0.6)
    monkeypatch.setattr(fetching, "HEARTBEAT", 0.2)
    name = await durable(store)
    slots = Slots(3)
    requests = 0
    reserve = slots.reserve

    async def counting_reserve() -> int:
        nonlocal requests
        taken = await reserve()
        requests += 1
        return taken

    async def consumer() -> str:
        return name

    async def handle(msg: Msg) -> None:
        await msg.ack()

    loop = asyncio.create_task(fetch_forever(store, STREAM, consumer, Handlers(handle, slots).take,
                                             reserve=counting_reserve, release=slots.release))
    try:
        await eventually(lambda: requests >= 3, timeout=5)  # each expiry gave the room back, asked again
        assert not loop.done()
        await publish(store, 2)
        info = await eventually(lambda: _delivered(store, name, 2), timeout=5)
        assert info
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def _delivered(store: EventStore, name: str, count: int) -> bool:
    info = await store.js.consumer_info(STREAM, name)
    return info.ack_floor.stream_seq == count


async def test_a_deleted_consumer_ends_the_loop(store: EventStore):
    name = await durable(store)
    slots = Slots(2)

    async def consumer() -> str:
        return name

    async def handle(msg: Msg) -> None:
        await msg.ack()

    loop = asyncio.create_task(fetch_forever(store, STREAM, consumer, Handlers(handle, slots).take,
                                             reserve=slots.reserve, release=slots.release))
    await asyncio.sleep(0.3)
    await store.js.delete_consumer(STREAM, name)
    with pytest.raises(PullFailed):
        await asyncio.wait_for(loop, 10)
    assert not slots._free.locked()  # everything reserved was given back


async def test_slots_reserve_everything_free_and_handlers_give_slots_back_whatever_happens():
    slots = Slots(3)
    assert await slots.reserve() == 3
    waiting = asyncio.create_task(slots.reserve())
    await asyncio.sleep(0.05)
    assert not waiting.done()

    async def failing(msg: Msg) -> None:
        raise RuntimeError("boom")

    handlers = Handlers(failing, slots)
    await handlers.take([Msg(None), Msg(None)])  # type: ignore[arg-type]
    assert await asyncio.wait_for(waiting, 2) == 2  # one step (half of 3, at least 1) and what else was free
    await handlers.stop()


async def test_room_is_asked_for_in_steps_of_half_the_slots():
    slots = Slots(8)
    assert await slots.reserve() == 8
    waiting = asyncio.create_task(slots.reserve())
    slots.release(3)
    await asyncio.sleep(0.05)
    assert not waiting.done()  # 3 free of a step of 4: no request yet
    slots.release(1)
    assert await asyncio.wait_for(waiting, 2) == 4


async def test_an_event_with_a_status_header_is_an_event(store: EventStore):
    name = await durable(store)
    slots = Slots(2)
    seen: list[Msg] = []

    async def handle(msg: Msg) -> None:
        seen.append(msg)
        await msg.ack()

    async def consumer() -> str:
        return name

    loop = asyncio.create_task(fetch_forever(store, STREAM, consumer, Handlers(handle, slots).take,
                                             reserve=slots.reserve, release=slots.release))
    try:
        subject = subjects.event_subject("default", "default", "t")
        await store.publish_many([(subject, b"x", {MSG_ID_HEADER: "s1", "Status": "409"})])
        await eventually(lambda: len(seen) == 1, timeout=5)
        assert not loop.done()
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_a_handler_cancelled_before_it_ran_gives_its_slot_back():
    slots = Slots(2)
    assert await slots.reserve() == 2

    async def handle(msg: Msg) -> None:
        raise AssertionError("never runs")

    handlers = Handlers(handle, slots)
    await handlers.take([Msg(None), Msg(None)])  # type: ignore[arg-type]
    await handlers.stop()  # cancels both before they start
    assert await asyncio.wait_for(slots.reserve(), 1) == 2
