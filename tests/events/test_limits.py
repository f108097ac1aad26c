"""Hardening of the model and the HTTP binding: attribute values, sizes, JSON nesting, lone surrogates.

Every rule here holds for events the ingress receives and for replies alike, since both go through the same
codec and :func:`ripple.events.model.check_attributes`.
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import pytest

import ripple.events
from ripple.events.http import (
    BATCH_CONTENT_TYPE,
    STRUCTURED_CONTENT_TYPE,
    decode_message,
    decode_request,
    encode_batch,
    encode_binary,
    encode_structured,
    percent_decode,
    structured_document,
)
from ripple.events.model import (
    ATTRIBUTE_LIMITS,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    MAX_EXTENSION_BYTES,
    MAX_JSON_DEPTH,
    MAX_NAME_LENGTH,
    CloudEvent,
    EventError,
    json_too_deep,
)

BASE = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}
CE_HEADERS = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}
STRUCTURED = {"Content-Type": STRUCTURED_CONTENT_TYPE}
BATCH = {"Content-Type": BATCH_CONTENT_TYPE}


def attrs(**extra: Any) -> dict[str, Any]:
    return {**BASE, **extra}


def refused(match: str) -> Any:
    return pytest.raises(EventError, match=re.escape(match))


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


# --- the limits themselves ---------------------------------------------------------------------------------------


def test_the_limits_are_the_documented_values_and_exported() -> None:
    assert dict(ATTRIBUTE_LIMITS) == {
        "type": 256, "id": 256, "source": 1024, "subject": 1024, "dataschema": 1024, "datacontenttype": 256,
    }
    assert (MAX_EXTENSION_BYTES, MAX_ATTRIBUTES, MAX_ATTRIBUTES_BYTES, MAX_NAME_LENGTH, MAX_JSON_DEPTH) == (
        1024, 64, 8192, 64, 256,
    )
    for name in ("MAX_TYPE_BYTES", "MAX_JSON_DEPTH", "MAX_ATTRIBUTES_BYTES", "ATTRIBUTE_LIMITS"):
        assert name in ripple.events.__all__ and hasattr(ripple.events, name)


def test_worst_case_headers_and_subjects_stay_under_the_servers_limits() -> None:
    # Percent-encoding makes each byte at most 3: every header line stays under aiohttp's 8190 bytes, and the
    # type's subject tokens under nats-server's 4096-byte control line with room for the prefix and the reply.
    longest_value = max(MAX_EXTENSION_BYTES, *ATTRIBUTE_LIMITS.values())
    assert len("ce-") + MAX_NAME_LENGTH + len(": ") + 3 * longest_value < 8190
    assert 3 * ATTRIBUTE_LIMITS["type"] + 1024 < 4096
    assert MAX_ATTRIBUTES < 128  # aiohttp's limit on the number of headers


def _value_of(size: int) -> str:
    return "a" * size


LIMITED = [*ATTRIBUTE_LIMITS.items(), ("tenant", MAX_EXTENSION_BYTES)]


@pytest.mark.parametrize(("name", "limit"), LIMITED)
def test_each_attribute_may_be_as_long_as_its_limit(name: str, limit: int) -> None:
    value = "text/" + _value_of(limit - 5) if name == "datacontenttype" else _value_of(limit)
    assert CloudEvent.create(attrs(**{name: value}))[name] == value


@pytest.mark.parametrize(("name", "limit"), LIMITED)
def test_an_attribute_over_its_limit_is_refused_naming_it_and_the_limit(name: str, limit: int) -> None:
    value = "text/" + _value_of(limit - 4) if name == "datacontenttype" else _value_of(limit + 1)
    with refused(f"attribute '{name}' is {limit + 1} bytes long, over the limit of {limit} bytes"):
        CloudEvent.create(attrs(**{name: value}))


def test_sizes_are_counted_in_utf8_bytes() -> None:
    CloudEvent.create(attrs(type="é" * 128))  # 256 bytes
    with refused("attribute 'type' is 258 bytes long, over the limit of 256 bytes"):
        CloudEvent.create(attrs(type="é" * 129))


def test_a_time_with_endless_fraction_digits_is_bounded_like_an_extension() -> None:
    with refused("attribute 'time' is"):
        CloudEvent.create(attrs(time="2024-05-01T10:00:00." + "1" * 2000 + "Z"))


def test_at_most_64_attributes() -> None:
    extensions = {f"x{i}": "v" for i in range(MAX_ATTRIBUTES - len(BASE))}
    CloudEvent.create(attrs(**extensions))
    with refused(f"the event has {MAX_ATTRIBUTES + 1} attributes, over the limit of {MAX_ATTRIBUTES}"):
        CloudEvent.create(attrs(**extensions, one="more"))


def test_the_attribute_values_together_are_bounded() -> None:
    within = {f"x{i}": _value_of(1000) for i in range(8)}  # each under its limit, 8000 + 5 bytes in all
    CloudEvent.create(attrs(**within))
    with refused(f"over the limit of {MAX_ATTRIBUTES_BYTES} bytes"):
        CloudEvent.create(attrs(**within, more=_value_of(500)))


def test_attribute_names_are_bounded() -> None:
    CloudEvent.create(attrs(**{"n" * MAX_NAME_LENGTH: "v"}))
    with refused(f"is longer than {MAX_NAME_LENGTH} characters"):
        CloudEvent.create(attrs(**{"n" * (MAX_NAME_LENGTH + 1): "v"}))


def test_error_messages_do_not_echo_huge_names() -> None:
    with pytest.raises(EventError) as caught:
        CloudEvent.create(attrs(**{"N" * 100_000: "v"}))
    assert len(str(caught.value)) < 200


# --- characters ------------------------------------------------------------------------------------------------

CONTROL = [*(chr(c) for c in range(0x20)), "\x7f"]


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
@pytest.mark.parametrize("name", ["source", "id", "type", "subject", "tenant"])
def test_control_characters_are_refused_in_any_string_attribute(name: str, char: str) -> None:
    with refused(f"attribute '{name}' contains a control character (U+{ord(char):04X})"):
        CloudEvent.create(attrs(**{name: f"a{char}b"}))


@pytest.mark.parametrize("value", ["a\tb\r\nc", "line\n", "\x00", "bell\x07"])
def test_values_with_tabs_newlines_or_nul_are_refused_in_every_mode(value: str) -> None:
    with refused("attribute 'note' contains a control character"):
        CloudEvent.create(attrs(note=value))
    with refused("attribute 'note' contains a control character"):
        decode_request(STRUCTURED, json.dumps(attrs(note=value)).encode())
    with refused("attribute 'note' contains a control character"):
        decode_request({**CE_HEADERS, "ce-note": "a%09b%0D%0Ac"}, b"")


@pytest.mark.parametrize("char", ["\ud800", "\udbff", "\udc00", "\udfff"])
def test_lone_surrogates_are_refused_in_attributes(char: str) -> None:
    with refused(f"attribute 'source' contains a lone surrogate (U+{ord(char):04X})"):
        CloudEvent.create(attrs(source=f"/s{char}"))


def test_a_lone_surrogate_escape_in_a_structured_attribute_is_refused() -> None:
    with refused("attribute 'id' contains a lone surrogate (U+D800)"):
        decode_request(STRUCTURED, b'{"specversion":"1.0","id":"x\\ud800","source":"/s","type":"t"}')


def test_paired_surrogate_escapes_are_just_characters() -> None:
    (event,) = decode_request(STRUCTURED, b'{"specversion":"1.0","id":"\\ud83d\\ude80","source":"/s","type":"t"}')
    assert event.id == "🚀"


def test_non_ascii_printable_text_is_fine_outside_datacontenttype() -> None:
    event = CloudEvent.create(attrs(subject="Zürich 🚀 \u00a0\u0085", tenant="日本語"))
    assert event["tenant"] == "日本語"


@pytest.mark.parametrize("value", ["text/plain\r\nX-Injected: 1", "text/plain\n", "text/plain;\tcharset=utf-8"])
def test_create_refuses_a_datacontenttype_with_control_characters(value: str) -> None:
    with refused("attribute 'datacontenttype' contains a control character"):
        CloudEvent.create(attrs(datacontenttype=value))


@pytest.mark.parametrize("value", ["text/plain; charset=é", "application/jsön", "text/plain\u00a0"])
def test_datacontenttype_must_be_printable_ascii(value: str) -> None:
    with refused("attribute 'datacontenttype' must be printable ASCII"):
        CloudEvent.create(attrs(datacontenttype=value))
    with refused("attribute 'datacontenttype' must be printable ASCII"):
        decode_request(STRUCTURED, json.dumps(attrs(datacontenttype=value, data="x")).encode())


@pytest.mark.parametrize(
    ("raw", "shown"), [(b"text/plain; charset=\xff", "byte 0xFF"), ("text/plain; a=é".encode(), "U+00E9")]
)
def test_a_raw_non_ascii_content_type_header_is_refused_naming_it(raw: bytes, shown: str) -> None:
    header = raw.decode("utf-8", "surrogateescape")  # as aiohttp hands raw header bytes over
    expected = rf"header 'Content-Type' must be printable ASCII .*, found {re.escape(shown)}$"
    with pytest.raises(EventError, match=expected):
        decode_request({**CE_HEADERS, "Content-Type": header}, b"x")


def test_a_decoded_non_ascii_content_type_header_is_refused_too() -> None:
    with refused("header 'Content-Type' must be printable ASCII"):
        decode_request({**CE_HEADERS, "Content-Type": "text/plain; a=é"}, b"x")


def test_percent_decode_refuses_a_surrogate_that_no_byte_stands_for() -> None:
    with refused("header 'ce-x' is not valid UTF-8"):
        percent_decode("a\ud800", "x")
    with refused("header 'ce-x' is not valid UTF-8"):
        percent_decode("%41\ud800", "x")


def test_replies_follow_the_same_rules() -> None:
    with refused("attribute 'type' is 5000 bytes long, over the limit of 256 bytes"):
        decode_message({**CE_HEADERS, "ce-type": "t" * 5000}, b"")
    with refused("attribute 'note' contains a control character (U+0000)"):
        decode_message({**CE_HEADERS, "ce-note": "%00"}, b"")


# --- lone surrogates in data -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":"\\ud800"}',
        b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"k":["\\udfff"]}}',
        b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"\\ud800":1}}',
        b'{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"a\\udc00"}',
    ],
)
def test_structured_data_with_a_lone_surrogate_is_refused_not_a_crash(doc: bytes) -> None:
    with refused("'data' contains a lone surrogate (U+D"):
        decode_request(STRUCTURED, doc)


def test_a_batch_names_the_event_whose_data_holds_a_lone_surrogate() -> None:
    body = b'[{"specversion":"1.0","id":"1","source":"/s","type":"t","data":"\\ud800"}]'
    with refused("event[0]: 'data' contains a lone surrogate (U+D800)"):
        decode_request(BATCH, body)


def test_binary_json_data_with_surrogate_escapes_is_kept_as_bytes_and_sent_structured_as_base64() -> None:
    data = b'{"k":"\\ud800","ok":"\\ud83d\\ude80"}'
    (event,) = decode_request({**CE_HEADERS, "Content-Type": "application/json"}, data)
    assert event.data == data
    assert event.json_data() == {"k": "\ud800", "ok": "🚀"}
    assert structured_document(event)["data_base64"] == base64.b64encode(data).decode()
    (restored,) = decode_request(*encode_structured(event))
    assert restored.data == data
    assert decode_request(*encode_batch([event]))[0].data == data
    assert CloudEvent.from_json_bytes(event.to_json_bytes()) == event


def test_paired_surrogate_escapes_in_binary_json_data_stay_inline() -> None:
    (event,) = decode_request({**CE_HEADERS, "Content-Type": "application/json"}, b'{"ok":"\\ud83d\\ude80"}')
    assert structured_document(event)["data"] == {"ok": "🚀"}


# --- JSON: nesting, and what is not JSON ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        (nested(MAX_JSON_DEPTH), False),
        (nested(MAX_JSON_DEPTH + 1), True),
        ("{" + '"a":{' * MAX_JSON_DEPTH + "}" * (MAX_JSON_DEPTH + 1), True),
        ('["' + "[" * 10_000 + '"]', False),  # brackets inside a string do not count
        ('["\\"' + "[" * 10_000 + '"]', False),  # nor after an escaped quote
        ('["\\\\"' + "," + "[" * 300, True),  # an escaped backslash ends the string
        ("[" * 300 + '"unterminated', True),
        ('"unterminated' + "[" * 300, False),
        ("[]" * 100_000, False),  # many brackets, shallow
        ("", False),
    ],
)
def test_json_too_deep_counts_nesting_outside_strings(text: str, deep: bool) -> None:
    assert json_too_deep(text.encode()) is deep
    assert json_too_deep(text) is deep


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_json_too_deep_reads_the_encodings_json_loads_detects(encoding: str) -> None:
    assert json_too_deep(nested(MAX_JSON_DEPTH + 1).encode(encoding))
    assert not json_too_deep(nested(MAX_JSON_DEPTH).encode(encoding))


def test_json_too_deep_is_iterative_and_quick_on_a_megabyte() -> None:
    started = time.monotonic()
    assert json_too_deep(b"[" * 1024 * 1024)
    assert not json_too_deep(b'["' + b"\\\"[" * 300_000 + b'"]')
    assert not json_too_deep(b"[]" * 500_000)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 100_000])
@pytest.mark.parametrize("headers", [STRUCTURED, BATCH], ids=["structured", "batch"])
def test_structured_and_batch_bodies_nested_too_deep_are_refused(headers: dict[str, str], depth: int) -> None:
    with refused(f"JSON nesting deeper than {MAX_JSON_DEPTH} levels"):
        decode_request(headers, nested(depth).encode())


def test_structured_data_nested_too_deep_is_refused() -> None:
    body = json.dumps(attrs())[:-1] + ', "data": ' + nested(1000) + "}"
    with refused(f"JSON nesting deeper than {MAX_JSON_DEPTH}"):
        decode_request(STRUCTURED, body.encode())


def test_structured_data_as_deep_as_allowed_is_accepted_and_decodes() -> None:
    inner = MAX_JSON_DEPTH - 1  # the event object is one level
    body = json.dumps(attrs())[:-1] + ', "data": ' + nested(inner) + "}"
    (event,) = decode_request(STRUCTURED, body.encode())
    value = event.json_data()
    for _ in range(inner):
        (value,) = value
    assert value == 1


@pytest.mark.parametrize("content_type", ["application/json", "text/json", "application/vnd.x+json; charset=utf-8"])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_binary_json_data_nested_too_deep_is_refused(content_type: str, depth: int) -> None:
    with refused(f"data is not accepted: JSON nesting deeper than {MAX_JSON_DEPTH} levels"):
        decode_request({**CE_HEADERS, "Content-Type": content_type}, nested(depth).encode())


def test_binary_data_of_other_types_is_opaque_however_many_brackets() -> None:
    (event,) = decode_request({**CE_HEADERS, "Content-Type": "application/octet-stream"}, b"[" * 100_000)
    assert event.data == b"[" * 100_000


@pytest.mark.parametrize("content_type", [None, "application/json"])
def test_json_data_never_raises_for_data_nested_too_deep(content_type: str | None) -> None:
    # Without a content type (or stored before the ingress checked), deep data is not decoded as JSON.
    data = b"[" * 100_000 + b"]" * 100_000
    event = CloudEvent(attrs(**({"datacontenttype": content_type} if content_type else {})), data)
    assert event.json_data() == data.decode()
    assert event.as_mapping()["data"] == data.decode()
    assert structured_document(event)["data_base64"] == base64.b64encode(data).decode()
    encode_structured(event)
    encode_binary(event)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":NaN}', "NaN is not a JSON value"),
        (b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":[Infinity]}', "Infinity is not a JSON value"),
        (b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":-Infinity}', "-Infinity is not"),
        (b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1e999}', "number 1e999 is out of range"),
        (b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":' + b"9" * 5000 + b"}", "not valid JSON"),
    ],
)
def test_structured_bodies_must_be_strict_json(body: bytes, named: str) -> None:
    with refused(named):
        decode_request(STRUCTURED, body)


def test_structured_bodies_are_refused_not_crashed_on_for_invalid_utf8() -> None:
    with refused("body is not valid JSON"):
        decode_request(STRUCTURED, b'{"id": "\xff"}')


# --- what Ripple sends, Ripple reads back ------------------------------------------------------------------------


@pytest.mark.parametrize(("depth", "inline"), [(MAX_JSON_DEPTH - 2, True), (MAX_JSON_DEPTH - 1, False),
                                                (MAX_JSON_DEPTH, False)])
def test_json_data_too_deep_to_inline_in_a_batch_goes_as_base64(depth: int, inline: bool) -> None:
    data = nested(depth).encode()
    (event,) = decode_request({**CE_HEADERS, "Content-Type": "application/json"}, data)
    assert ("data" in structured_document(event)) is inline
    assert decode_request(*encode_structured(event))[0].json_data() == event.json_data()
    assert decode_request(*encode_batch([event]))[0].json_data() == event.json_data()


def test_json_null_data_goes_as_base64_so_that_it_is_not_read_back_as_no_data() -> None:
    (event,) = decode_request({**CE_HEADERS, "Content-Type": "application/json"}, b"null")
    assert structured_document(event)["data_base64"] == "bnVsbA=="
    assert decode_request(*encode_structured(event))[0].data == b"null"


@pytest.mark.parametrize(
    ("data", "decoded"),
    [(b"NaN", "NaN"), (b"[Infinity]", "[Infinity]"), (b"1e999", "1e999"), (b'"\xed\xa0\x80"', b'"\xed\xa0\x80"')],
)
def test_json_data_that_is_not_strictly_json_is_not_decoded_as_json(data: bytes, decoded: str | bytes) -> None:
    event = CloudEvent.create(attrs(datacontenttype="application/json"), data)
    assert event.json_data() == decoded  # text, or bytes when not even UTF-8
    assert "data_base64" in structured_document(event)
    assert decode_request(*encode_structured(event))[0].data == data


def test_a_structured_body_with_utf8_encoded_surrogates_is_not_json() -> None:
    with refused("body is not valid JSON"):
        decode_request(STRUCTURED, b'{"specversion":"1.0","id":"\xed\xa0\x80","source":"/s","type":"t"}')


def test_utf16_json_data_with_a_lone_surrogate_escape_goes_as_base64() -> None:
    data = '{"k":"\\ud800"}'.encode("utf-16")
    event = CloudEvent.create(attrs(datacontenttype="application/json"), data)
    assert event.json_data() == {"k": "\ud800"}
    assert decode_request(*encode_structured(event))[0].data == data
