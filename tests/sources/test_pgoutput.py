"""pgoutput decoding on its own: malformed messages are refused by name, and text values typed as documented."""

from __future__ import annotations

import struct

import pytest

from ripple.sources.pgoutput import DecodeError, column_value, decode, format_lsn, parse_lsn


def test_lsns_round_trip():
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    assert parse_lsn("0/10") == 16


@pytest.mark.parametrize("payload", [b"", b"B\x00", b"I" + struct.pack("!I", 99) + b"N"])
def test_malformed_messages_are_refused(payload: bytes):
    with pytest.raises(DecodeError):
        decode(payload, {})


@pytest.mark.parametrize(("oid", "text", "value"), [
    (1184, "2024-06-13 12:00:00+00", "2024-06-13T12:00:00+00:00"),
    (1184, "2024-06-13 12:00:00.25+05:30", "2024-06-13T12:00:00.25+05:30"),
    (1184, "infinity", "infinity"),
    (700, "Infinity", "Infinity"),
    (1700, "1e+30", "1e+30"),
    (1007, "{1,2,3}", "{1,2,3}"),
])
def test_values_by_type(oid: int, text: str, value: object):
    assert column_value(oid, text) == value
