"""CloudEvents v1.0: the event model, strict validation and the HTTP protocol binding."""

from ripple.events.http import (
    BATCH_CONTENT_TYPE,
    STRUCTURED_CONTENT_TYPE,
    UnsupportedFormat,
    decode_request,
    encode_binary,
    encode_structured,
)
from ripple.events.model import (
    ATTRIBUTE_LIMITS,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    MAX_DATACONTENTTYPE_BYTES,
    MAX_DATASCHEMA_BYTES,
    MAX_EXTENSION_BYTES,
    MAX_ID_BYTES,
    MAX_JSON_DEPTH,
    MAX_NAME_LENGTH,
    MAX_SOURCE_BYTES,
    MAX_SUBJECT_BYTES,
    MAX_TYPE_BYTES,
    CloudEvent,
    EventError,
)

__all__ = [
    "ATTRIBUTE_LIMITS",
    "BATCH_CONTENT_TYPE",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTES_BYTES",
    "MAX_DATACONTENTTYPE_BYTES",
    "MAX_DATASCHEMA_BYTES",
    "MAX_EXTENSION_BYTES",
    "MAX_ID_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_NAME_LENGTH",
    "MAX_SOURCE_BYTES",
    "MAX_SUBJECT_BYTES",
    "MAX_TYPE_BYTES",
    "STRUCTURED_CONTENT_TYPE",
    "CloudEvent",
    "EventError",
    "UnsupportedFormat",
    "decode_request",
    "encode_binary",
    "encode_structured",
]
