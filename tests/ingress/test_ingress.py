"""The ingress against a real nats-server: every answer a producer can get, and what gets stored."""

from __future__ import annotations

import base64
import json

import aiohttp
import pytest

from ripple.events.extensions import ARRIVAL_TIME, HOPS
from ripple.events.model import CloudEvent
from ripple.local.nats_server import NatsServer
from ripple.store import EventStore, subjects
from tests.support import eventually

BINARY = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/src", "ce-type": "order.placed"}
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


async def stored(store: EventStore) -> list[CloudEvent]:
    """Every event in the default broker's stream, in order."""
    stream = subjects.stream_name("default", "default")
    info = await store.js.stream_info(stream)
    events = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages == 0:
            break
        raw = await store.js.get_msg(stream, seq)
        events.append(CloudEvent.from_json_bytes(raw.data or b""))
    return events


async def post(http: aiohttp.ClientSession, url: str, body: bytes | str = b"", **headers: str) -> tuple[int, dict]:
    async with http.post(url, data=body, headers=headers) as response:
        text = await response.text()
        return response.status, (json.loads(text) if text and response.content_type == "application/json" else {})


# --- content modes --------------------------------------------------------------------------------------------


async def test_binary_mode_is_stored_with_arrival_time_and_hops(ingress, http, store):
    status, _ = await post(http, ingress, b'{"total": 3}', **BINARY, **{"Content-Type": "application/json"})
    assert status == 202
    (ev,) = await stored(store)
    assert ev["type"] == "order.placed" and ev.data == b'{"total": 3}'
    assert ev["datacontenttype"] == "application/json"
    assert ev[ARRIVAL_TIME].endswith("Z") and ev[HOPS] == 255


async def test_binary_mode_percent_decodes_headers(ingress, http, store):
    status, _ = await post(http, ingress, **BINARY, **{"ce-greeting": "h%C3%A9llo%20world"})
    assert status == 202
    (ev,) = await stored(store)
    assert ev["greeting"] == "héllo world"


async def test_structured_mode_content_type_is_case_insensitive(ingress, http, store):
    doc = {"specversion": "1.0", "id": "s1", "source": "/s", "type": "t", "data": {"a": 1}}
    content_type = "Application/CloudEvents+JSON; charset=utf-8"
    status, _ = await post(http, ingress, json.dumps(doc), **{"Content-Type": content_type})
    assert status == 202
    (ev,) = await stored(store)
    assert ev.json_data() == {"a": 1} and ev["datacontenttype"] == "application/json"


async def test_structured_mode_keeps_binary_data_exact(ingress, http, store):
    raw = bytes(range(256))
    doc = {"specversion": "1.0", "id": "b1", "source": "/s", "type": "t", "data_base64": base64.b64encode(raw).decode()}
    assert (await post(http, ingress, json.dumps(doc), **{"Content-Type": STRUCTURED}))[0] == 202
    (ev,) = await stored(store)
    assert ev.data == raw


async def test_batch_mode_stores_every_event(ingress, http, store):
    batch = [{"specversion": "1.0", "id": str(i), "source": "/s", "type": "t"} for i in range(5)]
    assert (await post(http, ingress, json.dumps(batch), **{"Content-Type": BATCH}))[0] == 202
    assert [e.id for e in await stored(store)] == ["0", "1", "2", "3", "4"]


# --- validation: 400 naming the problem, nothing stored ---------------------------------------------------------

BAD_BINARY = [
    ({k: v for k, v in BINARY.items() if k != "ce-id"}, "'id'"),
    ({k: v for k, v in BINARY.items() if k != "ce-source"}, "'source'"),
    ({k: v for k, v in BINARY.items() if k != "ce-type"}, "'type'"),
    ({k: v for k, v in BINARY.items() if k != "ce-specversion"}, "'specversion'"),
    ({**BINARY, "ce-id": ""}, "'id' must not be empty"),
    ({**BINARY, "ce-specversion": "0.3"}, "specversion"),
    ({**BINARY, "ce-time": "yesterday"}, "'time'"),
    ({**BINARY, "ce-time": "2026-02-30T10:00:00Z"}, "'time'"),
    ({**BINARY, "ce-Bad_Name": "x"}, "bad_name"),
    ({**BINARY, "ce-datacontenttype": "application/json"}, "ce-datacontenttype"),
    ({**BINARY, "ce-note": "%FF%FE"}, "UTF-8"),
    ({**BINARY, "ce-note": "a%00b"}, "attribute 'note' contains a control character (U+0000)"),
    ({**BINARY, "ce-subject": ""}, "'subject'"),
    ({}, "not a CloudEvent"),
]


@pytest.mark.parametrize(("headers", "named"), BAD_BINARY)
async def test_invalid_binary_event_is_refused_naming_the_rule(ingress, http, store, headers, named):
    status, body = await post(http, ingress, b"x", **headers)
    assert status == 400
    assert named in body["error"]
    assert await stored(store) == []


