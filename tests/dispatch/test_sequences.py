"""Sequences through real JetStream consumers and real HTTP steps: hand-offs, endings, retries, error routes."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ripple.api.models import API_VERSION, Parallel, Sequence
from ripple.dispatch import Dispatcher
from ripple.events.extensions import ERROR_CODE, ROOT, SEQUENCE, STEP, stamp_arrival
from ripple.events.http import encode_binary
from ripple.events.model import CloudEvent
from ripple.store import EventStore, subjects
from ripple.store.dlq import dead_letters
from ripple.store.flows import Entry, store_entries
from ripple.store.records import read_records
from tests.support import Subscriber, event, eventually, subscriber, trigger

TRACEPARENT = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"


def sequence(name: str, steps: list[dict[str, Any]], **spec: Any) -> Sequence:
    return Sequence.model_validate({"apiVersion": API_VERSION, "kind": "Sequence",
                                    "metadata": {"name": name, "namespace": "default"},
                                    "spec": {"steps": steps, **spec}})


def parallel(name: str, branches: list[dict[str, Any]], **spec: Any) -> Parallel:
    return Parallel.model_validate({"apiVersion": API_VERSION, "kind": "Parallel",
                                    "metadata": {"name": name, "namespace": "default"},
                                    "spec": {"branches": branches, **spec}})


def reply(ev: CloudEvent, type_: str, data: Any = None, *, id_: str | None = None) -> web.Response:
    """A step's answer: a new event in binary mode (its id made up per call, as a function's often is)."""
    attributes = {"specversion": "1.0", "id": id_ or f"reply-{type_}-{ev.id}", "type": type_, "source": "/step"}
    out = CloudEvent.create({**attributes, "datacontenttype": "application/json"},
                            json.dumps(data if data is not None else ev.json_data()).encode())
    headers, body = encode_binary(out)
    return web.Response(status=200, headers=headers, body=body)


def counting_step(type_: str):
    """Replies with ``type_`` and the input's data plus one."""
    def respond(ev: CloudEvent, attempt: int) -> web.Response:
        data = ev.json_data()
        return reply(ev, type_, {**data, "n": data.get("n", 0) + 1, f"seen-{type_}": True})
    return respond


async def enter(store: EventStore, name: str, *events: CloudEvent, kind: str = "Sequence") -> None:
    await store_entries(store, Entry(kind, "default", name, "default"), [stamp_arrival(e) for e in events])  # type: ignore[arg-type]


async def settled(store: EventStore, *hops: str) -> bool:
    for hop in hops:
        info = await store.js.consumer_info(subjects.stream_name("default", "default"), subjects.consumer_name(hop))
        if info.num_pending or info.num_ack_pending:
            return False
    return True


async def letters(store: EventStore) -> list:
    return [letter async for letter in dead_letters(store, "default", "default")]


async def chain(store: EventStore, dispatcher: Dispatcher, length: int) -> tuple[list[Subscriber], Subscriber]:
    """Run one event through a Sequence of ``length`` steps whose last reply goes back to the broker."""
    steps: list[Subscriber] = []
    async with subscriber() as out:
        managers = [subscriber(counting_step(f"step{i}")) for i in range(length)]
        for manager in managers:
            steps.append(await manager.__aenter__())
        try:
            last = {"attributes": {"type": f"step{length - 1}"}}
            await dispatcher.apply([trigger("out", subscriber=out.url, filter=last)],
                                   [sequence("chain", [{"uri": s.url} for s in steps])])
            await enter(store, "chain", event("order-1", data={"n": 0}, traceparent=TRACEPARENT))
            await out.wait_for(1)
            await eventually(lambda: settled(store, *(subjects.sequence_step("chain", i) for i in range(length))))
        finally:
            for manager in reversed(managers):
                await manager.__aexit__(None, None, None)
    return steps, out


async def test_a_chain_of_one_step_replies_to_the_broker(store, dispatcher):
    steps, out = await chain(store, dispatcher, 1)
    (got,) = steps[0].received
    assert got.event.id == "order-1" and got.event[SEQUENCE] == "default/chain" and got.event[STEP] == "0"
    final = out.received[0].event
    assert final.json_data()["n"] == 1 and final[ROOT] == "order-1" and STEP not in final


