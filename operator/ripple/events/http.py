"""The CloudEvents HTTP protocol binding: binary, structured and batched modes, both directions.

The mode is chosen from the Content-Type, compared case-insensitively as the binding requires:
``application/cloudevents-batch+json`` is a batch, any other ``application/cloudevents+<format>`` is
structured (only ``json`` is supported, others are :class:`UnsupportedFormat`), and everything else is
binary mode with the context in ``ce-`` headers.

Header values are percent-decoded leniently, for interoperability with the Go and JavaScript CloudEvents SDKs,
which send values as they are instead of percent-encoding them: a valid ``%XX`` escape is decoded, but a ``%``
that does not start one (``100%``, ``%zz``) is kept as the literal character instead of being refused. The
bytes must still be UTF-8 once decoded. Ripple itself always percent-encodes what it sends.

JSON bodies (structured and batch) and JSON data in binary mode are refused when they nest deeper than
:data:`~ripple.events.model.MAX_JSON_DEPTH`, checked before anything is parsed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from ripple.events.model import (
    MAX_JSON_DEPTH,
    NOT_JSON,
    SPEC_VERSION,
    AttributeValue,
    CloudEvent,
    EventError,
    attribute_text,
    check_header_safe,
    dumps_compact,
    is_json_media_type,
    json_too_deep,
    loads_strict,
    try_json,
)

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
_HEADER_PREFIX = "ce-"
# The binding says: percent-encode space, double quote, percent and anything outside printable ASCII.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


_NEEDS_ENCODING = re.compile('[^!#-$&-~]')
"""What :func:`percent_encode` changes: anything but printable ASCII, space, ``"`` and ``%``."""
_HEX_PAIR = re.compile(rb"%([0-9A-Fa-f]{2})")
# Surrogate escapes (\uD800-\uDFFF) in JSON text: only then can decoded JSON hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class UnsupportedFormat(Exception):
    """A structured-mode event format other than JSON (answered with 415)."""


class BatchTooLarge(Exception):
    """A batch holds more events than the receiver takes (the ingress answers 413); nothing of it is used."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"the batch holds {count} events, over the limit of {limit} events per request")
        self.count = count
        self.limit = limit


def media_type(content_type: str | None) -> str:
    """The lower-cased media type without parameters: ``Application/JSON; charset=x`` → ``application/json``."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def decode_request(headers: Mapping[str, str] | Iterable[tuple[str, str]], body: bytes, *,
                   max_batch: int | None = None) -> list[CloudEvent]:
    """Read every event of one HTTP request; raise :class:`EventError` or :class:`UnsupportedFormat`, or
    :class:`BatchTooLarge` for a batch of more than ``max_batch`` events (counted before any is validated).

    A batch is validated whole: one bad event refuses the request before anything is stored.
    """
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    content_type = next((v for k, v in pairs if k.lower() == "content-type"), None)
    kind = media_type(content_type)
    if kind == BATCH_CONTENT_TYPE:
        return _decode_batch(body, max_batch)
    if kind.startswith("application/cloudevents+") or kind == "application/cloudevents":
        if kind != STRUCTURED_CONTENT_TYPE:
            raise UnsupportedFormat(f"unsupported structured event format {kind!r}: only {STRUCTURED_CONTENT_TYPE}")
        return [_structured_event(_parse_json(body), where="")]
    if kind.startswith("application/cloudevents-batch"):
        raise UnsupportedFormat(f"unsupported batch format {kind!r}: only {BATCH_CONTENT_TYPE}")
    return [_decode_binary(pairs, content_type, body)]


def carries_cloudevents(headers: Mapping[str, str]) -> bool:
    """Whether an HTTP message says it carries CloudEvents: ``ce-`` headers, or a CloudEvents media type."""
    kind = media_type(next((v for k, v in headers.items() if k.lower() == "content-type"), None))
    return kind.startswith("application/cloudevents") or any(k.lower().startswith(_HEADER_PREFIX) for k in headers)


def decode_message(headers: Mapping[str, str], body: bytes) -> CloudEvent | None:
    """Read a single event from a response or request, or ``None`` when the message carries none.

    Used for replies: a 200 whose body is not a CloudEvent is not an error, it is simply not a reply.
    """
    if not carries_cloudevents(headers):
        return None
    events = decode_request(headers, body)
    return events[0] if len(events) == 1 else None