VALID = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}
BAD_STRUCTURED = [
    ("{not json", "not valid JSON"),
    ("[1]", "JSON object"),
    (json.dumps({**VALID, "data": 1, "data_base64": "AA=="}), "'data' and 'data_base64'"),
    (json.dumps({**VALID, "data_base64": "***"}), "base64"),
    (json.dumps({**VALID, "time": "2026-01-01 10:00"}), "'time'"),
    (json.dumps({**VALID, "Upper": "x"}), "upper"),
    (json.dumps({**VALID, "ext": 1.5}), "'ext'"),
    (json.dumps({**VALID, "ext": 2**40}), "32-bit"),
    (json.dumps({**VALID, "id": 7}), "'id' must be a string"),
    (json.dumps({k: v for k, v in VALID.items() if k != "type"}), "'type'"),
]


@pytest.mark.parametrize(("body", "named"), BAD_STRUCTURED)
async def test_invalid_structured_event_is_refused_naming_the_rule(ingress, http, store, body, named):
    status, answer = await post(http, ingress, body, **{"Content-Type": STRUCTURED})
    assert status == 400
    assert named.lower() in answer["error"].lower()
    assert await stored(store) == []


async def test_batch_is_validated_whole_before_anything_is_stored(ingress, http, store):
    batch = [VALID, {**VALID, "id": "2"}, {**VALID, "id": ""}]
    status, body = await post(http, ingress, json.dumps(batch), **{"Content-Type": BATCH})
    assert status == 400 and body["error"].startswith("event[2]:")
    assert await stored(store) == []


async def test_batch_must_be_an_array(ingress, http):
    status, body = await post(http, ingress, json.dumps(VALID), **{"Content-Type": BATCH})
    assert status == 400 and "array" in body["error"]


async def test_reply_loop_guard_refuses_events_without_hops_left(ingress, http):
    status, body = await post(http, ingress, **BINARY, **{"ce-ripplehops": "0"})
    assert status == 400 and "ripplehops" in body["error"]


# --- other answers ----------------------------------------------------------------------------------------------


async def test_unknown_broker_is_404(ingress, http):
    status, body = await post(http, ingress.replace("/default/default", "/default/nope"), **BINARY)
    assert status == 404 and "nope" in body["error"]


async def test_other_methods_are_405(ingress, http):
    async with http.get(ingress) as response:
        assert response.status == 405
        assert "POST" in response.headers["Allow"]


async def test_webhook_handshake(ingress, http):
    async with http.options(ingress, headers={"WebHook-Request-Origin": "eventemitter.example.com"}) as response:
        assert response.status == 200
        assert response.headers["WebHook-Allowed-Origin"] == "eventemitter.example.com"
        assert "POST" in response.headers["Allow"]


async def test_body_over_the_limit_is_413(ingress, http, store):
    status, body = await post(http, ingress, b"x" * (64 * 1024 + 1), **BINARY)
    assert status == 413 and "limit" in body["error"]
    assert await stored(store) == []


async def test_unsupported_structured_format_is_415(ingress, http):
    status, body = await post(http, ingress, b"<xml/>", **{"Content-Type": "application/cloudevents+xml"})
    assert status == 415 and "xml" in body["error"]


# --- durability -------------------------------------------------------------------------------------------------


async def test_resent_event_is_stored_once(ingress, http, store):
    for _ in range(3):
        assert (await post(http, ingress, **BINARY))[0] == 202
    assert len(await stored(store)) == 1
    assert (await post(http, ingress, **{**BINARY, "ce-source": "/other"}))[0] == 202
    assert len(await stored(store)) == 2


async def test_503_while_jetstream_is_down_then_recovers(ingress, http, store, nats_server: NatsServer):
    await nats_server.stop()
    async with http.post(ingress, headers=BINARY) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert "unavailable" in (await response.json())["error"]
    await nats_server.start()

    async def accepted() -> bool:
        return (await post(http, ingress, **{**BINARY, "ce-id": "after"}))[0] == 202

    await eventually(accepted, timeout=20, interval=0.25)
    assert [e.id for e in await stored(store)] == ["after"]


async def test_metrics_count_answers_and_stored_events(ingress, http):
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"namespace": "default", "broker": "default", **labels}) or 0.0

    accepted, refused, stored = (sample("ripple_ingress_requests_total", code="202"),
                                 sample("ripple_ingress_requests_total", code="400"),
                                 sample("ripple_ingress_events_stored_total"))
    batch = [{"specversion": "1.0", "id": str(i), "source": "/m", "type": "t"} for i in range(3)]
    assert (await post(http, ingress, json.dumps(batch), **{"Content-Type": BATCH}))[0] == 202
    assert (await post(http, ingress, b"x", **{k: v for k, v in BINARY.items() if k != "ce-id"}))[0] == 400
    assert sample("ripple_ingress_requests_total", code="202") == accepted + 1
    assert sample("ripple_ingress_requests_total", code="400") == refused + 1
    assert sample("ripple_ingress_events_stored_total") == stored + 3
    async with http.get(ingress.rsplit("/", 2)[0] + "/metrics") as response:
        text = await response.text()
    assert response.status == 200
    assert 'ripple_ingress_requests_total{broker="default",code="202",namespace="default"}' in text