async def test_a_chain_of_three_steps_hands_each_reply_to_the_next_with_stable_ids(store, dispatcher):
    steps, out = await chain(store, dispatcher, 3)
    inputs = [s.received[0].event for s in steps]
    assert [e.id for e in inputs] == ["order-1", "order-1#chain.1", "order-1#chain.2"]
    assert [e[STEP] for e in inputs] == ["0", "1", "2"]  # extensions travel as strings in headers
    assert [e.json_data()["n"] for e in inputs] == [0, 1, 2]
    assert {e["traceparent"] for e in inputs} == {TRACEPARENT}
    final = out.received[0].event
    assert final.id == "order-1#chain.out" and final.json_data()["n"] == 3
    assert final["traceparent"] == inputs[0]["traceparent"]
    assert all(len(s.received) == 1 for s in steps)


async def test_a_chain_of_ten_steps_completes(store, dispatcher):
    steps, out = await chain(store, dispatcher, 10)
    assert [len(s.received) for s in steps] == [1] * 10
    assert out.received[0].event.json_data()["n"] == 10
    records = await eventually(lambda: _records(store, "order-1", 10))
    assert [r["step"] for r in records] == [str(i) for i in range(10)]
    assert records[-1]["outcome"] == "to broker" and records[0]["outcome"] == "to step 1"


async def _records(store: EventStore, root: str, count: int) -> list | None:
    """The records of the flow's hops (the root's history also holds the plain triggers' deliveries)."""
    found = [record for record in await read_records(store, root) if record.get("flow")]
    return found if len(found) >= count else None


async def test_a_step_that_answers_without_an_event_ends_the_chain(store, dispatcher):
    def filtering(ev: CloudEvent, attempt: int) -> web.StreamResponse:
        return web.Response(status=202) if ev.json_data()["keep"] is False else reply(ev, "kept")

    async with subscriber(filtering) as first, subscriber(counting_step("second")) as second, subscriber() as out:
        await dispatcher.apply([trigger("out", subscriber=out.url, filter={"attributes": {"type": "second"}})],
                               [sequence("filtering", [{"uri": first.url}, {"uri": second.url}])])
        await enter(store, "filtering", event("drop", data={"keep": False}), event("keep", data={"keep": True}))
        await out.wait_for(1)
        await eventually(lambda: settled(store, "_seq_filtering_0", "_seq_filtering_1"))
        assert first.ids() == ["drop", "keep"] or sorted(first.ids()) == ["drop", "keep"]
        assert second.ids() == ["keep#filtering.1"]
        assert out.ids() == ["keep#filtering.out"]
        stats = {w.trigger.name: w.stats for w in dispatcher.hops()}
        assert stats["_seq_filtering_0"].ended == 1 and stats["_seq_filtering_0"].replies == 1


async def test_each_step_retries_by_its_own_policy(store, dispatcher):
    def flaky(ev: CloudEvent, attempt: int) -> web.StreamResponse:
        return web.Response(status=503) if attempt <= 2 else reply(ev, "done")

    async with subscriber(counting_step("first")) as first, subscriber(flaky) as second, subscriber() as out:
        fast = {"retry": 3, "backoffDelay": "PT0.05S", "backoffPolicy": "linear"}
        await dispatcher.apply([trigger("out", subscriber=out.url, filter={"attributes": {"type": "done"}})],
                               [sequence("retrying", [{"uri": first.url, "delivery": {"retry": 0}},
                                                      {"uri": second.url, "delivery": fast}])])
        await enter(store, "retrying", event("r1", data={"n": 0}))
        await out.wait_for(1)
        assert len(first.received) == 1 and len(second.received) == 3
        assert {r.event.id for r in second.received} == {"r1#retrying.1"}  # the same input each time


