"""Pipelined publishing against a real nats-server: acknowledgements matched to their messages, late ones
timed out by the sweep, nothing left waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription

from ripple.store import EventStore, subjects
from ripple.store.jetstream import MSG_ID_HEADER
from ripple.store.publisher import Publisher
from tests.support import eventually


def message(i: int, subject: str = "") -> tuple[str, bytes, dict[str, str]]:
    return (subject or subjects.event_subject("default", "default", "t"), b"%d" % i, {MSG_ID_HEADER: f"m{i}"})


async def test_each_acknowledgement_goes_to_its_message(store: EventStore):
    acks = await store.publisher.publish_all([message(i) for i in range(50)])
    assert [a.seq for a in acks] == list(range(1, 51))
    assert {a.stream for a in acks} == {subjects.stream_name("default", "default")}
    again = await store.publisher.publish_all([message(7)])
    assert again[0].duplicate is True
    assert store.publisher.waiting == 0


async def test_concurrent_callers_get_their_own_sequences(store: EventStore):
    batches = await asyncio.gather(*(store.publisher.publish_all([message(10 * c + i) for i in range(10)])
                                     for c in range(8)))
    sequences = [a.seq for batch in batches for a in batch]
    assert sorted(sequences) == list(range(1, 81))
    for batch in batches:  # within one call, in the order sent
        assert [a.seq for a in batch] == sorted(a.seq for a in batch)


async def test_a_subject_no_stream_takes_fails_at_once(store: EventStore):
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        await asyncio.wait_for(store.publisher.publish_all([message(1, subject="nobody.listens")]), 2)
    assert store.publisher.waiting == 0


@pytest.fixture
async def silent(nats_server) -> AsyncIterator[tuple[NATS, Subscription]]:
    """A connection, and a subscriber on ``silent.>`` that takes every message and never answers."""
    nc = await nats.connect(nats_server.url)
    try:
        yield nc, await nc.subscribe("silent.>")
    finally:
        await nc.close()


async def test_an_acknowledgement_that_never_comes_times_out(silent):
    nc, subscription = silent
    publisher = Publisher(nc, timeout=0.3)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(publisher.publish_all([message(1, subject="silent.x")]), 5)
        assert publisher.waiting == 0
        assert (await subscription.next_msg(timeout=1)).data == b"1"
    finally:
        await publisher.close()


async def test_closing_fails_whatever_still_waits(silent):
    publisher = Publisher(silent[0], timeout=30)
    waiting = asyncio.create_task(publisher.publish_all([message(1, subject="silent.x")]))
    await eventually(lambda: publisher.waiting == 1)
    await publisher.close()
    with pytest.raises(nats.errors.ConnectionClosedError):
        await asyncio.wait_for(waiting, 2)


async def test_a_caller_that_stops_waiting_leaves_nothing_behind(silent):
    publisher = Publisher(silent[0], timeout=30)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(publisher.publish_all([message(i, subject="silent.x") for i in range(5)]), 0.2)
        assert publisher.waiting == 0
    finally:
        await publisher.close()


async def test_a_closed_publisher_refuses_instead_of_starting_again(silent):
    publisher = Publisher(silent[0], timeout=1)
    await publisher.close()
    with pytest.raises(nats.errors.ConnectionClosedError):
        await publisher.publish_all([message(1, subject="silent.x")])
    assert publisher._sweeper is None
