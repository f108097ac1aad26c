"""The dedup key: (source, id) pairs that differ never share a message id, so both are stored."""

from __future__ import annotations

import itertools

from ripple.events.model import CloudEvent
from ripple.store import EventStore, dedup_id, subjects

PAIRS = [("/nul\0b", "c"), ("/nul", "b\0c"), ("ab", "c"), ("a", "bc"), ("a:1", "2"), ("a", "1:2"), ("1:a", "b")]


def raw_event(source: str, event_id: str) -> CloudEvent:
    # Built without validation: the key must be unambiguous whatever an older version let into the log.
    return CloudEvent({"specversion": "1.0", "id": event_id, "source": source, "type": "t"})


def test_different_pairs_have_different_ids():
    ids = {dedup_id(raw_event(s, i)) for s, i in PAIRS}
    assert len(ids) == len(PAIRS)
    for (s1, i1), (s2, i2) in itertools.combinations(PAIRS, 2):
        assert s1 + i1 != s2 + i2 or dedup_id(raw_event(s1, i1)) != dedup_id(raw_event(s2, i2))


def test_same_pair_same_id():
    assert dedup_id(raw_event("/s", "1")) == dedup_id(raw_event("/s", "1"))


async def test_colliding_pairs_of_old_are_both_stored(store: EventStore):
    await store.publish_events("default", "default", [raw_event("/nul\0b", "c"), raw_event("/nul", "b\0c")])
    info = await store.js.stream_info(subjects.stream_name("default", "default"))
    assert info.state.messages == 2