async def test_a_step_that_fails_past_its_policy_is_dead_lettered_naming_the_step(store, dispatcher):
    async with subscriber(counting_step("first")) as first, \
            subscriber(lambda ev, n: web.Response(status=500)) as broken, subscriber() as third:
        await dispatcher.apply([], [sequence("failing", [
            {"uri": first.url},
            {"name": "charge", "uri": broken.url, "delivery": {"retry": 1, "backoffDelay": "PT0.05S"}},
            {"uri": third.url}])])
        await enter(store, "failing", event("f1", data={"n": 0}))
        (letter,) = await eventually(lambda: letters(store))
        assert letter.event[SEQUENCE] == "default/failing" and letter.event[STEP] == 1
        assert letter.event[ERROR_CODE] == 500 and letter.event.id == "f1#failing.1"
        assert letter.trigger == "default/_seq_failing_1"
        assert len(broken.received) == 2 and third.received == []


async def test_on_error_gets_the_failed_event_and_its_reply_ends_the_sequence(store, dispatcher):
    def compensate(ev: CloudEvent, attempt: int) -> web.StreamResponse:
        return reply(ev, "order.refunded", {"refunded": ev.json_data()["n"]})

    async with subscriber(lambda ev, n: web.Response(status=400)) as payment, \
            subscriber(compensate) as refund, subscriber() as later, subscriber() as out:
        await dispatcher.apply(
            [trigger("out", subscriber=out.url, filter={"attributes": {"type": "order.refunded"}})],
            [sequence("orders", [{"uri": payment.url, "onError": {"uri": refund.url}}, {"uri": later.url}])])
        await enter(store, "orders", event("o1", data={"n": 7}))
        (got,) = await out.wait_for(1)
        (failed,) = refund.received
        assert failed.event.id == "o1" and failed.event[ERROR_CODE] == "400" and failed.event[STEP] == "0"
        assert got.event.json_data() == {"refunded": 7} and got.event.id == "o1#orders.0.error.out"
        assert later.received == [] and await letters(store) == []
        stats = {w.trigger.name: w.stats for w in dispatcher.hops()}
        assert stats["_seq_orders_0"].error_routed == 1 and stats["_seq_orders_0"].dead_lettered == 0


async def test_the_last_reply_goes_to_the_sequences_reply_destination(store, dispatcher):
    async with subscriber(counting_step("only")) as step, subscriber() as destination, subscriber() as broker:
        await dispatcher.apply([trigger("broker", subscriber=broker.url)],
                               [sequence("replying", [{"uri": step.url}], reply={"uri": destination.url})])
        await enter(store, "replying", event("x1", data={"n": 0}))
        (got,) = await destination.wait_for(1)
        assert got.event.id == "x1#replying.reply" and got.event.type == "only"
        await eventually(lambda: settled(store, "_seq_replying_0", "_seq_replying_reply"))
        assert broker.received == []


async def test_parallel_branches_with_overlapping_filters_each_get_what_they_match(store, dispatcher):
    async with subscriber(counting_step("eu")) as eu, subscriber(counting_step("big")) as big, \
            subscriber() as every, subscriber() as eu_replies, subscriber() as out:
        await dispatcher.apply([trigger("out", subscriber=out.url, filters=[{"prefix": {"type": "big"}}])], [
            parallel("split", [
                {"name": "eu", "filter": {"attributes": {"region": "eu"}}, "subscriber": {"uri": eu.url},
                 "reply": {"uri": eu_replies.url}},
                {"filters": [{"cesql": "INT(size) > 10"}], "subscriber": {"uri": big.url}},
                {"subscriber": {"uri": every.url}},
            ])])
        await enter(store, "split", event("a", region="eu", size="20", data={"n": 0}),
                    event("b", region="us", size="20", data={"n": 0}), event("c", region="eu", size="1", data={"n": 0}),
                    kind="Parallel")
        await every.wait_for(3)
        await eventually(lambda: len(out.received) == 2 and len(eu_replies.received) == 2)
        assert sorted(eu.ids()) == ["a", "c"] and sorted(big.ids()) == ["a", "b"]
        assert sorted(every.ids()) == ["a", "b", "c"]
        assert {r.event["ripplebranch"] for r in big.received} == {"1"}
        assert sorted(out.ids()) == ["a#split.1.out", "b#split.1.out"]
        assert sorted(eu_replies.ids()) == ["a#split.0.reply", "c#split.0.reply"]
