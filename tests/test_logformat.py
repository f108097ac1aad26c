"""JSON log lines: one object per line with the structured fields a record carries, and trace ids read from W3C
``traceparent`` values."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from ripple.logformat import FIELDS, MAX_MESSAGE, JsonFormatter, fields, trace_id

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def record(message: str, extra: dict | None = None, exc_info=None) -> logging.LogRecord:  # type: ignore[no-untyped-def]
    made = logging.LogRecord("ripple.delivery", logging.INFO, __file__, 1, message, None, exc_info)
    for key, value in (extra or {}).items():
        setattr(made, key, value)
    return made


def test_a_record_is_one_object_with_its_fields_in_order():
    extra = fields(trigger="orders", namespace="shop", event_id="e-1", attempt=2, outcome="retry", status=503,
                   trace_id=TRACE, error=None)
    line = JsonFormatter("dispatcher").format(record("orders id=e-1 status=503", extra))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "info" and parsed["component"] == "dispatcher" and parsed["logger"] == "ripple.delivery"
    assert parsed["message"] == "orders id=e-1 status=503"
    assert parsed["time"].endswith("+00:00")
    assert [k for k in parsed if k in FIELDS] == ["namespace", "trigger", "event_id", "attempt", "outcome", "status",
                                                 "trace_id"]  # None left out, FIELDS order
    assert parsed["attempt"] == 2 and parsed["status"] == 503


def test_unknown_fields_are_refused_at_the_call():
    with pytest.raises(ValueError, match="eventid"):
        fields(eventid="x")


def test_a_long_message_and_an_exception_stay_one_bounded_line():
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        info = sys.exc_info()
    parsed = json.loads(JsonFormatter("ingress").format(record("x" * (MAX_MESSAGE + 100), exc_info=info)))
    assert len(parsed["message"]) == MAX_MESSAGE
    assert "RuntimeError: boom" in parsed["exception"]


def test_a_record_without_fields_and_with_text_that_needs_escaping():
    parsed = json.loads(JsonFormatter("dev").format(record('quote " newline \n ünïcode')))
    assert parsed["message"] == 'quote " newline \n ünïcode'
    assert not set(parsed) & set(FIELDS)


@pytest.mark.parametrize(("value", "expected"), [
    (f"00-{TRACE}-00f067aa0ba902b7-01", TRACE),
    (f"00-{TRACE.upper()}-00f067aa0ba902b7-01", TRACE),
    ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", None),  # the all-zero trace id is invalid
    ("00-xyz-00f067aa0ba902b7-01", None),
    ("00-" + "g" * 32 + "-00f067aa0ba902b7-01", None),
    ("", None),
    (None, None),
    (42, None),
])
def test_trace_id_of_a_traceparent(value: object, expected: str | None):
    assert trace_id(value) == expected
