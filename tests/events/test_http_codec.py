"""The CloudEvents HTTP binding: binary, structured and batched modes, decoding, encoding and round trips."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from ripple.events.http import (
    BATCH_CONTENT_TYPE,
    STRUCTURED_CONTENT_TYPE,
    UnsupportedFormat,
    decode_message,
    decode_request,
    encode_batch,
    encode_binary,
    encode_structured,
    media_type,
    percent_decode,
    percent_encode,
    structured_document,
)
from ripple.events.model import CloudEvent, EventError, loads_strict

BASE = {"specversion": "1.0", "id": "order-1", "source": "/shop/orders", "type": "com.example.order.placed"}
CE_HEADERS = {
    "ce-specversion": "1.0",
    "ce-id": "order-1",
    "ce-source": "/shop/orders",
    "ce-type": "com.example.order.placed",
}
STRUCTURED = {"Content-Type": STRUCTURED_CONTENT_TYPE}
BATCH = {"Content-Type": BATCH_CONTENT_TYPE}


def attrs(**extra: Any) -> dict[str, Any]:
    return {**BASE, **extra}


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def decode_one(headers: Any, payload: bytes = b"") -> CloudEvent:
    (event,) = decode_request(headers, payload)
    return event


def from_aiohttp(raw: bytes) -> str:
    """A header value as aiohttp hands it over: the raw bytes decoded as UTF-8 with surrogateescape."""
    return raw.decode("utf-8", "surrogateescape")


# --- binary mode ------------------------------------------------------------------------------------------


def test_binary_mode_reads_ce_headers_content_type_and_body() -> None:
    headers = {**CE_HEADERS, "ce-subject": "orders/42", "ce-tenant": "acme", "Content-Type": "application/json"}

    event = decode_one(headers, b'{"amount": 12.5}')

    assert dict(event.attributes) == attrs(subject="orders/42", tenant="acme", datacontenttype="application/json")
    assert event.data == b'{"amount": 12.5}'  # the exact bytes, not re-serialised
    assert event.json_data() == {"amount": 12.5}


def test_binary_mode_accepts_headers_as_a_list_of_pairs() -> None:
    pairs = [*CE_HEADERS.items(), ("Content-Type", "text/plain"), ("Host", "broker.example")]

    event = decode_one(pairs, b"hello")

    assert dict(event.attributes) == attrs(datacontenttype="text/plain")
    assert event.data == b"hello"


def test_binary_mode_header_names_are_case_insensitive() -> None:
    headers = {
        "CE-SPECVERSION": "1.0",
        "Ce-Id": "order-1",
        "ce-Source": "/shop/orders",
        "cE-tYpE": "com.example.order.placed",
        "Ce-Tenant": "acme",
        "CONTENT-TYPE": "text/plain",
    }

    event = decode_one(headers, b"x")

    assert dict(event.attributes) == attrs(tenant="acme", datacontenttype="text/plain")


def test_binary_mode_keeps_the_content_type_with_its_parameters_as_datacontenttype() -> None:
    event = decode_one({**CE_HEADERS, "content-type": "Text/Plain; charset=UTF-8"}, "grüße".encode())

    assert event.datacontenttype == "Text/Plain; charset=UTF-8"
    assert event.json_data() == "grüße"


def test_binary_mode_without_body_or_content_type_has_no_data_and_no_datacontenttype() -> None:
    event = decode_one(CE_HEADERS, b"")

    assert event.data is None
    assert "datacontenttype" not in event


def test_binary_mode_ignores_headers_that_are_not_ce_headers() -> None:
    headers = {**CE_HEADERS, "Host": "x", "Accept": "*/*", "cex": "no", "traceparent": "00-abc", "Prefer": "reply"}

    assert dict(decode_one(headers).attributes) == BASE


@pytest.mark.parametrize("name", ["ce-datacontenttype", "Ce-DataContentType", "CE-DATACONTENTTYPE"])
def test_binary_mode_refuses_ce_datacontenttype(name: str) -> None:
    with pytest.raises(EventError, match="'ce-datacontenttype' is not allowed in binary mode: use Content-Type"):
        decode_request({**CE_HEADERS, name: "application/json"}, b"{}")


@pytest.mark.parametrize(("first", "second"), [("ce-id", "ce-id"), ("ce-id", "CE-ID"), ("ce-tenant", "Ce-Tenant")])
def test_binary_mode_refuses_a_ce_header_given_twice(first: str, second: str) -> None:
    pairs = [*CE_HEADERS.items(), (first, "a"), (second, "b")]

    with pytest.raises(EventError, match=f"header 'ce-{first[3:]}' appears more than once"):
        decode_request(pairs, b"")


@pytest.mark.parametrize("missing", ["ce-id", "ce-source", "ce-specversion", "ce-type"])
def test_binary_mode_refuses_a_missing_required_attribute(missing: str) -> None:
    headers = {key: value for key, value in CE_HEADERS.items() if key != missing}

    with pytest.raises(EventError, match=f"missing required attribute '{missing[3:]}'"):
        decode_request(headers, b"")


@pytest.mark.parametrize("name", ["ce-id", "ce-type", "ce-subject"])
def test_binary_mode_refuses_empty_attributes(name: str) -> None:
    with pytest.raises(EventError, match=f"attribute '{name[3:]}' must not be empty"):
        decode_request({**CE_HEADERS, name: ""}, b"")


def test_binary_mode_refuses_another_specversion() -> None:
    with pytest.raises(EventError, match=r"unsupported specversion '0\.3'"):
        decode_request({**CE_HEADERS, "ce-specversion": "0.3"}, b"")


@pytest.mark.parametrize("header", ["ce-my_ext", "ce-my.ext", "ce-", "ce-é"])
def test_binary_mode_refuses_headers_that_name_invalid_attributes(header: str) -> None:
    with pytest.raises(EventError, match=r"attribute name .* is invalid"):
        decode_request({**CE_HEADERS, header: "v"}, b"")


def test_binary_mode_refuses_an_invalid_time() -> None:
    with pytest.raises(EventError, match="attribute 'time'"):
        decode_request({**CE_HEADERS, "ce-time": "2023-02-29T00:00:00Z"}, b"")


def test_binary_mode_extension_values_arrive_as_strings() -> None:
    event = decode_one({**CE_HEADERS, "ce-priority": "5", "ce-express": "true"})

    assert event["priority"] == "5"
    assert event["express"] == "true"


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "application/json"}, {"Content-Type": "text/plain"}])
def test_a_request_without_ce_headers_or_a_cloudevents_content_type_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(EventError, match="not a CloudEvent: no ce- headers"):
        decode_request(headers, b'{"id": "1"}')


# --- percent-encoding of header values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Hello%20World", "Hello World"),
        ("%22quoted%22", '"quoted"'),
        ("100%25", "100%"),
        ("caf%C3%A9", "café"),
        ("caf%c3%a9", "café"),  # lowercase hex digits
        ("%F0%9F%9A%80", "🚀"),
        ("a%2Fb%3Ac", "a/b:c"),  # needless escapes still decode
        ("no escapes", "no escapes"),
    ],
)
def test_header_values_are_percent_decoded(header: str, value: str) -> None:
    assert percent_decode(header, "tenant") == value
    assert decode_one({**CE_HEADERS, "ce-tenant": header})["tenant"] == value


@pytest.mark.parametrize(
    ("header", "decoded", "char"),
    [("%00", "\x00", "U+0000"), ("a%0D%0Ab", "a\r\nb", "U+000D"), ("%09", "\t", "U+0009"), ("%7F", "\x7f", "U+007F")],
)
def test_percent_escapes_of_control_characters_decode_but_the_event_is_refused(
    header: str, decoded: str, char: str
) -> None:
    assert percent_decode(header, "tenant") == decoded
    with pytest.raises(EventError, match=re.escape(f"attribute 'tenant' contains a control character ({char})")):
        decode_request({**CE_HEADERS, "ce-tenant": header}, b"")


def test_every_attribute_is_percent_decoded_including_required_ones() -> None:
    event = decode_one({**CE_HEADERS, "ce-id": "order%201", "ce-time": "2024-05-01T10%3A00%3A00Z"})

    assert event.id == "order 1"
    assert event["time"] == "2024-05-01T10:00:00Z"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("%", "%"),
        ("abc%", "abc%"),
        ("100%", "100%"),
        ("%2", "%2"),
        ("abc%4", "abc%4"),
        ("%zz", "%zz"),
        ("%G1", "%G1"),
        ("%1G", "%1G"),
        ("%-1", "%-1"),
        ("%+1", "%+1"),
        ("% 1", "% 1"),
        ("%1 ", "%1 "),
        ("%%41", "%A"),  # the first % starts no escape, the second does
        ("50%+%41", "50%+A"),
        ("%41", "A"),
    ],
)
def test_a_percent_that_starts_no_valid_escape_is_kept_literally(header: str, value: str) -> None:
    """Go's and JavaScript's SDKs send header values without percent-encoding them: be lenient."""
    assert percent_decode(header, "tenant") == value
    assert decode_one({**CE_HEADERS, "ce-tenant": header})["tenant"] == value


@pytest.mark.parametrize("header", ["%FF", "%C3", "abc%C3%28", "%ED%A0%80", "%C0%AF"])
def test_percent_escapes_that_are_not_utf8_are_refused(header: str) -> None:
    with pytest.raises(EventError, match="header 'ce-tenant' is not valid UTF-8 once percent-decoded"):
        decode_request({**CE_HEADERS, "ce-tenant": header}, b"")


@pytest.mark.parametrize("text", ["café", "Zürich 🚀", "日本語"])
def test_raw_utf8_header_values_are_taken_as_they_are(text: str) -> None:
    raw = from_aiohttp(text.encode())

    assert decode_one({**CE_HEADERS, "ce-city": raw})["city"] == text


def test_raw_utf8_next_to_percent_escapes_is_decoded_too() -> None:
    raw = from_aiohttp("Zürich%20".encode())

    assert decode_one({**CE_HEADERS, "ce-city": raw})["city"] == "Zürich "


@pytest.mark.parametrize("raw", [b"\xff", b"caf\xe9", b"\xc3"])
def test_raw_header_bytes_that_are_not_utf8_are_refused(raw: bytes) -> None:
    with pytest.raises(EventError, match="ce-tenant"):
        decode_request({**CE_HEADERS, "ce-tenant": from_aiohttp(raw)}, b"")


@pytest.mark.parametrize(
    "text", ["plain", "with space", 'say "hi"', "100%", "%41 is not A", "tab\tnew\nline", "Zoë 🚀", "a/b:c@d?e=f&g"]
)
def test_percent_encode_produces_safe_printable_ascii_that_decodes_back(text: str) -> None:
    encoded = percent_encode(text)

    assert all(0x21 <= ord(c) <= 0x7E for c in encoded)
    assert " " not in encoded and '"' not in encoded
    assert percent_decode(encoded, "x") == text


def test_percent_encode_escapes_only_space_quote_percent_and_non_printable() -> None:
    assert percent_encode('a b"c%d/é') == "a%20b%22c%25d/%C3%A9"
    assert percent_encode("/shop:orders?x=1&y=[2]") == "/shop:orders?x=1&y=[2]"


# --- structured mode --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/cloudevents+json",
        "Application/CloudEvents+JSON",
        "application/cloudevents+json; charset=utf-8",
        "APPLICATION/CLOUDEVENTS+JSON ; charset=UTF-8",
    ],
)
def test_structured_mode_content_type_is_case_insensitive_and_may_have_parameters(content_type: str) -> None:
    event = decode_one({"Content-Type": content_type}, body(attrs(subject="orders/42")))

    assert dict(event.attributes) == attrs(subject="orders/42")


def test_structured_mode_reads_the_content_type_header_case_insensitively() -> None:
    event = decode_one({"CONTENT-TYPE": STRUCTURED_CONTENT_TYPE}, body(BASE))

    assert dict(event.attributes) == BASE


def test_structured_mode_takes_attributes_from_the_body_not_from_ce_headers() -> None:
    headers = {**STRUCTURED, "ce-id": "from-header", "ce-tenant": "header"}

    event = decode_one(headers, body(attrs(id="from-body")))

    assert event.id == "from-body"
    assert "tenant" not in event


def test_structured_json_data_implies_application_json() -> None:
    event = decode_one(STRUCTURED, body(attrs(data={"amount": 12.5, "items": [1, 2], "name": "Zoë"})))

    assert event.datacontenttype == "application/json"
    assert event.data == '{"amount":12.5,"items":[1,2],"name":"Zoë"}'.encode()
    assert event.json_data() == {"amount": 12.5, "items": [1, 2], "name": "Zoë"}


@pytest.mark.parametrize(
    ("value", "data"),
    [
        ({"a": 1}, b'{"a":1}'),
        ([1, "two", None], b'[1,"two",null]'),
        ("a string", b'"a string"'),
        (42, b"42"),
        (1.5, b"1.5"),
        (True, b"true"),
        (False, b"false"),
        (0, b"0"),
        ("", b'""'),
    ],
)
def test_structured_data_under_a_json_content_type_is_stored_as_json(value: Any, data: bytes) -> None:
    for extra in ({}, {"datacontenttype": "application/json"}, {"datacontenttype": "application/vnd.x+json"}):
        event = decode_one(STRUCTURED, body(attrs(**extra, data=value)))

        assert event.data == data
        assert event.json_data() == value


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("text/plain", "hello world"),
        ("text/plain; charset=utf-8", "grüße ✓ 🚀"),
        ("application/xml", "<order id='1'/>"),
        ("text/csv", "a,b\n1,2\n"),
        ("text/plain", '{"looks": "like json"}'),
    ],
)
def test_structured_string_data_under_a_non_json_content_type_is_stored_as_utf8_text(
    content_type: str, text: str
) -> None:
    event = decode_one(STRUCTURED, body(attrs(datacontenttype=content_type, data=text)))

    assert event.data == text.encode("utf-8")
    assert event.datacontenttype == content_type


def test_structured_data_base64_is_decoded_to_the_exact_bytes() -> None:
    payload = bytes(range(256))
    doc = attrs(datacontenttype="application/octet-stream", data_base64=base64.b64encode(payload).decode())

    event = decode_one(STRUCTURED, body(doc))

    assert event.data == payload
    assert event.datacontenttype == "application/octet-stream"


def test_structured_data_base64_without_a_content_type_implies_none() -> None:
    event = decode_one(STRUCTURED, body(attrs(data_base64=base64.b64encode(b"\x00\x01").decode())))

    assert event.data == b"\x00\x01"
    assert "datacontenttype" not in event


def test_structured_event_without_data_has_no_data_and_no_implied_content_type() -> None:
    event = decode_one(STRUCTURED, body(attrs(subject="s")))

    assert event.data is None
    assert "datacontenttype" not in event


@pytest.mark.parametrize("doc", [attrs(data=None), attrs(data_base64=None)])
def test_structured_null_data_is_no_data(doc: dict[str, Any]) -> None:
    event = decode_one(STRUCTURED, body(doc))

    assert event.data is None
    assert "datacontenttype" not in event


def test_structured_null_attributes_are_dropped() -> None:
    event = decode_one(STRUCTURED, body(attrs(subject=None, tenant=None, time=None)))

    assert dict(event.attributes) == BASE


def test_structured_event_keeps_integer_and_boolean_extensions_typed() -> None:
    event = decode_one(STRUCTURED, body(attrs(priority=5, express=True, tenant="acme")))

    assert event["priority"] == 5
    assert event["express"] is True


def test_structured_event_with_both_data_and_data_base64_is_refused() -> None:
    with pytest.raises(EventError, match="'data' and 'data_base64' must not both be present"):
        decode_request(STRUCTURED, body(attrs(data={"a": 1}, data_base64="eyJhIjoxfQ==")))


@pytest.mark.parametrize("encoded", ["not base64!", "abc", "YQ", "YW=Jj", "eyJh\nIjoxfQ=="])
def test_structured_invalid_data_base64_is_refused(encoded: str) -> None:
    with pytest.raises(EventError, match="'data_base64' is not valid base64"):
        decode_request(STRUCTURED, body(attrs(data_base64=encoded)))


@pytest.mark.parametrize("encoded", [123, ["YQ=="], {"a": 1}, True])
def test_structured_data_base64_must_be_a_string(encoded: Any) -> None:
    with pytest.raises(EventError, match="'data_base64' must be a string"):
        decode_request(STRUCTURED, body(attrs(data_base64=encoded)))


@pytest.mark.parametrize("payload", [b"", b"{", b"not json", b"\xff\xfe", b"{'id': 1}"])
def test_structured_body_must_be_json(payload: bytes) -> None:
    with pytest.raises(EventError, match="body is not valid JSON"):
        decode_request(STRUCTURED, payload)


@pytest.mark.parametrize("doc", [[BASE], "event", 42, None])
def test_structured_body_must_be_a_json_object(doc: Any) -> None:
    with pytest.raises(EventError, match="a structured event must be a JSON object"):
        decode_request(STRUCTURED, body(doc))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({k: v for k, v in BASE.items() if k != "id"}, "missing required attribute 'id'"),
        (attrs(id=17), "attribute 'id' must be a string"),
        (attrs(type=""), "attribute 'type' must not be empty"),
        (attrs(specversion="0.3"), "unsupported specversion"),
        (attrs(Tenant="x"), "attribute name 'Tenant' is invalid"),
        (attrs(ratio=0.5), "attribute 'ratio' must be a string, integer or boolean"),
        (attrs(nested={"a": 1}), "attribute 'nested' must be a string, integer or boolean"),
        (attrs(big=2**31), "outside the 32-bit integer range"),
        (attrs(time="2024-05-01T10:00:00"), "attribute 'time' is not an RFC 3339 timestamp"),
        (attrs(subject=""), "attribute 'subject' must not be empty when present"),
        (attrs(datacontenttype="", data_base64="YQ=="), "attribute 'datacontenttype' must not be empty"),
        (attrs(dataschema=5), "attribute 'dataschema' must be a string"),
    ],
)
def test_structured_events_are_validated_like_any_event(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(EventError, match=message):
        decode_request(STRUCTURED, body(doc))


@pytest.mark.parametrize("content_type", [5, True, ["text/plain"]])
def test_structured_non_string_datacontenttype_with_string_data_is_refused(content_type: Any) -> None:
    with pytest.raises(EventError, match="attribute 'datacontenttype' must be a string"):
        decode_request(STRUCTURED, body(attrs(datacontenttype=content_type, data="text")))


@pytest.mark.parametrize(
    "content_type",
    [
        "application/cloudevents+xml",
        "Application/CloudEvents+XML; charset=utf-8",
        "application/cloudevents+avro",
        "application/cloudevents+protobuf",
        "application/cloudevents",
    ],
)
def test_structured_formats_other_than_json_are_unsupported(content_type: str) -> None:
    with pytest.raises(UnsupportedFormat, match="unsupported structured event format"):
        decode_request({"Content-Type": content_type}, b"<event/>")


@pytest.mark.parametrize(
    "content_type",
    ["application/cloudevents-batch+xml", "APPLICATION/CLOUDEVENTS-BATCH+PROTOBUF", "application/cloudevents-batch"],
)
def test_batch_formats_other_than_json_are_unsupported(content_type: str) -> None:
    with pytest.raises(UnsupportedFormat, match="unsupported batch format"):
        decode_request({"Content-Type": content_type}, b"[]")


# --- batch mode -------------------------------------------------------------------------------------------


def test_a_batch_yields_its_events_in_order() -> None:
    docs = [attrs(id="1"), attrs(id="2", data={"n": 2}), attrs(id="3", datacontenttype="text/plain", data="three")]

    events = decode_request(BATCH, body(docs))

    assert [e.id for e in events] == ["1", "2", "3"]
    assert events[0].data is None
    assert events[1].json_data() == {"n": 2}
    assert events[2].data == b"three"


@pytest.mark.parametrize(
    "content_type", ["application/cloudevents-batch+json", "Application/CloudEvents-Batch+JSON; charset=utf-8"]
)
def test_batch_content_type_is_case_insensitive_and_may_have_parameters(content_type: str) -> None:
    assert len(decode_request({"content-type": content_type}, body([BASE, BASE]))) == 2


def test_an_empty_batch_has_no_events() -> None:
    assert decode_request(BATCH, b"[]") == []


@pytest.mark.parametrize("doc", [BASE, "events", 1, None])
def test_a_batch_must_be_a_json_array(doc: Any) -> None:
    with pytest.raises(EventError, match="a batch must be a JSON array of events"):
        decode_request(BATCH, body(doc))


def test_a_batch_body_must_be_json() -> None:
    with pytest.raises(EventError, match="body is not valid JSON"):
        decode_request(BATCH, b"[{")


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        ([BASE, attrs(id="")], r"^event\[1\]: attribute 'id' must not be empty"),
        ([BASE, BASE, "not an event"], r"^event\[2\]: a structured event must be a JSON object"),
        ([attrs(data=1, data_base64="YQ==")], r"^event\[0\]: 'data' and 'data_base64' must not both be present"),
        ([BASE, attrs(data_base64="!")], r"^event\[1\]: 'data_base64' is not valid base64"),
        ([BASE, attrs(time="2023-02-29T00:00:00Z")], r"^event\[1\]: attribute 'time' is not a valid date-time"),
    ],
)
def test_a_batch_is_validated_whole_and_errors_name_the_event(docs: list[Any], message: str) -> None:
    with pytest.raises(EventError, match=message):
        decode_request(BATCH, body(docs))


def test_a_batch_uses_one_specversion() -> None:
    with pytest.raises(EventError, match=r"^event\[1\]: unsupported specversion '0.3'"):
        decode_request(BATCH, body([BASE, attrs(specversion="0.3")]))


# --- decode_message: replies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "payload"),
    [
        ({}, b""),
        ({"Content-Type": "application/json"}, b'{"ok": true}'),
        ({"Content-Type": "text/plain"}, b"thanks"),
        ({"content-type": "application/json", "X-Request-Id": "1"}, b'{"id": "1", "type": "t"}'),
    ],
)
def test_decode_message_returns_none_for_a_body_that_is_not_a_cloudevent(
    headers: dict[str, str], payload: bytes
) -> None:
    assert decode_message(headers, payload) is None


def test_decode_message_reads_a_binary_reply() -> None:
    reply = decode_message({**CE_HEADERS, "Content-Type": "application/json"}, b'{"ok":true}')

    assert reply is not None
    assert reply.id == "order-1"
    assert reply.json_data() == {"ok": True}


@pytest.mark.parametrize("name", ["Content-Type", "content-type"])
def test_decode_message_reads_a_structured_reply(name: str) -> None:
    reply = decode_message({name: STRUCTURED_CONTENT_TYPE}, body(attrs(id="reply-1")))

    assert reply is not None
    assert reply.id == "reply-1"


def test_decode_message_reads_a_batch_of_one() -> None:
    reply = decode_message(BATCH, body([attrs(id="only")]))

    assert reply is not None and reply.id == "only"


def test_decode_message_raises_for_a_reply_that_is_an_invalid_cloudevent() -> None:
    with pytest.raises(EventError):
        decode_message({"ce-id": "1"}, b"")
    with pytest.raises(UnsupportedFormat):
        decode_message({"Content-Type": "application/cloudevents+xml"}, b"<e/>")


@pytest.mark.parametrize("name", ["Content-type", "CONTENT-TYPE"])
def test_decode_message_reads_the_content_type_case_insensitively(name: str) -> None:
    reply = decode_message({name: STRUCTURED_CONTENT_TYPE}, body(attrs(id="reply-1")))

    assert reply is not None and reply.id == "reply-1"


# --- encoding ---------------------------------------------------------------------------------------------


def test_encode_binary_puts_attributes_in_ce_headers_and_datacontenttype_in_content_type() -> None:
    event = CloudEvent.create(
        attrs(datacontenttype="application/json", subject="orders/42", priority=5, express=True, archived=False),
        b'{"a":1}',
    )

    headers, payload = encode_binary(event)

    assert headers == {
        "ce-specversion": "1.0",
        "ce-id": "order-1",
        "ce-source": "/shop/orders",
        "ce-type": "com.example.order.placed",
        "Content-Type": "application/json",
        "ce-subject": "orders/42",
        "ce-priority": "5",
        "ce-express": "true",
        "ce-archived": "false",
    }
    assert payload == b'{"a":1}'


def test_encode_binary_percent_encodes_header_values() -> None:
    headers, _ = encode_binary(CloudEvent.create(attrs(note='say "hi" 100%', city="Zürich")))

    assert headers["ce-note"] == "say%20%22hi%22%20100%25"
    assert headers["ce-city"] == "Z%C3%BCrich"
    assert all(value.isascii() for value in headers.values())


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("application/cloudevents+json", b'{"specversion":"1.0","id":"inner","source":"/in","type":"inner"}'),
        ("Application/CloudEvents-Batch+JSON; charset=utf-8", b"[]"),
        ("application/cloudevents+xmlimage/png", b"\x89PNG\r\n"),
    ],
)
def test_encode_binary_sends_data_of_a_cloudevents_media_type_in_structured_mode(
    content_type: str, data: bytes
) -> None:
    """As a binary Content-Type, the receiver would read the data as the event, a batch or an unsupported format
    (tests/fuzz/corpus/http/regression-cloudevents-datacontenttype)."""
    event = CloudEvent.create(attrs(datacontenttype=content_type, count=3), data)

    headers, payload = encode_binary(event)

    assert headers["Content-Type"] == STRUCTURED_CONTENT_TYPE + "; charset=utf-8"
    [received] = decode_request(headers, payload)
    assert received.attributes == event.attributes
    assert received.json_data() == event.json_data()


def test_encode_binary_of_an_event_without_data_has_an_empty_body_and_no_content_type() -> None:
    headers, payload = encode_binary(CloudEvent.create(BASE))

    assert payload == b""
    assert "Content-Type" not in headers


def test_encode_structured_writes_one_json_object() -> None:
    event = CloudEvent.create(attrs(datacontenttype="application/json", priority=5), b'{"amount":12.5}')

    headers, payload = encode_structured(event)

    assert headers == {"Content-Type": "application/cloudevents+json; charset=utf-8"}
    assert json.loads(payload) == attrs(datacontenttype="application/json", priority=5, data={"amount": 12.5})


@pytest.mark.parametrize(
    ("content_type", "data", "member", "value"),
    [
        ("application/json", b'{"a":[1,2]}', "data", {"a": [1, 2]}),
        ("text/plain", "grüße".encode(), "data", "grüße"),
        ("text/plain", b"\xff\xfe", "data_base64", "//4="),
        ("application/octet-stream", b"\x00\x01", "data_base64", "AAE="),
        ("image/png", b"\x89PNG", "data_base64", "iVBORw=="),
    ],
)
def test_structured_document_inlines_json_and_text_and_base64_encodes_binary(
    content_type: str, data: bytes, member: str, value: Any
) -> None:
    doc = structured_document(CloudEvent.create(attrs(datacontenttype=content_type), data))

    assert doc[member] == value
    assert ({"data", "data_base64"} - {member}).isdisjoint(doc)


def test_encode_batch_writes_a_json_array() -> None:
    events = [CloudEvent.create(attrs(id="1")), CloudEvent.create(attrs(id="2", datacontenttype="text/plain"), b"x")]

    headers, payload = encode_batch(events)

    assert headers == {"Content-Type": "application/cloudevents-batch+json; charset=utf-8"}
    assert json.loads(payload) == [attrs(id="1"), attrs(id="2", datacontenttype="text/plain", data="x")]


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("Application/JSON; charset=x", "application/json"),
        ("  text/plain  ", "text/plain"),
        ("application/cloudevents+json;charset=utf-8", "application/cloudevents+json"),
        ("", ""),
        (None, ""),
    ],
)
def test_media_type_is_lower_cased_without_parameters(content_type: str | None, kind: str) -> None:
    assert media_type(content_type) == kind


# --- round trips ------------------------------------------------------------------------------------------

ROUND_TRIP = [
    CloudEvent.create(BASE),
    CloudEvent.create(
        attrs(
            id="ünïcode-1 🚀",
            source="https://shop.example/orders?region=eu&x=1",
            subject="über/straße 42",
            datacontenttype="application/json",
            note='say "hi" to 100% of "users"',
            blank="  leading and trailing  ",
        ),
        '{"name":"Zoë","emoji":"🚀","amount":12.5,"items":[1,2,null],"ok":true}'.encode(),
    ),
    CloudEvent.create(
        attrs(
            datacontenttype="text/plain; charset=utf-8",
            time="2024-02-29T12:34:56.789+05:30",
            dataschema="https://schemas.example/v1/text",
            percent="%41%42 is not AB",
        ),
        "héllo wörld ✓\nsecond line\twith tab".encode(),
    ),
    # Control characters are refused in attributes; everything else printable must survive the header encoding.
    CloudEvent.create(
        attrs(datacontenttype="application/octet-stream", special='a b%c"d é;,= ✓ ~!@#$^&*()[]{}<>?/\\|`'),
        bytes(range(256)),
    ),
    CloudEvent.create(attrs(datacontenttype="image/png", empty=""), b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
    CloudEvent.create(attrs(datacontenttype="application/vnd.order+json", id="quote\"d'", type="t y p e"), b'"text"'),
]


@pytest.mark.parametrize("event", ROUND_TRIP, ids=range(len(ROUND_TRIP)))
def test_binary_round_trip_preserves_attributes_and_data_exactly(event: CloudEvent) -> None:
    restored = decode_one(*encode_binary(event))

    assert dict(restored.attributes) == dict(event.attributes)
    assert restored.data == event.data
    assert restored == event


def test_binary_round_trip_carries_integers_and_booleans_as_their_canonical_text() -> None:
    event = CloudEvent.create(attrs(priority=-5, express=True, archived=False))

    restored = decode_one(*encode_binary(event))

    assert (restored["priority"], restored["express"], restored["archived"]) == ("-5", "true", "false")


@pytest.mark.parametrize(
    "event",
    [*ROUND_TRIP, CloudEvent.create(attrs(priority=-5, express=True, archived=False, big=2**31 - 1))],
    ids=range(len(ROUND_TRIP) + 1),
)
def test_structured_round_trip_preserves_attributes_types_and_data_exactly(event: CloudEvent) -> None:
    restored = decode_one(*encode_structured(event))

    assert dict(restored.attributes) == dict(event.attributes)
    assert [type(v) for v in restored.attributes.values()] == [type(v) for v in event.attributes.values()]
    assert restored.data == event.data


def test_batch_round_trip_preserves_every_event_in_order() -> None:
    restored = decode_request(*encode_batch(ROUND_TRIP))

    assert [dict(e.attributes) for e in restored] == [dict(e.attributes) for e in ROUND_TRIP]
    assert [e.data for e in restored] == [e.data for e in ROUND_TRIP]


def test_structured_round_trip_of_json_data_without_a_content_type_makes_the_implied_type_explicit() -> None:
    event = CloudEvent.create(BASE, b'{"a":1}')

    restored = decode_one(*encode_structured(event))

    assert restored.data == b'{"a":1}'
    assert restored.datacontenttype == "application/json"


def test_structured_round_trip_of_non_compact_json_preserves_the_json_value() -> None:
    event = CloudEvent.create(attrs(datacontenttype="application/json"), b'{ "a" : [1, 2],\n  "b": "\\u00e9" }')

    restored = decode_one(*encode_structured(event))

    assert restored.json_data() == event.json_data() == {"a": [1, 2], "b": "é"}


@pytest.mark.parametrize(
    "event",
    [
        CloudEvent.create(BASE, b"plain text, no content type"),
        CloudEvent.create(attrs(datacontenttype="application/json"), b"not json"),
        CloudEvent.create(attrs(datacontenttype="application/json; charset=utf-8"), b"{broken"),
    ],
    ids=["no-content-type", "json-type-invalid-json", "json-type-broken-object"],
)
@pytest.mark.parametrize("encode", [encode_structured, lambda e: encode_batch([e])], ids=["structured", "batch"])
def test_structured_round_trip_preserves_data_that_is_text_but_not_json(event: CloudEvent, encode: Any) -> None:
    restored = decode_one(*encode(event))

    assert restored.data == event.data


# --- the fast JSON path keeps the standard parser's results ------------------------------------------------------


@pytest.mark.parametrize("number", ["123456789012345678901234567890", "-9223372036854775809", "18446744073709551616"])
def test_integers_beyond_64_bits_in_data_stay_exact(number: str):
    body = b'[{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"n":' + number.encode() + b"}}]"
    (event,) = decode_request({"Content-Type": BATCH_CONTENT_TYPE}, body)
    assert event.data == b'{"n":%s}' % number.encode()
    assert event.json_data() == {"n": int(number)}


def test_the_fast_path_and_the_standard_parser_agree_on_what_they_refuse():
    for text in (b'[1e400]', b'[NaN]', b'{"a":1,}', b'\xff'):
        with pytest.raises(ValueError):
            loads_strict(text)
    assert loads_strict(b'["\\ud83d\\ude00", 0.1, -0.0, 1E2]') == ["\U0001F600", 0.1, -0.0, 100.0]
