"""Delivery through a real JetStream consumer to real HTTP subscribers: settle rules end to end."""

from __future__ import annotations

import asyncio
import base64
import itertools

import jwt
from aiohttp import web

from ripple._aio import free_port
from ripple.dispatch import Dispatcher
from ripple.dispatch.dead_letter import MAX_ERROR_DATA
from ripple.events.extensions import ERROR_CODE, ERROR_DATA, ERROR_DEST, ERROR_TRIGGER, HOPS, stamp_arrival
from ripple.events.http import encode_binary
from ripple.events.model import CloudEvent
from ripple.signing import DeliverySigner, DeliveryVerifier, function_audience
from ripple.store import EventStore, subjects
from ripple.store.dlq import dead_letters, redrive
from tests.dispatch.conftest import FUNCTION_URLS, resolve
from tests.support import event, eventually, subscriber, trigger


async def publish(store: EventStore, *events: CloudEvent) -> None:
    for ev in events:
        await store.publish_event("default", "default", stamp_arrival(ev))


async def consumer_settled(store: EventStore, name: str) -> bool:
    info = await store.js.consumer_info(subjects.stream_name("default", "default"), subjects.consumer_name(name))
    return info.num_pending == 0 and info.num_ack_pending == 0


async def letters(store: EventStore) -> list:
    return [letter async for letter in dead_letters(store, "default", "default")]


def gaps(received) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(received)]


async def test_delivers_in_binary_mode_and_acks(store, dispatcher: Dispatcher):
    async with subscriber() as sub:
        await dispatcher.apply([trigger("t", subscriber=sub.url)])
        await publish(store, event("a", data={"n": 1}))
        (got,) = await sub.wait_for(1)
        assert got.event.id == "a" and got.event.json_data() == {"n": 1}
        assert got.headers["ce-id"] == "a" and got.headers["Prefer"] == "reply"
        await eventually(lambda: consumer_settled(store, "t"))
        assert dispatcher.stats()["default/t"]["delivered"] == 1


async def test_structured_format_when_asked(store, dispatcher):
    async with subscriber() as sub:
        await dispatcher.apply([trigger("t", subscriber=sub.url, delivery={"format": "json"})])
        await publish(store, event("a"))
        (got,) = await sub.wait_for(1)
        assert got.headers["Content-Type"].startswith("application/cloudevents+json")


async def test_filter_miss_is_acked_not_dead_lettered(store, dispatcher):
    async with subscriber() as sub:
        wanted = {"attributes": {"type": "com.example.test", "source": "/wanted"}}
        await dispatcher.apply([trigger("t", subscriber=sub.url, filter=wanted)])
        await publish(store, event("miss", source="/other"), event("hit", source="/wanted"))
        await sub.wait_for(1)
        await eventually(lambda: consumer_settled(store, "t"))
        assert sub.ids() == ["hit"]
        assert dispatcher.stats()["default/t"]["filtered"] == 1
        assert await letters(store) == []


async def router_settled(store: EventStore) -> bool:
    info = await store.js.consumer_info(subjects.stream_name("default", "default"), subjects.ROUTER_CONSUMER)
    return info.num_pending == 0 and info.num_ack_pending == 0


async def test_triggers_that_do_not_pin_a_type_get_only_their_matches_from_the_router(store, dispatcher):
    async with subscriber() as eu, subscriber() as big, subscriber() as everything:
        await dispatcher.apply([
            trigger("eu", subscriber=eu.url, filters=[{"prefix": {"subject": "eu/"}}]),
            trigger("big", subscriber=big.url, filters=[{"cesql": "INT(total) > 100"}]),
            trigger("all", subscriber=everything.url),
        ])
        await publish(
            store,
            event("a", subject="eu/1", total=50),
            event("b", subject="us/2", total=500),
            event("c", subject="eu/3", total=101),
            event("d", subject="us/4", total=1),
        )
        await everything.wait_for(4)
        await eventually(lambda: router_settled(store))
        for name in ("eu", "big", "all"):
            await eventually(lambda name=name: consumer_settled(store, name))
        assert sorted(eu.ids()) == ["a", "c"] and sorted(big.ids()) == ["b", "c"]
        assert sorted(everything.ids()) == ["a", "b", "c", "d"]
        stats = dispatcher.stats()
        assert stats["default/eu"]["filtered"] == 0  # the trigger never read what it does not match
        assert dispatcher.routers[("default", "default")].routed == 4


