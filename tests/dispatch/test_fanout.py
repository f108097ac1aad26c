"""The fan-out budget: replies share their parent's budget, so a reply cycle through several triggers ends."""

from __future__ import annotations

import itertools

import pytest
from aiohttp import web

from ripple.dispatch.reply import fanout_of, stamp_reply
from ripple.events.extensions import DEFAULT_FANOUT, FANOUT, HOPS, stamp_arrival
from ripple.store import subjects
from tests.support import event, eventually, subscriber, trigger


def descendants(budget: int, siblings: int) -> int:
    """Events a root with ``budget`` causes when every event is matched by ``siblings`` triggers that all reply."""
    parent = stamp_arrival(event("root", **{FANOUT: budget}))
    total, level = 0, [parent]
    while level:
        children = []
        for ev in level:
            for _ in range(siblings):
                stamped = stamp_reply(ev, event(f"r{total}"), siblings=siblings)
                if stamped.event is not None:
                    children.append(stamped.event)
                    total += 1
        level = children
    return total


@pytest.mark.parametrize(("budget", "siblings"), list(itertools.product([0, 1, 5, 16, 100, 1000], [1, 2, 3, 7])))
def test_a_root_causes_at_most_its_budget(budget, siblings):
    total = descendants(budget, siblings)
    assert total <= budget
    if budget >= siblings:
        assert total >= siblings  # the first generation is stored


def test_reply_budgets_are_bounded_by_the_parent_and_the_default():
    parent = stamp_arrival(event("p", **{FANOUT: 10}))
    stamped = stamp_reply(parent, event("r", **{FANOUT: 999, HOPS: 255}), siblings=3)
    assert stamped.event is not None and stamped.event[FANOUT] == 2 and stamped.event[HOPS] == 254
    assert fanout_of(event("x", **{FANOUT: 10**9})) == DEFAULT_FANOUT
    assert fanout_of(event("x", **{FANOUT: "12"})) == 12 and fanout_of(event("x", **{FANOUT: "many"})) == DEFAULT_FANOUT
    for odd in ("--1", "²", "1_0", " 5", "+5"):  # what str.isdigit or int() would take, and a reply must not crash on
        assert fanout_of(event("x", **{FANOUT: odd})) == DEFAULT_FANOUT
    assert stamp_reply(stamp_arrival(event("p", **{FANOUT: 0})), event("r"), siblings=1).dropped == "fanout"
    assert stamp_reply(stamp_arrival(event("p"), hops=1), event("r"), siblings=1).dropped == "hops"


async def test_two_triggers_replying_with_the_type_they_receive_stop_linearly(store, dispatcher):
    counter = itertools.count()

    def echo(ev, attempt):
        headers = {"ce-specversion": "1.0", "ce-id": f"echo-{next(counter)}", "ce-source": "/echo", "ce-type": "loop"}
        return web.Response(status=200, headers=headers, body=b"")

    budget = 16
    async with subscriber(echo) as a, subscriber(echo) as b:
        loop_filter = {"attributes": {"type": "loop"}}
        await dispatcher.apply([trigger("a", subscriber=a.url, filter=loop_filter),
                                trigger("b", subscriber=b.url, filter=loop_filter)])
        await store.publish_event("default", "default", stamp_arrival(event("root", type="loop", **{FANOUT: budget})))

        async def settled_total() -> int | None:
            stats = dispatcher.stats()
            dropped = stats["default/a"]["replies_dropped"] + stats["default/b"]["replies_dropped"]
            if dropped == 0:
                return None
            stream = await store.js.stream_info(subjects.stream_name("default", "default"))
            consumers = [await store.js.consumer_info(stream.config.name, subjects.consumer_name(n)) for n in "ab"]
            idle = all(c.num_pending == 0 and c.num_ack_pending == 0 for c in consumers)
            return stream.state.messages if idle else None

        stored = await eventually(settled_total, timeout=30)
        replies = stored - 1
        # Without the budget the two triggers double the events at each of 254 hops.
        assert 2 <= replies <= budget
        assert len(a.received) + len(b.received) == 2 * stored
