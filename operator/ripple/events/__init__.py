"""CloudEvents v1.0: the event model, strict validation and the HTTP protocol binding."""

from ripple.events.http import (
    BATCH_CONTENT_TYPE,
    STRUCTURED_CONTENT_TYPE,
    UnsupportedFormat,
    decode_request,
    encode_binary,
    encode_structured,
)
from ripple.events.model import CloudEvent, EventError

__all__ = [
    "BATCH_CONTENT_TYPE",
    "STRUCTURED_CONTENT_TYPE",
    "CloudEvent",
    "EventError",
    "UnsupportedFormat",
    "decode_request",
    "encode_binary",
    "encode_structured",
]
