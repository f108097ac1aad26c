"""Replays against real JetStream and a real dispatcher: a broker's stored events re-delivered to one trigger,
through its filter, in order, marked, stored once per replay, without moving the trigger's live consumer; and
``Trigger.spec.replay``, run once however often its dispatcher starts."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from ripple.api.models import ReplaySpec
from ripple.dispatch import Dispatcher
from ripple.dispatch.replay import REPLAY_BUCKET, ReplayWindow, declared_replay_key, first_seq_at, replay
from ripple.dispatch.resolve import static_resolver
from ripple.events.extensions import REPLAY, stamp_arrival
from ripple.store import EventStore, subjects
from tests.support import event, eventually, subscriber, trigger

STREAM = subjects.stream_name("default", "default")
EVENTS = subjects.all_events_subject("default", "default")


async def stored_events(store: EventStore, count: int, *, first: int = 0) -> None:
    """``count`` events, ids ``e<first>``..., alternating order.placed and order.shipped."""
    for n in range(first, first + count):
        kind = "order.placed" if n % 2 == 0 else "order.shipped"
        await store.publish_event("default", "default", stamp_arrival(event(f"e{n}", type=kind)))


def placed(url: str, **spec):
    return trigger("placed", subscriber=url, filter={"attributes": {"type": "order.placed"}}, **spec)


async def test_a_replay_delivers_the_matching_stored_events_in_order_and_marked(store):
    await stored_events(store, 10)
    async with subscriber() as sub:
        dispatcher = Dispatcher(store, static_resolver({}), ack_wait=5.0)
        try:
            await dispatcher.apply([placed(sub.url)])
            progress = await replay(store, placed(sub.url), ReplayWindow(start_seq=1), name="r1", rate=1000)
            assert (progress.scanned, progress.matched, progress.published) == (10, 5, 5)
            await sub.wait_for(5)
            assert sub.ids() == ["e0", "e2", "e4", "e6", "e8"]
            assert {r.event[REPLAY] for r in sub.received} == {"r1"}
            # The live consumer was not moved: the next stored event arrives once, unmarked.
            await stored_events(store, 1, first=10)
            await sub.wait_for(6)
            assert sub.ids()[-1] == "e10" and REPLAY not in sub.received[-1].event
            await asyncio.sleep(0.3)
            assert len(sub.received) == 6
        finally:
            await dispatcher.close()


async def test_a_dry_run_counts_and_stores_nothing(store):
    await stored_events(store, 6)
    before = (await store.js.stream_info(STREAM)).state.messages
    progress = await replay(store, placed("http://127.0.0.1:9/"), ReplayWindow(start_seq=2, end_seq=5), name="d",
                            dry_run=True)
    assert (progress.scanned, progress.matched, progress.published) == (4, 2, 0)
    assert progress.types == {"order.placed": 2} and (progress.first_seq, progress.last_seq) == (2, 5)
    assert (await store.js.stream_info(STREAM)).state.messages == before


async def test_a_replay_run_twice_under_one_name_stores_each_event_once(store):
    await stored_events(store, 4)
    target = placed("http://127.0.0.1:9/")
    await replay(store, target, ReplayWindow(start_seq=1, end_seq=4), name="again", rate=1000)
    once = (await store.js.stream_info(STREAM)).state.messages
    second = await replay(store, target, ReplayWindow(start_seq=1, end_seq=4), name="again", rate=1000)
    assert second.published == 2 and (await store.js.stream_info(STREAM)).state.messages == once == 6


async def test_a_replay_from_a_time_starts_at_the_first_event_stored_then(store):
    await stored_events(store, 5)
    await asyncio.sleep(0.05)
    then = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await stored_events(store, 5, first=5)
    progress = await replay(store, placed("http://127.0.0.1:9/"), ReplayWindow(start_time=then), name="t",
                            dry_run=True)
    assert (progress.first_seq, progress.scanned, progress.matched) == (6, 5, 2)
    assert await first_seq_at(store, STREAM, EVENTS, datetime.now(UTC), 1, 10) == 11, "nothing after now"


async def test_bisecting_skips_deleted_messages(store):
    await stored_events(store, 8)
    for seq in (3, 4, 5):
        await store.js.delete_msg(STREAM, seq)
    times = [(await store.js.get_msg(STREAM, seq)).time for seq in (6, 7)]
    assert await first_seq_at(store, STREAM, EVENTS, times[0], 1, 8) == 6
    assert await first_seq_at(store, STREAM, EVENTS, times[1], 1, 8) == 7


async def test_a_declared_replay_runs_once_however_often_its_dispatcher_starts(store):
    await stored_events(store, 6)
    async with subscriber() as sub:
        declared = placed(sub.url, replay={"since": "PT1H", "rate": 1000})
        for _ in range(2):  # a dispatcher, then its replacement
            dispatcher = Dispatcher(store, static_resolver({}), ack_wait=5.0)
            try:
                await dispatcher.apply([declared])
                await sub.wait_for(3)
                mark = await eventually(lambda: _done(store, declared_replay_key(declared)))
                await asyncio.sleep(0.3)
            finally:
                await dispatcher.close()
        assert sub.ids() == ["e0", "e2", "e4"]
        assert mark["published"] == 3 and mark["nextSeq"] == 7


async def _done(store: EventStore, key: str) -> dict | None:
    kv = await store.js.key_value(REPLAY_BUCKET)
    mark = json.loads((await kv.get(key)).value)
    return mark if mark["state"] == "done" else None


@pytest.mark.parametrize(("spec", "message"), [
    ({}, "exactly one of since, fromSeq must be set"),
    ({"since": "PT1H", "fromSeq": 3}, "exactly one of since, fromSeq must be set"),
    ({"since": "an hour ago"}, "String should match pattern"),
    ({"fromSeq": 0}, "greater than or equal to 1"),
    ({"fromSeq": 1, "rate": 10_001}, "less than or equal to 10000"),
    ({"fromSeq": 1, "until": "yesterday"}, "String should match pattern"),
])
def test_a_replay_spec_that_cannot_run_is_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        ReplaySpec.model_validate(spec)


def test_a_replay_spec_takes_a_duration_or_a_time():
    assert ReplaySpec.model_validate({"since": "PT1H"}).rate == 100
    assert ReplaySpec.model_validate({"since": "2026-12-03T07:00:00Z", "until": "2026-12-03T08:00:00.5+01:00"})
