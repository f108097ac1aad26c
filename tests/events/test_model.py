"""The CloudEvent value: every CloudEvents 1.0 rule it enforces, its storage form, decoded data and extensions."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ripple.events.extensions import ARRIVAL_TIME, DEFAULT_HOPS, HOPS, age_seconds, hops_of, stamp_arrival
from ripple.events.model import (
    INT32_MAX,
    INT32_MIN,
    CloudEvent,
    EventError,
    attribute_text,
    check_time,
    is_json_media_type,
)

BASE = {"specversion": "1.0", "id": "order-1", "source": "/shop/orders", "type": "com.example.order.placed"}


def attrs(**extra: Any) -> dict[str, Any]:
    return {**BASE, **extra}


def without(name: str) -> dict[str, Any]:
    return {key: value for key, value in BASE.items() if key != name}


# --- required attributes ----------------------------------------------------------------------------------


def test_a_minimal_event_has_the_four_required_attributes_and_no_data() -> None:
    event = CloudEvent.create(BASE)

    assert dict(event.attributes) == BASE
    assert event.data is None
    assert (event.id, event.source, event.type) == ("order-1", "/shop/orders", "com.example.order.placed")
    assert event.datacontenttype is None


@pytest.mark.parametrize("name", ["id", "source", "specversion", "type"])
def test_each_required_attribute_must_be_present(name: str) -> None:
    with pytest.raises(EventError, match=f"missing required attribute '{name}'"):
        CloudEvent.create(without(name))


@pytest.mark.parametrize("name", ["id", "source", "specversion", "type"])
def test_a_required_attribute_given_as_null_counts_as_missing(name: str) -> None:
    with pytest.raises(EventError, match=f"missing required attribute '{name}'"):
        CloudEvent.create({**BASE, name: None})


@pytest.mark.parametrize("name", ["id", "source", "specversion", "type"])
@pytest.mark.parametrize("value", [1, True, 1.5, ["x"], {"x": 1}, b"x"])
def test_each_required_attribute_must_be_a_string(name: str, value: Any) -> None:
    with pytest.raises(EventError, match=f"attribute '{name}' must be a string"):
        CloudEvent.create({**BASE, name: value})


@pytest.mark.parametrize("name", ["id", "source", "specversion", "type"])
def test_each_required_attribute_must_not_be_empty(name: str) -> None:
    with pytest.raises(EventError, match=f"attribute '{name}' must not be empty"):
        CloudEvent.create({**BASE, name: ""})


@pytest.mark.parametrize("version", ["0.3", "1.0.2", "1", "1.0 ", "v1.0", "2.0"])
def test_only_specversion_1_0_is_accepted(version: str) -> None:
    with pytest.raises(EventError, match=r"unsupported specversion .*only '1\.0'"):
        CloudEvent.create(attrs(specversion=version))


# --- attribute names and extension values -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["tenant", "x", "abc123", "123", "traceparent", "a" * 40])
def test_attribute_names_of_lowercase_letters_and_digits_are_accepted(name: str) -> None:
    assert CloudEvent.create(attrs(**{name: "v"}))[name] == "v"


@pytest.mark.parametrize("name", ["Tenant", "TENANT", "my-ext", "my_ext", "my.ext", "my ext", "ümlaut", "ext\n", ""])
def test_attribute_names_outside_a_z_0_9_are_refused(name: str) -> None:
    with pytest.raises(EventError, match=r"attribute name .* is invalid"):
        CloudEvent.create({**BASE, name: "v"})


@pytest.mark.parametrize("value", ["text", "", "ünïcödé ✓", 0, 42, -7, INT32_MIN, INT32_MAX, True, False], ids=repr)
def test_extension_values_may_be_strings_32_bit_integers_or_booleans(value: Any) -> None:
    event = CloudEvent.create(attrs(ext=value))

    assert event["ext"] == value
    assert type(event["ext"]) is type(value)


@pytest.mark.parametrize("value", [INT32_MAX + 1, INT32_MIN - 1, 2**63])
def test_integers_outside_the_32_bit_range_are_refused(value: int) -> None:
    with pytest.raises(EventError, match="attribute 'ext' is outside the 32-bit integer range"):
        CloudEvent.create(attrs(ext=value))


@pytest.mark.parametrize("value", [1.5, 0.0, ["a"], {"a": 1}, b"bytes", (1, 2), datetime(2024, 1, 1)], ids=repr)
def test_other_extension_value_types_are_refused(value: Any) -> None:
    with pytest.raises(EventError, match="attribute 'ext' must be a string, integer or boolean"):
        CloudEvent.create(attrs(ext=value))


def test_null_attributes_are_dropped_rather_than_stored() -> None:
    event = CloudEvent.create(attrs(subject=None, time=None, tenant=None, region="eu"))

    assert "subject" not in event
    assert "time" not in event
    assert "tenant" not in event
    assert dict(event.attributes) == {**BASE, "region": "eu"}


# --- optional attributes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["subject", "datacontenttype", "dataschema", "time"])
def test_optional_attributes_must_not_be_empty_when_present(name: str) -> None:
    with pytest.raises(EventError, match=f"attribute '{name}' must not be empty when present"):
        CloudEvent.create(attrs(**{name: ""}))


@pytest.mark.parametrize("name", ["subject", "datacontenttype", "dataschema", "time"])
@pytest.mark.parametrize("value", [5, True])
def test_optional_attributes_must_be_strings(name: str, value: Any) -> None:
    with pytest.raises(EventError, match=f"attribute '{name}' must be a string"):
        CloudEvent.create(attrs(**{name: value}))


def test_optional_attributes_are_kept_as_given() -> None:
    event = CloudEvent.create(
        attrs(
            subject="orders/42",
            datacontenttype="application/json",
            dataschema="https://schemas.example/order.json",
            time="2024-05-01T10:00:00Z",
        ),
        b"{}",
    )

    assert event["subject"] == "orders/42"
    assert event.datacontenttype == "application/json"
    assert event["dataschema"] == "https://schemas.example/order.json"
    assert event["time"] == "2024-05-01T10:00:00Z"


# --- time: RFC 3339 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T10:00:00Z",
        "2024-05-01t10:00:00z",  # lowercase t and z are allowed by RFC 3339
        "2024-05-01T10:00:00+02:00",
        "2024-05-01T10:00:00-08:00",
        "2024-05-01T10:00:00+05:30",
        "2024-05-01T10:00:00+00:00",
        "2024-05-01T10:00:00-00:00",
        "2024-05-01T10:00:00.5Z",
        "2024-05-01T10:00:00.123Z",
        "2024-05-01T10:00:00.123456789+01:00",
        "2016-12-31T23:59:60Z",  # a leap second
        "2024-02-29T00:00:00Z",  # a leap day
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ],
)
def test_rfc3339_timestamps_are_accepted(value: str) -> None:
    check_time(value)
    assert CloudEvent.create(attrs(time=value))["time"] == value


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01",  # a date alone
        "2024-05-01T10:00:00",  # no offset
        "2024-05-01 10:00:00Z",  # space instead of T
        "2024-05-01T10:00Z",  # no seconds
        "2024-5-1T10:00:00Z",
        "24-05-01T10:00:00Z",
        "2024-05-01T10:00:00.Z",  # a dot without digits
        "2024-05-01T10:00:00,5Z",
        "2024-05-01T10:00:00+0200",  # offset without colon
        "2024-05-01T10:00:00+02",
        "2024-05-01T10:00:00 Z",
        "2024-05-01T10:00:00Zjunk",
        " 2024-05-01T10:00:00Z",
        "2024-05-01T10:00:00Z\n",
        "1714557600",
        "yesterday",
    ],
)
def test_malformed_timestamps_are_refused(value: str) -> None:
    # A trailing newline is refused earlier, as a control character: no attribute may hold one.
    with pytest.raises(EventError, match=r"attribute 'time' (is not an RFC 3339 timestamp|contains a control char)"):
        CloudEvent.create(attrs(time=value))


@pytest.mark.parametrize(
    "value",
    [
        "2023-02-29T00:00:00Z",  # not a leap year
        "2024-04-31T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-00-10T00:00:00Z",
        "2024-01-00T00:00:00Z",
        "2024-01-32T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T23:60:00Z",
        "2024-01-01T23:59:61Z",
        "2024-01-01T23:59:99Z",
        "0000-01-01T00:00:00Z",
    ],
)
def test_timestamps_with_impossible_dates_or_times_are_refused(value: str) -> None:
    with pytest.raises(EventError, match="attribute 'time' is not a valid date-time"):
        CloudEvent.create(attrs(time=value))


@pytest.mark.parametrize(
    "value", ["2024-05-01T10:00:00+24:00", "2024-05-01T10:00:00+02:60", "2024-05-01T10:00:00-99:99"]
)
def test_timestamps_with_impossible_offsets_are_refused(value: str) -> None:
    with pytest.raises(EventError, match="attribute 'time'"):
        CloudEvent.create(attrs(time=value))


@pytest.mark.parametrize("value", ["\uff12\uff10\uff12\uff14-05-01T10:00:00Z", "2024-05-01T\u0661\u0660:00:00Z"])
def test_timestamps_with_non_ascii_digits_are_refused(value: str) -> None:
    with pytest.raises(EventError, match="attribute 'time'"):
        CloudEvent.create(attrs(time=value))


# --- the value ----------------------------------------------------------------------------------------------


def test_an_event_reads_like_a_read_only_mapping_of_its_attributes() -> None:
    event = CloudEvent.create(attrs(tenant="acme", priority=3))

    assert event["tenant"] == "acme"
    assert event.get("priority") == 3
    assert event.get("missing") is None
    assert event.get("missing", "fallback") == "fallback"
    assert "tenant" in event
    assert "missing" not in event
    assert set(event) == {*BASE, "tenant", "priority"}
    with pytest.raises(KeyError):
        event["missing"]


def test_an_event_is_immutable() -> None:
    event = CloudEvent.create(BASE, b"x")

    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = b"y"  # type: ignore[misc]


def test_with_attributes_returns_a_changed_copy_and_none_removes() -> None:
    event = CloudEvent.create(attrs(subject="orders/1", tenant="acme"), b"payload")

    changed = event.with_attributes(subject="orders/2", region="eu", tenant=None)

    assert changed["subject"] == "orders/2"
    assert changed["region"] == "eu"
    assert "tenant" not in changed
    assert changed.data is event.data
    assert event["subject"] == "orders/1" and event["tenant"] == "acme" and "region" not in event


def test_events_with_equal_attributes_and_data_are_equal_even_after_decoding() -> None:
    first = CloudEvent.create(attrs(datacontenttype="application/json"), b'{"a":1}')
    second = CloudEvent.create(attrs(datacontenttype="application/json"), b'{"a":1}')

    first.json_data()

    assert first == second
    assert first != CloudEvent.create(attrs(datacontenttype="application/json"), b'{"a":2}')


@pytest.mark.parametrize(("value", "text"), [(True, "true"), (False, "false"), (0, "0"), (-12, "-12"), ("a b", "a b")])
def test_attribute_text_is_the_canonical_string_form(value: Any, text: str) -> None:
    assert attribute_text(value) == text


# --- storage form -----------------------------------------------------------------------------------------

STORED = [
    CloudEvent.create(BASE),
    CloudEvent.create(attrs(datacontenttype="application/json"), b'{"amount": 12.5,  "items": [1, 2]}\n'),
    CloudEvent.create(attrs(datacontenttype="text/plain; charset=utf-8", subject="über/straße"), "héllo ✓".encode()),
    CloudEvent.create(attrs(datacontenttype="application/octet-stream"), bytes(range(256))),
    CloudEvent.create(attrs(priority=-5, express=True, archived=False, note='say "hi" 100%'), b""),
    CloudEvent.create(attrs(time="2024-05-01t10:00:00.123456789+05:30", dataschema="urn:x"), b"no type given"),
]


@pytest.mark.parametrize("event", STORED, ids=range(len(STORED)))
def test_the_storage_form_round_trips_attributes_types_and_data_bytes_exactly(event: CloudEvent) -> None:
    restored = CloudEvent.from_json_bytes(event.to_json_bytes())

    assert restored == event
    assert dict(restored.attributes) == dict(event.attributes)
    assert [type(v) for v in restored.attributes.values()] == [type(v) for v in event.attributes.values()]
    assert restored.data == event.data
    assert type(restored.data) is type(event.data)


def test_the_storage_form_is_compact_json_with_data_base64() -> None:
    event = CloudEvent.create(attrs(datacontenttype="application/json", city="Zürich"), b'{"a":1}')

    doc = json.loads(event.to_json_bytes())

    assert doc == {**BASE, "datacontenttype": "application/json", "city": "Zürich", "data_base64": "eyJhIjoxfQ=="}
    assert "Zürich".encode() in event.to_json_bytes()  # UTF-8, not \u escapes
    assert b" " not in event.to_json_bytes()


def test_the_storage_form_of_an_event_without_data_has_no_data_member() -> None:
    doc = json.loads(CloudEvent.create(BASE).to_json_bytes())

    assert doc == BASE


# --- decoded data -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "data", "decoded"),
    [
        ("application/json", b'{"amount":12.5,"items":[1,2]}', {"amount": 12.5, "items": [1, 2]}),
        ("Application/JSON; charset=utf-8", b"[1, 2, 3]", [1, 2, 3]),
        ("text/json", b'"just a string"', "just a string"),
        ("application/cloudevents+json", b'{"nested":true}', {"nested": True}),
        ("application/vnd.api+json", b"42", 42),
        ("application/json", b"null", None),
        ("application/json", '{"name":"Zoë"}'.encode(), {"name": "Zoë"}),
        ("application/json", b"not json at all", "not json at all"),  # JSON type, broken JSON: text
        ("application/json", b"\xff\xfe\x00", b"\xff\xfe\x00"),  # not even UTF-8: bytes
        (None, b'{"implied":"json"}', {"implied": "json"}),  # no type: JSON when it parses
        (None, "plain words ✓".encode(), "plain words ✓"),  # else text
        (None, b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n"),  # else bytes
        ("text/plain", b'{"a":1}', '{"a":1}'),  # text types are never parsed as JSON
        ("text/plain; charset=utf-8", "grüße".encode(), "grüße"),
        ("TEXT/CSV", b"a,b\n1,2\n", "a,b\n1,2\n"),
        ("text/plain", b"\xc3\x28", b"\xc3\x28"),  # invalid UTF-8 in a text type: bytes
        ("application/octet-stream", b"\x00\x01\x02", b"\x00\x01\x02"),
        ("application/xml", b"<order/>", b"<order/>"),
        ("image/png", b"\x89PNG", b"\x89PNG"),
        ("application/jsonlines", b'{"a":1}', b'{"a":1}'),
    ],
)
def test_json_data_decodes_json_parses_text_and_leaves_binary_as_bytes(
    content_type: str | None, data: bytes, decoded: Any
) -> None:
    event = CloudEvent.create(attrs(datacontenttype=content_type), data)

    assert event.json_data() == decoded
    assert type(event.json_data()) is type(decoded)
    assert event.as_mapping()["data"] == decoded


def test_json_data_of_an_event_without_data_is_none() -> None:
    event = CloudEvent.create(attrs(datacontenttype="application/json"))

    assert event.json_data() is None


def test_as_mapping_is_the_cloudevents_json_form_filters_see() -> None:
    event = CloudEvent.create(
        attrs(datacontenttype="application/json", tenant="acme", priority=5, express=True), b'{"amount":120}'
    )

    assert event.as_mapping() == {
        **BASE,
        "datacontenttype": "application/json",
        "tenant": "acme",
        "priority": 5,
        "express": True,
        "data": {"amount": 120},
    }


def test_as_mapping_has_no_data_key_without_data() -> None:
    assert CloudEvent.create(attrs(tenant="acme")).as_mapping() == {**BASE, "tenant": "acme"}


@pytest.mark.parametrize(
    ("content_type", "is_json"),
    [
        ("application/json", True),
        ("APPLICATION/JSON", True),
        ("application/json; charset=utf-8", True),
        ("  application/json ; charset=utf-8", True),
        ("text/json", True),
        ("application/cloudevents+json", True),
        ("application/ld+json", True),
        ("application/merge-patch+json; charset=utf-8", True),
        ("application/jsonl", False),
        ("application/json-seq", False),
        ("application/xml", False),
        ("text/plain", False),
        ("json", False),
        ("", False),
        (None, False),
    ],
)
def test_json_media_types(content_type: str | None, is_json: bool) -> None:
    assert is_json_media_type(content_type) is is_json


# --- extensions: arrival time and hops --------------------------------------------------------------------

MILLISECOND_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\Z")


def test_stamp_arrival_sets_an_rfc3339_utc_arrival_time_and_the_default_hops() -> None:
    event = CloudEvent.create(attrs(datacontenttype="text/plain"), b"hi")
    before = datetime.now(UTC)

    stamped = stamp_arrival(event)

    after = datetime.now(UTC)
    arrival = stamped[ARRIVAL_TIME]
    assert isinstance(arrival, str)
    assert MILLISECOND_UTC.match(arrival)
    check_time(arrival)
    parsed = datetime.fromisoformat(arrival.replace("Z", "+00:00"))
    assert before - timedelta(milliseconds=1) <= parsed <= after
    assert stamped[HOPS] == DEFAULT_HOPS == 255
    assert stamped.data is event.data
    assert ARRIVAL_TIME not in event and HOPS not in event  # the original is unchanged


def test_stamp_arrival_replaces_an_earlier_arrival_time() -> None:
    event = CloudEvent.create(attrs(**{ARRIVAL_TIME: "2000-01-01T00:00:00Z"}))

    assert stamp_arrival(event)[ARRIVAL_TIME] != "2000-01-01T00:00:00Z"


@pytest.mark.parametrize(("hops", "kept"), [(1, 1), (3, 3), (254, 254), (255, 255), (256, 255), (100_000, 255)])
def test_stamp_arrival_keeps_fewer_hops_and_clamps_more_to_the_default(hops: int, kept: int) -> None:
    assert stamp_arrival(CloudEvent.create(attrs(ripplehops=hops)))[HOPS] == kept


def test_stamp_arrival_reads_hops_that_arrived_as_text_in_binary_mode() -> None:
    stamped = stamp_arrival(CloudEvent.create(attrs(ripplehops="7")))

    assert stamped[HOPS] == 7


def test_stamp_arrival_uses_explicit_hops_over_the_event_s_own() -> None:
    event = CloudEvent.create(attrs(ripplehops=9))

    assert stamp_arrival(event, hops=4)[HOPS] == 4
    assert stamp_arrival(event, hops=1000)[HOPS] == 255


@pytest.mark.parametrize("hops", [0, -1, INT32_MIN, "0", "-3"])
def test_stamp_arrival_refuses_an_event_with_no_hops_left(hops: int | str) -> None:
    with pytest.raises(EventError, match=r"ripplehops.*no hops left"):
        stamp_arrival(CloudEvent.create(attrs(ripplehops=hops)))


@pytest.mark.parametrize("hops", [0, -2])
def test_stamp_arrival_refuses_an_explicit_budget_of_zero_or_less(hops: int) -> None:
    with pytest.raises(EventError, match="ripplehops"):
        stamp_arrival(CloudEvent.create(BASE), hops=hops)


@pytest.mark.parametrize(
    "hops",
    [
        "abc",
        "1.5",
        "",
        "ten",
        True,
        False,
        pytest.param(
            "1_0",
        ),
    ],
    ids=repr,
)
def test_stamp_arrival_refuses_hops_that_are_not_an_integer(hops: Any) -> None:
    with pytest.raises(EventError, match="'ripplehops' must be an integer"):
        stamp_arrival(CloudEvent.create(attrs(ripplehops=hops)))


def test_hops_of_an_event_without_the_extension_is_the_default() -> None:
    assert hops_of(CloudEvent.create(BASE)) == DEFAULT_HOPS


def test_age_seconds_is_none_before_arrival() -> None:
    assert age_seconds(CloudEvent.create(BASE)) is None


def test_age_seconds_of_a_fresh_event_is_small_and_not_negative() -> None:
    age = age_seconds(stamp_arrival(CloudEvent.create(BASE)))

    assert age is not None
    assert 0 <= age < 5


@pytest.mark.parametrize(
    "render",
    [
        lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        lambda t: t.strftime("%Y-%m-%dt%H:%M:%Sz"),
        lambda t: t.astimezone(UTC).isoformat(),
        lambda t: t.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(),
    ],
    ids=["Z", "lowercase", "+00:00", "+05:30"],
)
def test_age_seconds_measures_from_the_arrival_time_in_any_offset(render: Any) -> None:
    arrived = datetime.now(UTC) - timedelta(seconds=90)
    event = CloudEvent.create(attrs(**{ARRIVAL_TIME: render(arrived)}))

    age = age_seconds(event)

    assert age is not None
    assert 89 <= age < 95


@pytest.mark.parametrize("arrival", ["not a time", "2024-13-01T00:00:00Z", 1714557600, True])
def test_age_seconds_is_none_for_an_unreadable_arrival_time(arrival: Any) -> None:
    assert age_seconds(CloudEvent.create(attrs(**{ARRIVAL_TIME: arrival}))) is None
