"""Properties of the codec over hostile requests (no server): decoding refuses with :class:`EventError` or
:class:`UnsupportedFormat` and nothing else, and whatever it accepts can be stored, read back, decoded as filters
see it and re-encoded in every mode, and reads back the same from each."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, given, settings

from ripple.events.extensions import stamp_arrival
from ripple.events.http import UnsupportedFormat, decode_request, encode_batch, encode_binary, encode_structured
from ripple.events.model import CloudEvent, EventError, attribute_text, is_json_media_type
from tests.events.strategies import Request, requests

FAST = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no explain phase: it writes patch files
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check_usable(stamped: CloudEvent) -> None:
    """Everything the broker does with an accepted (and stamped) event: none of it may raise."""
    restored = CloudEvent.from_json_bytes(stamped.to_json_bytes())
    assert restored == stamped
    restored.json_data()
    restored.as_mapping()
    encode_binary(restored)
    encode_structured(restored)
    encode_batch([restored])


def same_meaning(event: CloudEvent, other: CloudEvent) -> None:
    expected = {k: attribute_text(v) for k, v in event.attributes.items()}
    if "datacontenttype" not in expected and "datacontenttype" in other:
        expected["datacontenttype"] = "application/json"  # the JSON format's implied type, made explicit
    assert {k: attribute_text(v) for k, v in other.attributes.items()} == expected
    if event.data is not None and is_json_media_type(other.datacontenttype) and other.data != event.data:
        assert other.json_data() == event.json_data()
    else:  # binary mode cannot tell empty data from none
        assert (other.data or None) == (event.data or None)


@FAST
@given(requests())
def test_decoding_refuses_cleanly_or_yields_events_usable_everywhere(request: Request) -> None:
    try:
        events = decode_request(request.server_view(), request.plain)
        stamped = [stamp_arrival(event) for event in events]  # as the ingress does: may refuse too
    except (EventError, UnsupportedFormat):
        return
    for event, stored in zip(events, stamped, strict=True):
        check_usable(stored)
        # What Ripple sends, Ripple reads back the same: binary and structured.
        (binary,) = decode_request(*encode_binary(event))
        same_meaning(event, binary)
        (structured,) = decode_request(*encode_structured(event))
        same_meaning(event, structured)
