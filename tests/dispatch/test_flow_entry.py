"""Entering a Sequence or Parallel: a POST to its address on the ingress, or a Trigger that subscribes it."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from ripple.dispatch import Dispatcher
from ripple.dispatch.client import MAX_RESPONSE_BODY
from ripple.dispatch.resolve import with_addresses
from ripple.events.extensions import ROOT, SEQUENCE, stamp_arrival
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.store import EventStore, subjects
from ripple.store.flows import Entry
from tests.dispatch.conftest import resolve
from tests.dispatch.test_sequences import counting_step, parallel, sequence
from tests.support import event, eventually, serve, subscriber, trigger

BINARY = {"ce-specversion": "1.0", "ce-id": "p1", "ce-source": "/shop", "ce-type": "order.placed",
          "Content-Type": "application/json"}


def entries(ready: dict[tuple[str, str], Entry]):
    return lambda kind, namespace, name: ready.get((namespace, name)) if ready.get((namespace, name)) is not None \
        and ready[(namespace, name)].kind == kind else None


async def test_a_post_to_a_sequence_address_is_202_once_stored_and_404_when_there_is_none(store: EventStore):
    ready = {("default", "checkout"): Entry("Sequence", "default", "checkout", "default")}
    settings = IngressSettings(brokers=lambda ns, b: True, flows=entries(ready))
    async with serve(create_ingress_app(store, settings)) as url, aiohttp.ClientSession() as http:
        async with http.post(f"{url}/default/sequences/checkout", data=b'{"n": 1}', headers=BINARY) as answer:
            assert answer.status == 202
        async with http.post(f"{url}/default/sequences/checkout", data=b'{"n": 1}', headers=BINARY) as answer:
            assert answer.status == 202  # the same event again: stored once
        async with http.post(f"{url}/default/sequences/missing", data=b"{}", headers=BINARY) as answer:
            assert answer.status == 404 and "no Sequence 'missing'" in (await answer.json())["error"]
        async with http.post(f"{url}/default/parallels/checkout", data=b"{}", headers=BINARY) as answer:
            assert answer.status == 404  # a Sequence is not a Parallel
        async with http.post(f"{url}/default/sequences/checkout", data=b"{", headers={**BINARY, "ce-id": ""}) as bad:
            assert bad.status == 400
        async with http.get(f"{url}/default/sequences/checkout") as answer:
            assert answer.status == 405
    info = await store.js.stream_info(subjects.stream_name("default", "default"),
                                      subjects_filter=subjects.hop_subject("default", "default", "_seq_checkout_0"))
    assert info.state.subjects == {subjects.hop_subject("default", "default", "_seq_checkout_0"): 1}
    stored = await store.js.get_last_msg(subjects.stream_name("default", "default"),
                                         subjects.hop_subject("default", "default", "_seq_checkout_0"))
    assert b'"ripplesequence":"default/checkout"' in (stored.data or b"")


async def test_a_trigger_that_subscribes_a_sequence_feeds_it_through_its_address(store: EventStore):
    flows = {("default", "fulfil"): sequence("fulfil", [{"uri": "http://placeholder.invalid/"}])}
    async with subscriber(counting_step("shipped")) as step, subscriber() as out:
        flows[("default", "fulfil")] = sequence("fulfil", [{"uri": step.url}])
        ready = {key: Entry("Sequence", *key, "default") for key in flows}
        settings = IngressSettings(brokers=lambda ns, b: True, flows=entries(ready))
        async with serve(create_ingress_app(store, settings)) as url:
            addresses = with_addresses(resolve, lambda kind, ns, name: f"{url}/{ns}/sequences/{name}"
                                       if (ns, name) in flows else None)
            dispatcher = Dispatcher(store, addresses, ack_wait=5.0)
            try:
                await dispatcher.apply([
                    trigger("orders", subscriber_ref={"ref": {"kind": "Sequence", "name": "fulfil"}},
                            filter={"attributes": {"type": "order.placed"}}),
                    trigger("shipped", subscriber=out.url, filter={"attributes": {"type": "shipped"}}),
                    trigger("nowhere", subscriber_ref={"ref": {"kind": "Parallel", "name": "absent"}},
                            filter={"attributes": {"type": "order.placed"}}, delivery={"retry": 0}),
                ], list(flows.values()))
                await store.publish_event("default", "default", stamp_arrival(event("o9", type="order.placed",
                                                                                     data={"n": 0})))
                (got,) = await out.wait_for(1)
                assert got.event.id == "o9#fulfil.out" and got.event[ROOT] == "o9"
                assert step.received[0].event[SEQUENCE] == "default/fulfil"
                await eventually(lambda: dispatcher.stats()["default/nowhere"]["dead_lettered"] == 1)
            finally:
                await dispatcher.close()


async def test_a_parallel_entered_by_post_reaches_its_branches(store: EventStore):
    async with subscriber() as a, subscriber() as b:
        flow = parallel("fan", [{"subscriber": {"uri": a.url}},
                                {"filter": {"attributes": {"type": "other"}}, "subscriber": {"uri": b.url}}])
        ready = {("default", "fan"): Entry("Parallel", "default", "fan", "default")}
        dispatcher = Dispatcher(store, resolve, ack_wait=5.0)
        settings = IngressSettings(brokers=lambda ns, b_: True, flows=entries(ready))
        try:
            await dispatcher.apply([], [flow])
            async with serve(create_ingress_app(store, settings)) as url, aiohttp.ClientSession() as http:
                async with http.post(f"{url}/default/parallels/fan", data=b'{"n": 1}', headers=BINARY) as answer:
                    assert answer.status == 202
            (got,) = await a.wait_for(1)
            assert got.event["rippleparallel"] == "default/fan" and got.event["ripplebranch"] == "0"
            assert b.received == []
        finally:
            await dispatcher.close()


async def test_a_reply_over_the_answer_limit_is_the_step_failing_not_a_cut_event(store: EventStore,
                                                                                  dispatcher: Dispatcher):
    def huge(ev, attempt):
        headers = {"ce-specversion": "1.0", "ce-id": "big", "ce-type": "big", "ce-source": "/s",
                   "Content-Type": "application/octet-stream"}
        return web.Response(status=200, headers=headers, body=b"x" * (MAX_RESPONSE_BODY + 1))

    async with subscriber(huge) as step, subscriber() as nxt:
        await dispatcher.apply([], [sequence("bloat", [{"uri": step.url, "delivery": {"retry": 0}}, {"uri": nxt.url}])])
        await store.publish_many([(subjects.hop_subject("default", "default", "_seq_bloat_0"),
                                   stamp_arrival(event("b1")).to_json_bytes(), {})])
        await eventually(lambda: {w.trigger.name: w.stats for w in dispatcher.hops()}["_seq_bloat_0"].dead_lettered)
        assert nxt.received == []


async def test_a_large_reply_arrives_whole_at_the_next_step(store: EventStore, dispatcher: Dispatcher):
    body = bytes(range(256)) * 3500  # ~900 KB: many chunks on the wire, all of them kept

    def large(ev, attempt):
        headers = {"ce-specversion": "1.0", "ce-id": "big", "ce-type": "big", "ce-source": "/s",
                   "Content-Type": "application/octet-stream"}
        return web.Response(status=200, headers=headers, body=body)

    async with subscriber(large) as step, subscriber() as nxt:
        await dispatcher.apply([], [sequence("whole", [{"uri": step.url}, {"uri": nxt.url}])])
        await store.publish_many([(subjects.hop_subject("default", "default", "_seq_whole_0"),
                                   stamp_arrival(event("w1")).to_json_bytes(), {})])
        (got,) = await nxt.wait_for(1)
        assert got.event.data == body