async def test_type_pinned_trigger_reads_only_its_type(store, dispatcher):
    async with subscriber() as sub:
        await dispatcher.apply([trigger("t", subscriber=sub.url, filter={"attributes": {"type": "order.placed"}})])
        await publish(store, event("x", type="order.placed.v2"), event("y", type="order.placed"))
        await sub.wait_for(1)
        await eventually(lambda: consumer_settled(store, "t"))
        assert sub.ids() == ["y"]
        assert dispatcher.stats()["default/t"]["filtered"] == 0  # JetStream never handed over the other type


async def test_linear_retries_are_counted_and_spaced(store, dispatcher):
    from prometheus_client import REGISTRY

    def attempts(outcome: str) -> float:
        labels = {"trigger": "default/linear", "outcome": outcome}
        return REGISTRY.get_sample_value("ripple_deliveries_total", labels) or 0

    before = {outcome: attempts(outcome) for outcome in ("retry", "dead-letter")}
    async with subscriber(lambda ev, n: web.Response(status=500)) as sub:
        delivery = {"retry": 3, "backoffPolicy": "linear", "backoffDelay": "PT0.2S"}
        await dispatcher.apply([trigger("linear", subscriber=sub.url, delivery=delivery)])
        await publish(store, event("a"))
        received = await sub.wait_for(4)
        await eventually(lambda: letters(store))
        assert len(sub.received) == 4  # the first attempt and three retries, no more
        for gap, expected in zip(gaps(received), [0.2, 0.4, 0.6], strict=True):
            assert gap >= expected * 0.9
    assert attempts("retry") - before["retry"] == 3 and attempts("dead-letter") - before["dead-letter"] == 1


async def test_exponential_retries_double(store, dispatcher):
    async with subscriber(lambda ev, n: web.Response(status=503)) as sub:
        delivery = {"retry": 2, "backoffPolicy": "exponential", "backoffDelay": "PT0.2S"}
        await dispatcher.apply([trigger("t", subscriber=sub.url, delivery=delivery)])
        await publish(store, event("a"))
        received = await sub.wait_for(3)
        await eventually(lambda: letters(store))
        assert len(sub.received) == 3
        first, second = gaps(received)
        assert first >= 0.4 * 0.9 and second >= 0.8 * 0.9


async def test_every_retryable_status_is_retried_and_others_are_not(store, dispatcher):
    statuses = {"s404": 404, "s408": 408, "s409": 409, "s429": 429, "s500": 500, "s502": 502,
                "s400": 400, "s401": 401, "s403": 403, "s410": 410, "s422": 422}

    async with subscriber(lambda ev, n: web.Response(status=statuses[ev.id])) as sub:
        delivery = {"retry": 1, "backoffPolicy": "linear", "backoffDelay": "PT0.05S", "retryAfterMax": "PT0.1S"}
        await dispatcher.apply([trigger("t", subscriber=sub.url, delivery=delivery)])
        await publish(store, *(event(i) for i in statuses))
        await eventually(lambda: consumer_settled(store, "t"))
        attempts = {i: sub.ids().count(i) for i in statuses}
        assert attempts == {i: 2 if s in (404, 408, 409, 429, 500, 502) else 1 for i, s in statuses.items()}
        codes = {letter.event.id: letter.event[ERROR_CODE] for letter in await letters(store)}
        assert codes == statuses


async def test_retry_after_is_honoured_and_capped(store, dispatcher):
    def respond(ev: CloudEvent, attempt: int) -> web.Response:
        if attempt == 1:
            return web.Response(status=429, headers={"Retry-After": "1" if ev.id == "short" else "3600"})
        return web.Response(status=200)

    async with subscriber(respond) as sub:
        delivery = {"retry": 1, "backoffDelay": "PT0.01S", "retryAfterMax": "PT1.5S"}
        await dispatcher.apply([trigger("t", subscriber=sub.url, delivery=delivery)])
        await publish(store, event("short"), event("long"))
        await sub.wait_for(4)
        by_id = {i: [r.at for r in sub.received if r.event.id == i] for i in ("short", "long")}
        assert by_id["short"][1] - by_id["short"][0] >= 0.9
        assert 1.4 <= by_id["long"][1] - by_id["long"][0] < 60


