"""The official CloudEvents SDKs (Go, JavaScript, Python) receive Ripple's deliveries, in binary and structured
mode (trigger ``delivery.format: binary`` / ``json``): each sees exactly the attributes the producer sent, plus
Ripple's own extensions; and an SDK receiver's reply is stored in the broker and delivered to a second trigger."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from ripple.dispatch import Dispatcher
from ripple.events.extensions import ARRIVAL_TIME, HOPS
from ripple.events.model import is_json_media_type
from ripple.tracing import is_traceparent
from tests.interop.sdk import SDKS, parse_time, receiver, spec_percent_encode, stored_events
from tests.support import eventually, subscriber, trigger

pytestmark = [pytest.mark.interop, pytest.mark.e2e]

FORMATS = ("binary", "json")
TIME = "2026-03-04T05:06:07.890Z"
BASE = {"specversion": "1.0", "type": "com.example.interop", "source": "/interop/producer", "time": TIME}
PRODUCED = {
    "json": {**BASE, "id": "json", "subject": "/orders/7", "tenant": "acme",
             "datacontenttype": "application/json", "data": {"orderId": 7, "customer": "Zoë", "items": [1, 2]}},
    "text": {**BASE, "id": "text", "datacontenttype": "text/plain", "data": "Grüße, 100% plain text\nline two"},
    "special": {**BASE, "id": "special", "subject": "/orders/7 at 50% off, crème brûlée",
                "note": "100% sure — 東京 ☕", "priority": "high", "datacontenttype": "text/plain", "data": "ok"},
}
NO_DATACONTENTTYPE = {**BASE, "id": "bare", "subject": "/no/data"}

# The Go and JS SDKs do not percent-decode ce- headers (nor encode them when sending): in binary mode they report
# a value as it is on the wire, which Ripple writes percent-encoded as the HTTP binding requires. The Python SDK
# decodes. (Structured mode has no such step.)
RAW_HEADER_SDKS = ("go", "js")


def params(*formats: str):
    return [pytest.param(sdk, fmt, id=f"{sdk}-{fmt}") for sdk in SDKS for fmt in formats]


async def produce(ingress: str, *docs: dict[str, Any]) -> None:
    """Send events to the ingress as a plain producer would: structured JSON over HTTP."""
    async with aiohttp.ClientSession() as http:
        for doc in docs:
            headers = {"Content-Type": "application/cloudevents+json"}
            async with http.post(ingress, data=json.dumps(doc, ensure_ascii=False).encode(), headers=headers) as r:
                assert r.status == 202, await r.text()


def as_reported(sdk: str, fmt: str, value: str) -> str:
    return spec_percent_encode(value) if fmt == "binary" and sdk in RAW_HEADER_SDKS else value


def mismatches(sdk: str, fmt: str, produced: dict[str, Any], line: dict[str, Any]) -> list[str]:
    """How what the SDK reports differs from what the producer sent (empty when it is exactly that)."""
    got = line["event"]
    problems = []
    expected_context = {k: v for k, v in produced.items() if k != "data"}
    extensions = dict(got["extensions"])
    for name in (ARRIVAL_TIME, HOPS):
        if name not in extensions:
            problems.append(f"Ripple's extension {name} is missing")
        extensions.pop(name, None)
    if "traceparent" not in produced and not is_traceparent(extensions.pop("traceparent", None)):
        problems.append("the trace context the broker started is missing")
    seen: dict[str, Any] = {k: got[k] for k in ("specversion", "id", "source", "type", "subject", "dataschema")}
    seen.update(extensions)
    seen["datacontenttype"] = got["datacontenttype"]
    want: dict[str, Any] = {"subject": None, "dataschema": None, "datacontenttype": None}
    for name, value in expected_context.items():
        if name == "time":
            continue
        want[name] = value if name in ("datacontenttype", "specversion") else as_reported(sdk, fmt, value)
    if seen != want:
        problems.append(f"attributes: got {seen!r}, want {want!r} (request Content-Type {line['content_type']!r})")
    if parse_time(got["time"]) != parse_time(TIME):
        problems.append(f"time: got {got['time']!r}, want {TIME!r}")
    data = produced.get("data")
    if data is None:
        if got["data"] is not None or got["data_base64"] is not None:
            problems.append(f"data: got {got['data']!r}, want none")
    elif is_json_media_type(produced.get("datacontenttype")):
        if got["data"] is None or json.loads(got["data"]) != data:
            problems.append(f"data: got {got['data']!r}, want JSON {data!r}")
    elif got["data"] != data:
        problems.append(f"data: got {got['data']!r}, want {data!r}")
    return problems


@pytest.mark.parametrize(("sdk", "fmt"), params(*FORMATS))
async def test_sdk_receives_exactly_what_the_producer_sent(sdk, fmt, ingress, store, dispatcher: Dispatcher):
    async with receiver(sdk) as rx:
        await dispatcher.apply([trigger("to-sdk", subscriber=rx.url, delivery={"format": fmt})])
        await produce(ingress, *PRODUCED.values())
        await rx.wait_for(len(PRODUCED))
        expected_type = "application/cloudevents+json" if fmt == "json" else None
        by_id = rx.by_id()
        problems = {}
        for case, produced in PRODUCED.items():
            line = by_id[produced["id"]]
            found = mismatches(sdk, fmt, produced, line)
            if expected_type and not line["content_type"].startswith(expected_type):
                found.append(f"delivered with Content-Type {line['content_type']!r}, not in structured mode")
            if found:
                problems[case] = found
        assert problems == {}


@pytest.mark.parametrize(("sdk", "fmt"), params(*FORMATS))
async def test_event_without_datacontenttype_arrives_without_one(sdk, fmt, ingress, store, dispatcher):
    """No Content-Type a receiver would take for the datacontenttype (binary mode maps one to the other)."""
    async with receiver(sdk) as rx:
        await dispatcher.apply([trigger("to-sdk", subscriber=rx.url, delivery={"format": fmt})])
        await produce(ingress, NO_DATACONTENTTYPE)
        (line,) = await rx.wait_for(1)
        assert line["event"]["datacontenttype"] is None, (
            f"the {sdk} SDK reports datacontenttype {line['event']['datacontenttype']!r} "
            f"(request Content-Type {line['content_type']!r}) for an event that has none"
        )
        if fmt == "binary":
            assert line["content_type"] == ""
        assert mismatches(sdk, fmt, NO_DATACONTENTTYPE, line) == []


@pytest.mark.parametrize(("sdk", "fmt"), params(*FORMATS))
async def test_sdk_reply_is_stored_and_delivered_to_a_second_trigger(sdk, fmt, ingress, store, dispatcher):
    async with receiver(sdk, reply_type="order.validated") as validator, subscriber() as shipper:
        await dispatcher.apply([
            trigger("validate", subscriber=validator.url, delivery={"format": fmt},
                    filter={"attributes": {"type": "order.placed"}}),
            trigger("ship", subscriber=shipper.url, filter={"attributes": {"type": "order.validated"}}),
        ])
        await produce(ingress, {**BASE, "id": "o1", "type": "order.placed", "data": {"orderId": 1}})
        (got,) = await shipper.wait_for(1)
        reply = got.event
        assert (reply.id, reply.type, reply.source) == ("reply-o1", "order.validated", f"/interop/{sdk}")
        assert reply["inreplyto"] == "o1"
        assert reply.datacontenttype == "application/json"
        assert reply.json_data() == {"replyTo": "o1", "by": sdk}
        assert reply[HOPS] == "254"  # one hop less than the original's 255
        (original,) = validator.received
        assert original["event"]["id"] == "o1"

        async def reply_stored():
            return [e for e in await stored_events(store) if e.id == "reply-o1"]

        (stored,) = await eventually(reply_stored)
        assert stored.source == f"/interop/{sdk}" and stored[HOPS] == 254
        assert dispatcher.stats()["default/validate"]["replies"] == 1
