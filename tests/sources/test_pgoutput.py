"""pgoutput decoding on its own: malformed messages are refused by name, and text values typed as documented."""

from __future__ import annotations

import json
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


# --- one bad message in the stream ---------------------------------------------------------------------------

def _relation() -> bytes:
    column = b"\x01id\x00" + struct.pack("!Ii", 23, -1)
    return b"R" + struct.pack("!I", 7) + b"public\x00items\x00d" + struct.pack("!H", 1) + column


def _begin(final_lsn: int) -> bytes:
    return b"B" + struct.pack("!Qqi", final_lsn, 0, 42)


def _insert(value: bytes, oid: int = 7) -> bytes:
    return b"I" + struct.pack("!I", oid) + b"N" + struct.pack("!H", 1) + b"t" + struct.pack("!I", len(value)) + value


def _commit(end_lsn: int) -> bytes:
    return b"C" + struct.pack("!BQQq", 0, end_lsn - 1, end_lsn, 0)


async def test_a_message_no_event_can_be_made_of_is_kept_and_the_stream_goes_on():
    from ripple.api.models import DeliverySpec, EventSource
    from ripple.dispatch.client import DeliveryResult
    from ripple.dispatch.policy import DeliveryPolicy
    from ripple.sources.delivery import SourceDelivery
    from ripple.sources.postgres import Transactions

    class Recorder:
        name = "recorder"

        def __init__(self) -> None:
            self.events: list = []

        async def send(self, event):  # type: ignore[no-untyped-def]
            self.events.append(event)
            return DeliveryResult(202)

    letters: list = []

    async def keep(letter):  # type: ignore[no-untyped-def]
        letters.append(letter)
        return True

    source = EventSource.model_validate({
        "apiVersion": "ripple.dev/v1alpha1", "kind": "EventSource", "metadata": {"name": "db"},
        "spec": {"sink": {"uri": "http://unused/"},
                 "postgres": {"connectionSecretRef": {"name": "s", "key": "k"}, "tables": ["public.items"]}}})
    sink = Recorder()
    transactions = Transactions(source, SourceDelivery("default/db", sink, DeliveryPolicy.from_spec(DeliverySpec()),
                                                       keep=keep))
    results = [await transactions.handle(payload, 100 + n) for n, payload in enumerate([
        _relation(), _begin(0x500), _insert(b"not a number"), _insert(b"3", oid=99), _insert(b"4"), _commit(0x510),
    ])]
    assert results == [None, None, None, None, None, 0x510]  # the commit is still confirmed
    assert [json.loads(e.data)["new"] for e in sink.events] == [{"id": 4}]
    assert [e.id for e in sink.events] == ["0/500-2"]
    assert len(letters) == 2 and all(letter.type == "dev.ripple.undecodable" for letter in letters)
