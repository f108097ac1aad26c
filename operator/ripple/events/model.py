"""The CloudEvent value and the rules every event must satisfy before Ripple stores it.

Ripple validates on its own instead of through an SDK so that nothing is invented: an event without an
``id`` or ``time`` is refused or left without one, never given a fresh value behind the producer's back.

Every input is hostile until checked. Beyond the spec's rules, an event must fit the places it travels
through, so the limits below are checked here, in one place, for events the ingress receives and for replies
alike (both go through :func:`check_attributes`):

* an event's ``type`` becomes NATS subject tokens, percent-encoded (up to 3 bytes per byte), and nats-server
  closes the whole connection on a protocol control line over 4096 bytes;
* in binary mode every attribute becomes an HTTP header, percent-encoded (again up to 3 bytes per byte), and
  HTTP servers refuse long header lines (aiohttp: 8190 bytes per line and 128 headers; Node.js: 16 KiB in all);
* ``datacontenttype`` becomes a ``Content-Type`` header as it is, so it must be printable ASCII;
* JSON is parsed by recursive decoders (Python's ``json`` raises :class:`RecursionError` near 1000 levels),
  so JSON nesting is bounded by :data:`MAX_JSON_DEPTH`, checked without recursion.

Sizes are counted in UTF-8 bytes; integers and booleans count as their canonical text.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import accumulate
from typing import Any, Final

import orjson

SPEC_VERSION = "1.0"
REQUIRED_ATTRIBUTES = ("id", "source", "specversion", "type")
# Optional attributes the spec says must be non-empty strings when present.
NON_EMPTY_OPTIONAL = ("datacontenttype", "dataschema", "subject", "time")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# --- limits -----------------------------------------------------------------------------------------------------
MAX_TYPE_BYTES: Final = 256
"""``type``: becomes the subject ``ripple.<ns>.<broker>.e.<type tokens>``; ≤ 768 bytes once percent-encoded,
which keeps the publish control line far below nats-server's 4096-byte limit."""
MAX_ID_BYTES: Final = 256
"""``id``: part of the deduplication key and of every log line about the event."""
MAX_SOURCE_BYTES: Final = 1024
"""``source``: a URI-reference; ≤ 3072 bytes as a percent-encoded ``ce-source`` header."""
MAX_SUBJECT_BYTES: Final = 1024
"""``subject``: ≤ 3072 bytes as a percent-encoded ``ce-subject`` header."""
MAX_DATASCHEMA_BYTES: Final = 1024
"""``dataschema``: a URI; ≤ 3072 bytes as a percent-encoded ``ce-dataschema`` header."""
MAX_DATACONTENTTYPE_BYTES: Final = 256
"""``datacontenttype``: a media type with parameters, sent as the ``Content-Type`` header (printable ASCII)."""
MAX_EXTENSION_BYTES: Final = 1024
"""Any other attribute (extensions, ``time``, ``specversion``): ≤ 3072 bytes as a percent-encoded header."""
MAX_NAME_LENGTH: Final = 64
"""Characters of an attribute name (a-z, 0-9); the spec asks for at most 20, this leaves room."""
MAX_ATTRIBUTES: Final = 64
"""Attributes of one event, required ones included: each is a header in binary mode (aiohttp allows 128)."""
MAX_ATTRIBUTES_BYTES: Final = 8 * 1024
"""The sum of all attribute values: the context travels with every delivery, the data is what may be large."""
MAX_JSON_DEPTH: Final = 256
"""Nesting of JSON arrays and objects: structured and batch bodies, and JSON data; deeper is refused (400)."""
ATTRIBUTE_LIMITS: Final[Mapping[str, int]] = {
    "type": MAX_TYPE_BYTES,
    "id": MAX_ID_BYTES,
    "source": MAX_SOURCE_BYTES,
    "subject": MAX_SUBJECT_BYTES,
    "dataschema": MAX_DATASCHEMA_BYTES,
    "datacontenttype": MAX_DATACONTENTTYPE_BYTES,
}
"""The size limit of each context attribute with one of its own; every other takes :data:`MAX_EXTENSION_BYTES`."""