def _parse_json(body: bytes) -> Any:
    """Parse a JSON body strictly: depth-bounded, no ``NaN``/``Infinity``, no number that overflows."""
    if json_too_deep(body):
        raise EventError(f"body is not accepted: JSON nesting deeper than {MAX_JSON_DEPTH} levels")
    try:
        return loads_strict(body)
    except RecursionError:  # json_too_deep should have caught it: never let it out as a 500
        raise EventError(f"body is not accepted: JSON nesting deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise EventError(f"body is not valid JSON: {exc}") from None


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = exc.object[exc.start] if isinstance(exc.object, str) else "?"
        raise EventError(f"{what} contains a lone surrogate (U+{ord(char):04X}), which UTF-8 cannot carry") from None


def _json_utf8(value: Any, what: str) -> bytes:
    try:
        return dumps_compact(value)
    except UnicodeEncodeError as exc:
        char = exc.object[exc.start] if isinstance(exc.object, str) else "?"
        raise EventError(f"{what} contains a lone surrogate (U+{ord(char):04X}), which UTF-8 cannot carry") from None


def _decode_batch(body: bytes, max_batch: int | None) -> list[CloudEvent]:
    doc = _parse_json(body)
    if not isinstance(doc, list):
        raise EventError("a batch must be a JSON array of events")
    if max_batch is not None and len(doc) > max_batch:
        raise BatchTooLarge(len(doc), max_batch)
    events = [_structured_event(item, where=f"event[{i}]: ") for i, item in enumerate(doc)]
    versions = {e.attributes["specversion"] for e in events}
    if len(versions) > 1:
        raise EventError(f"a batch must use one specversion, found {sorted(map(str, versions))}")
    return events


def _structured_event(doc: Any, where: str) -> CloudEvent:
    if not isinstance(doc, dict):
        raise EventError(f"{where}a structured event must be a JSON object")
    attrs = {k: v for k, v in doc.items() if k not in ("data", "data_base64")}
    if "data" in doc and "data_base64" in doc:
        raise EventError(f"{where}'data' and 'data_base64' must not both be present")
    data: bytes | None = None
    if doc.get("data_base64") is not None:
        encoded = doc["data_base64"]
        if not isinstance(encoded, str):
            raise EventError(f"{where}'data_base64' must be a string")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise EventError(f"{where}'data_base64' is not valid base64") from None
    elif doc.get("data") is not None:
        value = doc["data"]
        content_type = attrs.get("datacontenttype")
        if content_type is not None and not isinstance(content_type, str):
            raise EventError(f"{where}attribute 'datacontenttype' must be a string")
        if content_type is None:
            attrs["datacontenttype"] = "application/json"  # the JSON format's implied type, made explicit
        if isinstance(value, str) and not is_json_media_type(attrs["datacontenttype"]):
            data = _utf8(value, f"{where}'data'")
        else:
            data = _json_utf8(value, f"{where}'data'")
    try:
        return CloudEvent.create(attrs, data)
    except EventError as exc:
        raise EventError(f"{where}{exc}") from None


def _decode_binary(pairs: list[tuple[str, str]], content_type: str | None, body: bytes) -> CloudEvent:
    attrs: dict[str, AttributeValue] = {}
    for key, value in pairs:
        lower = key.lower()
        if not lower.startswith(_HEADER_PREFIX):
            continue
        name = lower[len(_HEADER_PREFIX) :]
        if name == "datacontenttype":
            raise EventError("header 'ce-datacontenttype' is not allowed in binary mode: use Content-Type")
        if name in attrs:
            raise EventError(f"header 'ce-{name}' appears more than once")
        attrs[name] = percent_decode(value, name)
    if not attrs:
        raise EventError(
            "not a CloudEvent: no ce- headers (binary mode) and Content-Type is not "
            f"{STRUCTURED_CONTENT_TYPE} or {BATCH_CONTENT_TYPE}"
        )
    if content_type:
        check_header_safe(content_type, "header 'Content-Type'")
        attrs["datacontenttype"] = content_type
    event = CloudEvent.create(attrs, body if body else None)
    # Filters decode JSON data later: refuse now what no decoder could read without recursing too deep.
    if body and is_json_media_type(event.datacontenttype) and json_too_deep(body):
        raise EventError(f"data is not accepted: JSON nesting deeper than {MAX_JSON_DEPTH} levels")
    return event


def percent_decode(value: str, name: str) -> str:
    """Decode a ``ce-`` header value; invalid UTF-8 (before or after decoding) is an :class:`EventError`.

    Lenient: a ``%`` that does not start a ``%XX`` escape is kept as it is (see the module's docstring).
    aiohttp hands over raw header bytes that are not UTF-8 as surrogate escapes; they are refused here too.
    """
    try:
        encoded = value.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no byte stands for: not from the wire
        raise EventError(f"header 'ce-{name}' is not valid UTF-8") from None
    if "%" not in value:
        if value.isascii():
            return value  # aiohttp hands over non-UTF-8 bytes as surrogate escapes, which are not ASCII
        try:
            return encoded.decode("utf-8")
        except UnicodeDecodeError:
            raise EventError(f"header 'ce-{name}' is not valid UTF-8") from None
    raw = _HEX_PAIR.sub(lambda match: bytes((int(match.group(1), 16),)), encoded)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EventError(f"header 'ce-{name}' is not valid UTF-8 once percent-decoded") from None


def percent_encode(value: str) -> str:
    if _NEEDS_ENCODING.search(value) is None:
        return value  # the usual case, found with one scan instead of quote's per-character work
    return quote(value, safe=_HEADER_SAFE)


def encode_binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Headers and body of the event in binary mode, or in structured mode when its ``datacontenttype`` is a
    CloudEvents media type: as a binary Content-Type it would make the receiver read the data as a structured
    event or a batch (see :func:`carries_cloudevents`) instead of as this event's data."""
    if media_type(event.datacontenttype).startswith("application/cloudevents"):
        return encode_structured(event)
    headers: dict[str, str] = {}
    for name, value in event.attributes.items():
        if name == "datacontenttype":
            headers["Content-Type"] = str(value)
        else:
            headers[_HEADER_PREFIX + name] = percent_encode(attribute_text(value))
    return headers, event.data or b""


def structured_document(event: CloudEvent) -> dict[str, Any]:
    """The event as a JSON object: ``data`` inline when it reads back as the same bytes' meaning (valid JSON of a
    JSON type, or text of a non-JSON text type), else ``data_base64``."""
    doc: dict[str, Any] = dict(event.attributes)
    if event.data is None:
        return doc
    content_type = event.datacontenttype
    inline: Any = _UNSET
    if content_type is None or is_json_media_type(content_type):
        # Inline only what reads back the same: not JSON null (it would read as no data), nothing a receiver
        # would refuse (a lone surrogate; nesting too deep once inside an event object inside a batch array).
        value = NOT_JSON if json_too_deep(event.data, _INLINE_DEPTH) else try_json(event.data)
        if value is not NOT_JSON and value is not None and not _holds_lone_surrogate(event.data, value):
            inline = value
    elif content_type.lower().startswith("text/"):
        try:
            inline = event.data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if inline is _UNSET:
        doc["data_base64"] = base64.b64encode(event.data).decode("ascii")
    else:
        doc["data"] = inline
    return doc


_UNSET = object()
_INLINE_DEPTH = MAX_JSON_DEPTH - 2
"""Deepest JSON data sent inline: the event's object and a batch's array are two more levels."""


def _holds_lone_surrogate(text: bytes, value: Any) -> bool:
    """Whether decoded JSON holds a lone surrogate (escaped as ``\\uD800`` in its text), which UTF-8 cannot
    carry: such data goes as ``data_base64``, byte-exact, instead of inline."""
    if json.detect_encoding(text).startswith("utf-8") and not _SURROGATE_ESCAPE.search(text):
        return False  # the quick answer, for the usual encoding
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def encode_structured(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Headers and body of the event in structured JSON mode."""
    body = dumps_compact(structured_document(event))
    return {"Content-Type": STRUCTURED_CONTENT_TYPE + "; charset=utf-8"}, body


def encode_batch(events: Iterable[CloudEvent]) -> tuple[dict[str, str], bytes]:
    body = dumps_compact([structured_document(e) for e in events])
    return {"Content-Type": BATCH_CONTENT_TYPE + "; charset=utf-8"}, body


__all__ = [
    "BATCH_CONTENT_TYPE",
    "MAX_JSON_DEPTH",
    "SPEC_VERSION",
    "STRUCTURED_CONTENT_TYPE",
    "BatchTooLarge",
    "UnsupportedFormat",
    "carries_cloudevents",
    "decode_message",
    "decode_request",
    "encode_batch",
    "encode_binary",
    "encode_structured",
    "media_type",
    "percent_decode",
    "percent_encode",
    "structured_document",
]