async def test_connection_errors_and_timeouts_dead_letter_with_code_zero(store, dispatcher):
    async def slow(ev: CloudEvent, attempt: int) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(status=200)

    async with subscriber(slow) as sub:
        closed = f"http://127.0.0.1:{free_port()}/"
        no_retry = {"retry": 0, "timeout": "PT0.3S"}
        await dispatcher.apply([
            trigger("refused", subscriber=closed, delivery=no_retry, filter={"attributes": {"source": "/r"}}),
            trigger("slow", subscriber=sub.url, delivery=no_retry, filter={"attributes": {"source": "/s"}}),
        ])
        await publish(store, event("r1", source="/r"), event("s1", source="/s"))
        found = await eventually(lambda: _at_least(letters(store), 2))
        by_trigger = {letter.trigger: letter.event for letter in found}
        assert by_trigger["default/refused"][ERROR_CODE] == 0
        assert by_trigger["default/refused"][ERROR_DEST] == closed
        assert by_trigger["default/slow"][ERROR_CODE] == 0
        assert b"timed out" in base64.b64decode(by_trigger["default/slow"][ERROR_DATA])


async def _at_least(pending, count: int):
    items = await pending
    return items if len(items) >= count else None


async def test_dead_letter_goes_to_the_sink_with_context(store, dispatcher):
    body = b"x" * 3000

    async with subscriber(lambda ev, n: web.Response(status=400, body=body)) as sub, subscriber() as sink:
        delivery = {"retry": 2, "deadLetterSink": {"uri": sink.url}}
        await dispatcher.apply([trigger("t", subscriber=sub.url, delivery=delivery)])
        original = event("a", data={"k": "v"}, subject="orders/1")
        await publish(store, original)
        (letter,) = await sink.wait_for(1)
        sent = letter.event
        assert {k: sent[k] for k in original.attributes} == dict(original.attributes)
        assert sent.data == original.data
        assert sent[ERROR_CODE] == "400"  # extensions travel as strings in binary mode
        assert sent[ERROR_DEST] == sub.url
        assert sent[ERROR_TRIGGER] == "default/t"
        assert base64.b64decode(sent[ERROR_DATA]) == body[:MAX_ERROR_DATA]
        assert len(sub.received) == 1  # 400 is not retried
        assert await letters(store) == []


async def test_without_a_sink_the_dead_letter_is_kept_in_the_stream(store, dispatcher):
    async with subscriber(lambda ev, n: web.Response(status=403)) as sub:
        await dispatcher.apply([trigger("t", subscriber=sub.url)])
        await publish(store, event("a", data={"k": 1}))
        (letter,) = await eventually(lambda: letters(store))
        assert letter.trigger == "default/t"
        assert letter.original.json_data() == {"k": 1}
        assert ERROR_CODE not in letter.original


async def test_a_failing_sink_falls_back_to_the_stream(store, dispatcher):
    async with subscriber(lambda ev, n: web.Response(status=500)) as sub, \
            subscriber(lambda ev, n: web.Response(status=500)) as sink:
        delivery = {"retry": 0, "deadLetterSink": {"uri": sink.url}}
        await dispatcher.apply([trigger("t", subscriber=sub.url, delivery=delivery)])
        await publish(store, event("a"))
        (letter,) = await eventually(lambda: letters(store))
        assert letter.event.id == "a" and len(sink.received) == 1


async def test_redrive_to_the_broker_and_to_one_trigger(store, dispatcher):
    healthy = {"value": False}

    def respond(ev: CloudEvent, attempt: int) -> web.Response:
        return web.Response(status=202 if healthy["value"] else 500)

    async with subscriber(respond) as flaky, subscriber() as other:
        await dispatcher.apply([
            trigger("flaky", subscriber=flaky.url, delivery={"retry": 0}),
            trigger("other", subscriber=other.url),
        ])
        await publish(store, event("a"), event("b"))
        await other.wait_for(2)
        first, second = await eventually(lambda: _at_least(letters(store), 2))
        healthy["value"] = True

        await redrive(store, "default", "default", first, trigger="flaky")
        await eventually(lambda: flaky.ids().count(first.event.id) == 2)
        await redrive(store, "default", "default", second, trigger=None)
        await eventually(lambda: flaky.ids().count(second.event.id) == 2)
        await eventually(lambda: other.ids().count(second.event.id) == 2)
        assert other.ids().count(first.event.id) == 1  # redriven to one trigger only
        assert await letters(store) == []
        redelivered = [r.event for r in flaky.received[2:]]
        assert all(ERROR_CODE not in ev for ev in redelivered)


def reply_with(reply: CloudEvent):
    def respond(ev: CloudEvent, attempt: int) -> web.Response:
        headers, body = encode_binary(reply)
        return web.Response(status=200, headers=headers, body=body)

    return respond


