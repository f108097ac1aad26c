"""The ingress and the distributed-tracing extension: kept when sent, started when absent, refused when it is
not a W3C trace context."""

from __future__ import annotations

import json

from ripple.tracing import is_traceparent, same_trace
from tests.ingress.test_ingress import BATCH, BINARY, post, stored

PRODUCER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_a_producers_extension_is_kept_as_sent(ingress, http, store):
    status, _ = await post(http, ingress, **BINARY, **{"ce-traceparent": PRODUCER, "ce-tracestate": "shop=1"})
    assert status == 202
    (ev,) = await stored(store)
    assert ev["traceparent"] == PRODUCER and ev["tracestate"] == "shop=1"


async def test_an_event_without_one_joins_the_requests_trace(ingress, http, store):
    assert (await post(http, ingress, **BINARY, traceparent=PRODUCER))[0] == 202
    (ev,) = await stored(store)
    assert same_trace(ev["traceparent"], PRODUCER)


async def test_an_event_sent_without_any_context_starts_a_trace(ingress, http, store):
    assert (await post(http, ingress, **BINARY))[0] == 202
    assert (await post(http, ingress, **{**BINARY, "ce-id": "2"}))[0] == 202
    first, second = await stored(store)
    assert is_traceparent(first["traceparent"]) and is_traceparent(second["traceparent"])
    assert not same_trace(first["traceparent"], second["traceparent"]), "two requests are two traces"


async def test_a_batch_shares_the_request_context_but_keeps_each_events_own(ingress, http, store):
    batch = [{"specversion": "1.0", "id": "a", "source": "/s", "type": "t", "traceparent": PRODUCER},
             {"specversion": "1.0", "id": "b", "source": "/s", "type": "t"}]
    assert (await post(http, ingress, json.dumps(batch), **{"Content-Type": BATCH}))[0] == 202
    a, b = await stored(store)
    assert a["traceparent"] == PRODUCER and same_trace(b["traceparent"], PRODUCER)


async def test_a_malformed_extension_is_refused_naming_it(ingress, http, store):
    status, body = await post(http, ingress, **BINARY, **{"ce-traceparent": "00-abc-def-01"})
    assert status == 400 and "'traceparent' must be a W3C trace context" in body["error"]
    long_state = {"ce-traceparent": PRODUCER, "ce-tracestate": "k=" + "v" * 600}
    status, body = await post(http, ingress, **BINARY, **long_state)
    assert status == 400 and "'tracestate' is over the limit of 512 bytes" in body["error"]
    assert await stored(store) == []


async def test_a_malformed_request_header_is_not_the_events_fault(ingress, http, store):
    assert (await post(http, ingress, **BINARY, traceparent="not-a-context"))[0] == 202
    (ev,) = await stored(store)
    assert is_traceparent(ev["traceparent"])
