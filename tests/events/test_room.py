"""The room kept for Ripple's own extensions: an event the broker accepts can always be delivered and
dead-lettered to a receiver that checks the same limits."""

from __future__ import annotations

import pytest

from ripple.dispatch.client import DeliveryResult
from ripple.dispatch.dead_letter import dead_letter_event
from ripple.events.extensions import (
    MAX_PRODUCER_ATTRIBUTES,
    MAX_PRODUCER_ATTRIBUTES_BYTES,
    RESERVED_ATTRIBUTES,
    check_room,
    stamp_arrival,
)
from ripple.events.http import decode_request, encode_binary, encode_structured
from ripple.events.model import MAX_ATTRIBUTES, MAX_EXTENSION_BYTES, CloudEvent, EventError, attribute_text

REQUIRED = {"specversion": "1.0", "id": "i" * 256, "source": "/s", "type": "t" * 256}


def with_extensions(count: int, size: int) -> CloudEvent:
    return CloudEvent.create({**REQUIRED, **{f"x{i}": "v" * size for i in range(count)}})


def largest_accepted() -> CloudEvent:
    """As many attributes, and as many bytes, as a producer may send."""
    count = MAX_PRODUCER_ATTRIBUTES - len(REQUIRED)
    fixed = sum(len(v) for v in REQUIRED.values())
    size = min(MAX_EXTENSION_BYTES, (MAX_PRODUCER_ATTRIBUTES_BYTES - fixed) // count)
    return with_extensions(count, size)


def test_an_event_over_the_producer_share_is_refused_naming_why():
    check_room(largest_accepted())
    with pytest.raises(EventError, match=f"over the limit of {MAX_PRODUCER_ATTRIBUTES} "):
        stamp_arrival(with_extensions(MAX_PRODUCER_ATTRIBUTES - len(REQUIRED) + 1, 1))
    with pytest.raises(EventError, match=f"over the limit of {MAX_PRODUCER_ATTRIBUTES_BYTES} "):
        stamp_arrival(with_extensions(6, 1000))
    assert MAX_PRODUCER_ATTRIBUTES + RESERVED_ATTRIBUTES == MAX_ATTRIBUTES


@pytest.mark.parametrize("encode", [encode_binary, encode_structured])
def test_the_largest_accepted_event_still_reads_back_as_a_dead_letter(encode):
    stored = stamp_arrival(largest_accepted())
    failure = DeliveryResult(503, body=b"\xff" * 4096, error="x" * 5000)
    letter = dead_letter_event(stored, failure, destination="http://sink/" + "p" * 5000,
                               trigger="n" * 63 + "/" + "t" * 253, reason="r\n" * 500)
    headers, body = encode(letter)
    (received,) = decode_request(headers, body)  # the limits every Ripple receiver checks
    assert {n: attribute_text(v) for n, v in received.attributes.items()} == {
        n: attribute_text(v) for n, v in letter.attributes.items()
    }