async def test_reply_is_published_to_the_broker_with_one_hop_less(store, dispatcher):
    reply = event("r1", type="order.validated", data={"ok": True})
    async with subscriber(reply_with(reply)) as validator, subscriber() as shipper:
        await dispatcher.apply([
            trigger("validate", subscriber=validator.url, filter={"attributes": {"type": "order.placed"}}),
            trigger("ship", subscriber=shipper.url, filter={"attributes": {"type": "order.validated"}}),
        ])
        await publish(store, event("o1", type="order.placed"))
        (got,) = await shipper.wait_for(1)
        assert got.event.id == "r1" and got.event.json_data() == {"ok": True}
        assert got.event[HOPS] == "254"
        assert dispatcher.stats()["default/validate"]["replies"] == 1


async def test_reply_without_hops_left_is_dropped(store, dispatcher):
    reply = event("r1", type="echo")
    async with subscriber(reply_with(reply)) as echo:
        await dispatcher.apply([trigger("echo", subscriber=echo.url)])
        await store.publish_event("default", "default", stamp_arrival(event("e1", type="echo"), hops=1))
        await echo.wait_for(1)
        await eventually(lambda: consumer_settled(store, "echo"))
        await asyncio.sleep(0.3)
        assert echo.ids() == ["e1"]
        assert dispatcher.stats()["default/echo"]["replies_dropped"] == 1


async def test_a_200_body_that_is_not_an_event_is_ignored(store, dispatcher):
    async with subscriber(lambda ev, n: web.json_response({"hello": "world"})) as sub:
        await dispatcher.apply([trigger("t", subscriber=sub.url)])
        await publish(store, event("a"))
        await sub.wait_for(1)
        await eventually(lambda: consumer_settled(store, "t"))
        stats = dispatcher.stats()["default/t"]
        assert stats["delivered"] == 1 and stats["replies"] == 0


async def test_max_event_age_dead_letters_before_retries_run_out(store, dispatcher):
    async with subscriber(lambda ev, n: web.Response(status=500)) as sub:
        delivery = {"retry": 50, "backoffPolicy": "linear", "backoffDelay": "PT0.2S", "maxEventAge": "PT0.5S"}
        await dispatcher.apply([trigger("t", subscriber=sub.url, delivery=delivery)])
        await publish(store, event("a"))
        (_letter,) = await eventually(lambda: letters(store))
        assert 2 <= len(sub.received) < 10


async def test_function_reference_is_resolved(store, dispatcher):
    async with subscriber() as fn:
        FUNCTION_URLS["fn"] = fn.url
        await dispatcher.apply([trigger("t", subscriber_ref={"ref": {"kind": "Function", "name": "fn"}})])
        await publish(store, event("a"))
        assert (await fn.wait_for(1))[0].event.id == "a"


async def test_deliveries_to_functions_carry_a_token_for_that_function_and_uris_none(store):
    signer = DeliverySigner()
    dispatcher = Dispatcher(store, resolve, ack_wait=5.0, signer=signer)
    try:
        async with subscriber() as fn, subscriber(lambda ev, n: web.Response(status=500)) as failing, \
                subscriber() as uri:
            FUNCTION_URLS.update(fn=fn.url, failing=failing.url)
            dead_letters = {"retry": 0, "deadLetterSink": {"ref": {"kind": "Function", "name": "fn"}}}
            await dispatcher.apply([
                trigger("to-fn", subscriber_ref={"ref": {"kind": "Function", "name": "fn"}},
                        filter={"attributes": {"type": "a"}}),
                trigger("to-uri", subscriber=uri.url, filter={"attributes": {"type": "a"}}),
                trigger("to-failing", subscriber_ref={"ref": {"kind": "Function", "name": "failing"}},
                        filter={"attributes": {"type": "b"}}, delivery=dead_letters),
            ])
            await publish(store, event("one", type="a"))
            await publish(store, event("two", type="b"))
            received = await fn.wait_for(2)
            assert "Authorization" not in (await uri.wait_for(1))[0].headers

            verifier = DeliveryVerifier(lambda: _jwks(signer), function_audience("default", "fn"))
            by_id = {r.event.id: r for r in received}
            for delivered in (by_id["one"], next(r for r in received if r.event.id != "one")):
                assert await verifier.check(delivered.headers["Authorization"]) is None
            claims = jwt.decode(by_id["one"].headers["Authorization"].split()[1], options={"verify_signature": False})
            assert claims["sub"] == "ripple/default/triggers/to-fn"
            # The failing Function got its own audience: its token is no good at the other one.
            (attempt,) = await failing.wait_for(1)
            assert await verifier.check(attempt.headers["Authorization"]) is not None
    finally:
        await dispatcher.close()


async def _jwks(signer: DeliverySigner) -> dict[str, object]:
    return signer.ring.jwks()