_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]+\Z", re.ASCII)
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([Zz]|[+-]([0-9]{2}):([0-9]{2}))\Z"
)
RESERVED_NAMES = ("data", "data_base64")
_JSON_MEDIA = re.compile(r"^\s*(application/json|[^;/\s]+/[^;\s]+\+json|text/json)\s*(;|$)", re.IGNORECASE)
_FORBIDDEN = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
"""Characters no string attribute may hold: controls, and lone surrogates (UTF-8 cannot carry them)."""
_NOT_HEADER_SAFE = re.compile("[^\x20-\x7e]")
# A JSON string, escapes included; an unterminated one runs to the end. Possessive, so never backtracking.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.?)*+"?', re.DOTALL)
_NOT_BRACKET = bytes(c for c in range(256) if c not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")
_DEPTH_STEP = [1 if c in b"[{" else -1 if c in b"]}" else 0 for c in range(256)]

AttributeValue = str | int | bool


class EventError(ValueError):
    """An event breaks a rule of the CloudEvents spec; the message names the attribute or rule."""


def is_json_media_type(content_type: str | None) -> bool:
    """True for ``application/json``, ``text/json`` and any ``*/*+json`` type."""
    return content_type is not None and bool(_JSON_MEDIA.match(content_type))


def check_time(value: str) -> None:
    match = _RFC3339.match(value)
    if match is None:
        raise EventError(f"attribute 'time' is not an RFC 3339 timestamp: {value!r}")
    year, month, day, hour, minute, second = map(int, match.group(1, 2, 3, 4, 5, 6))
    try:
        datetime(year, month, day, hour, minute, min(second, 59))  # RFC 3339 allows a leap second
    except ValueError as exc:
        raise EventError(f"attribute 'time' is not a valid date-time: {value!r} ({exc})") from None
    offset_hour, offset_minute = match.group(9), match.group(10)
    if second > 60 or (offset_hour is not None and (int(offset_hour) > 23 or int(offset_minute) > 59)):
        raise EventError(f"attribute 'time' is not a valid date-time: {value!r}")


def _shown(text: str, limit: int = 64) -> str:
    """``text`` quoted for an error message, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _character(char: str) -> str:
    return f"U+{ord(char):04X}"


def check_value(name: str, value: str) -> int:
    """Check one string attribute value: no control characters or lone surrogates, within its size limit.

    Return its size in UTF-8 bytes; raise :class:`EventError` naming the attribute.
    """
    size = len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    limit = ATTRIBUTE_LIMITS.get(name, MAX_EXTENSION_BYTES)
    if size > limit:
        raise EventError(f"attribute '{name}' is {size} bytes long, over the limit of {limit} bytes (UTF-8)")
    if (found := _FORBIDDEN.search(value)) is not None:
        char = found.group()
        kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
        raise EventError(f"attribute '{name}' contains {kind} ({_character(char)})")
    return size


def check_header_safe(value: str, what: str) -> None:
    """Raise :class:`EventError` unless ``value`` is printable ASCII (0x20-0x7E), safe as an HTTP header value.

    ``what`` names the value in the message; a raw byte handed over as a surrogate escape is shown as the byte.
    """
    if value.isascii() and value.isprintable():  # for ASCII text, that is exactly 0x20-0x7E
        return
    found = _NOT_HEADER_SAFE.search(value)
    if found is None:
        return
    char = found.group()
    shown = f"byte 0x{ord(char) - 0xDC00:02X}" if 0xDC80 <= ord(char) <= 0xDCFF else _character(char)
    raise EventError(f"{what} must be printable ASCII (it is the Content-Type of deliveries), found {shown}")


def check_attributes(attributes: Mapping[str, Any]) -> None:
    """Raise :class:`EventError` unless the attributes form a valid CloudEvents 1.0 context within Ripple's limits.

    Every event the ingress takes passes here, so the common case is kept to one pass over the values; the
    precise error is worked out only once something is wrong.
    """
    if len(attributes) > MAX_ATTRIBUTES:
        raise EventError(f"the event has {len(attributes)} attributes, over the limit of {MAX_ATTRIBUTES}")
    for name in REQUIRED_ATTRIBUTES:
        value = attributes.get(name)
        if value is None:
            raise EventError(f"missing required attribute '{name}'")
        if type(value) is not str:
            raise EventError(f"attribute '{name}' must be a string")
        if value == "":
            raise EventError(f"attribute '{name}' must not be empty")
    total = 0
    texts = []
    for name, value in attributes.items():
        if name not in _VALID_NAMES:
            _check_name(name)
        kind = type(value)
        if kind is str:
            size = len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
            if size > _LIMIT(name, MAX_EXTENSION_BYTES):
                raise EventError(f"attribute '{name}' is {size} bytes long, over the limit of "
                                 f"{_LIMIT(name, MAX_EXTENSION_BYTES)} bytes (UTF-8)")
            texts.append(value)
            total += size
        elif kind is bool:
            total += 4 if value else 5
        elif kind is int:
            if not INT32_MIN <= value <= INT32_MAX:
                raise EventError(f"attribute '{name}' is outside the 32-bit integer range")
            total += len(str(value))
        elif isinstance(value, str | int):  # subclasses: judged as what they are
            if isinstance(value, bool):
                total += len(attribute_text(value))
            elif isinstance(value, int):
                if not INT32_MIN <= value <= INT32_MAX:
                    raise EventError(f"attribute '{name}' is outside the 32-bit integer range")
                total += len(attribute_text(value))
            else:
                total += check_value(name, value)
        else:
            raise EventError(f"attribute '{name}' must be a string, integer or boolean")
    joined = "".join(texts)
    # For ASCII text, printable means no control character; only other text needs the pattern.
    if not (joined.isascii() and joined.isprintable()) and _FORBIDDEN.search(joined) is not None:
        for name, value in attributes.items():
            if isinstance(value, str):
                check_value(name, value)  # raises, naming the attribute
    if total > MAX_ATTRIBUTES_BYTES:
        raise EventError(
            f"the attribute values total {total} bytes, over the limit of {MAX_ATTRIBUTES_BYTES} bytes (UTF-8)"
        )
    if attributes["specversion"] != SPEC_VERSION:
        raise EventError(f"unsupported specversion {attributes['specversion']!r}: only '1.0' is accepted")
    for name in NON_EMPTY_OPTIONAL:
        if name in attributes:
            if not isinstance(attributes[name], str):
                raise EventError(f"attribute '{name}' must be a string")
            if attributes[name] == "":
                raise EventError(f"attribute '{name}' must not be empty when present")
    if "datacontenttype" in attributes:
        check_header_safe(attributes["datacontenttype"], "attribute 'datacontenttype'")
    if "time" in attributes:
        check_time(attributes["time"])


_LIMIT = ATTRIBUTE_LIMITS.get
_VALID_NAMES: set[str] = {"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time"}
"""Attribute names already found valid (the spec's, then those seen): skips the pattern for the usual ones."""
_MAX_VALID_NAMES = 4096
"""Names a producer controls: the set stops growing here, and later names are checked each time."""


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH:
        raise EventError(f"attribute name {_shown(str(name))} is longer than {MAX_NAME_LENGTH} characters")
    if not _ATTRIBUTE_NAME.match(name):
        raise EventError(f"attribute name {_shown(name)} is invalid: names use only a-z and 0-9")
    if name in RESERVED_NAMES:
        raise EventError(f"attribute name {name!r} is reserved for the event's data")
    if len(_VALID_NAMES) < _MAX_VALID_NAMES:
        _VALID_NAMES.add(name)


def json_too_deep(document: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays and objects deeper than ``limit``, found without recursion or parsing.

    Brackets inside strings do not count. Text that is not JSON gives an answer that means nothing, but the
    answer is quick and never an exception (parsing such text fails anyway). UTF-16 and UTF-32, which
    :func:`json.loads` detects for bytes, are read as such.
    """
    if isinstance(document, str):
        raw = document.encode("utf-8", "surrogatepass")
    else:
        raw = document
        encoding = json.detect_encoding(raw)
        if encoding != "utf-8":
            try:
                raw = raw.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
            except UnicodeError:
                return False  # not text in that encoding: json.loads refuses it
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(_SQUARE, _NOT_BRACKET)
    if b"[" * (limit + 1) in brackets:  # the usual attack, found at the speed of a substring search
        return True
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > limit


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


def loads_strict(document: bytes | str) -> Any:
    """:func:`json.loads` keeping to RFC 8259: no ``NaN`` or ``Infinity``, no number too large for a float
    (Python would make it ``inf`` and write it back as ``Infinity``, which is not JSON), bytes that are not
    strictly UTF-8 (or UTF-16/32). Raise :class:`ValueError` (or :class:`RecursionError`: check
    :func:`json_too_deep` first).

    UTF-8 bytes go to orjson first, which is that strict already and several times faster; whatever it refuses
    (and any text with a run of digits it would read as a float, where ``json`` keeps a big integer exact)
    goes to the standard parser, whose verdict and message stand.
    """
    if not isinstance(document, str):
        if _LONG_DIGIT_RUN not in document.translate(_DIGITS_AS_ZERO):
            try:
                return orjson.loads(document)
            except orjson.JSONDecodeError:
                pass
        # json.loads would decode bytes with "surrogatepass", letting UTF-8-encoded surrogates through: strictly here.
        document = document.decode(json.detect_encoding(document))
    return json.loads(document, parse_constant=_refuse_constant, parse_float=_finite_float)


_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
_LONG_DIGIT_RUN = b"0" * 19
"""Nineteen digits in a row: an integer orjson may not hold exactly (it takes 64 bits; ``json`` takes any). Found
by a translation and a substring search, ten times quicker than a pattern over a large batch (profiled)."""


def dumps_compact(value: Any) -> bytes:
    """JSON text of a parsed value, compact and UTF-8 (as ``json.dumps(separators=(",", ":"),
    ensure_ascii=False)``); raise :class:`UnicodeEncodeError` for a lone surrogate, which UTF-8 cannot carry."""
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer beyond 64 bits, or a lone surrogate: the standard encoder decides
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


NOT_JSON: Final = object()
"""What :func:`try_json` returns for data that is not JSON."""


def try_json(data: bytes) -> Any:
    """``data`` decoded as JSON, or :data:`NOT_JSON` when it is not JSON (strictly: see :func:`loads_strict`) or
    nests deeper than :data:`MAX_JSON_DEPTH`; never an exception, whatever the bytes."""
    if json_too_deep(data):
        return NOT_JSON
    try:
        return loads_strict(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return NOT_JSON


def attribute_text(value: AttributeValue) -> str:
    """The canonical string form of an attribute value (as carried in HTTP headers)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """An immutable CloudEvent: context attributes (extensions included) and the data as bytes.

    Data is kept as the exact bytes received so that an event can be stored, delivered and dead-lettered
    without being changed; :meth:`json_data` decodes it when the content type says JSON.
    """

    attributes: Mapping[str, AttributeValue]
    data: bytes | None = None
    _decoded: list[Any] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def create(cls, attributes: Mapping[str, Any], data: bytes | None = None) -> CloudEvent:
        """Build an event and validate it; raise :class:`EventError` when it breaks a rule."""
        attrs = {k: v for k, v in attributes.items() if v is not None}
        check_attributes(attrs)
        return cls(attrs, data)

    def __getitem__(self, name: str) -> AttributeValue:
        return self.attributes[name]

    def __contains__(self, name: object) -> bool:
        return name in self.attributes

    def __iter__(self) -> Iterator[str]:
        return iter(self.attributes)

    def get(self, name: str, default: Any = None) -> Any:
        return self.attributes.get(name, default)

    @property
    def id(self) -> str:
        return str(self.attributes["id"])

    @property
    def type(self) -> str:
        return str(self.attributes["type"])

    @property
    def source(self) -> str:
        return str(self.attributes["source"])

    @property
    def datacontenttype(self) -> str | None:
        value = self.attributes.get("datacontenttype")
        return None if value is None else str(value)

    def with_attributes(self, **changes: AttributeValue | None) -> CloudEvent:
        """A copy with attributes set (or removed, for ``None``); data is shared, not copied."""
        attrs = dict(self.attributes)
        for name, value in changes.items():
            if value is None:
                attrs.pop(name, None)
            else:
                attrs[name] = value
        return CloudEvent(attrs, self.data)

    def json_data(self) -> Any:
        """The data decoded as JSON when the content type says JSON, else text (UTF-8) or the raw bytes."""
        if not self._decoded:
            self._decoded.append(_decode_data(self.data, self.datacontenttype))
        return self._decoded[0]

    def as_mapping(self) -> Mapping[str, Any]:
        """The event in CloudEvents JSON form, as filters see it: attributes at top level, decoded ``data``.

        ``data`` is decoded only when a filter reads it: most filters test attributes alone.
        """
        return EventMapping(self)

    # --- storage form -----------------------------------------------------------------------------------
    def to_json_bytes(self) -> bytes:
        """Structured JSON with ``data_base64``: byte-exact and self-describing, the form kept in JetStream."""
        doc: dict[str, Any] = dict(self.attributes)
        if self.data is not None:
            doc["data_base64"] = base64.b64encode(self.data).decode("ascii")
        # orjson writes what json.dumps(ensure_ascii=False) would, at a tenth of the cost: the values are
        # validated strings (no lone surrogates), 32-bit integers and booleans, where the two cannot differ.
        return orjson.dumps(doc)

    @classmethod
    def from_json_bytes(cls, payload: bytes) -> CloudEvent:
        """Read what :meth:`to_json_bytes` wrote (trusted: it was validated before it was stored); a payload
        that is not a stored event raises :class:`ValueError` or :class:`TypeError`."""
        doc = orjson.loads(payload)
        encoded = doc.pop("data_base64", None)
        return cls(doc, None if encoded is None else base64.b64decode(encoded))


class EventMapping(Mapping[str, Any]):
    """An event as a read-only mapping in CloudEvents JSON form; ``data`` is decoded on first read."""

    __slots__ = ("_event",)

    def __init__(self, event: CloudEvent) -> None:
        self._event = event

    def __getitem__(self, name: str) -> Any:
        if name == "data" and self._event.data is not None:
            return self._event.json_data()
        return self._event.attributes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._event.attributes or (name == "data" and self._event.data is not None)

    def __iter__(self) -> Iterator[str]:
        yield from self._event.attributes
        if self._event.data is not None:
            yield "data"

    def __len__(self) -> int:
        return len(self._event.attributes) + (self._event.data is not None)


def _decode_data(data: bytes | None, content_type: str | None) -> Any:
    if data is None:
        return None
    if content_type is None or is_json_media_type(content_type):
        value = try_json(data)
        if value is not NOT_JSON:
            return value
        if content_type is not None:
            return _as_text(data)
    if content_type is None or content_type.lower().startswith("text/"):
        return _as_text(data)
    return data


def _as_text(data: bytes) -> str | bytes:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


__all__ = [
    "ATTRIBUTE_LIMITS",
    "INT32_MAX",
    "INT32_MIN",
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
    "NON_EMPTY_OPTIONAL",
    "NOT_JSON",
    "REQUIRED_ATTRIBUTES",
    "RESERVED_NAMES",
    "SPEC_VERSION",
    "AttributeValue",
    "CloudEvent",
    "EventError",
    "EventMapping",
    "attribute_text",
    "check_attributes",
    "check_header_safe",
    "check_time",
    "check_value",
    "dumps_compact",
    "is_json_media_type",
    "json_too_deep",
    "loads_strict",
    "try_json",
]
