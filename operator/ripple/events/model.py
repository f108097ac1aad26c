"""The CloudEvent value and the rules every event must satisfy before Ripple stores it.

Ripple validates on its own instead of through an SDK so that nothing is invented: an event without an
``id`` or ``time`` is refused or left without one, never given a fresh value behind the producer's back.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SPEC_VERSION = "1.0"
REQUIRED_ATTRIBUTES = ("id", "source", "specversion", "type")
# Optional attributes the spec says must be non-empty strings when present.
NON_EMPTY_OPTIONAL = ("datacontenttype", "dataschema", "subject", "time")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]+\Z", re.ASCII)
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([Zz]|[+-]([0-9]{2}):([0-9]{2}))\Z"
)
RESERVED_NAMES = ("data", "data_base64")
_JSON_MEDIA = re.compile(r"^\s*(application/json|[^;/\s]+/[^;\s]+\+json|text/json)\s*(;|$)", re.IGNORECASE)

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
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, min(second, 59))  # RFC 3339 allows a leap second
    except ValueError as exc:
        raise EventError(f"attribute 'time' is not a valid date-time: {value!r} ({exc})") from None
    offset_hour, offset_minute = match.group(9), match.group(10)
    if second > 60 or (offset_hour is not None and (int(offset_hour) > 23 or int(offset_minute) > 59)):
        raise EventError(f"attribute 'time' is not a valid date-time: {value!r}")


def check_attributes(attributes: Mapping[str, Any]) -> None:
    """Raise :class:`EventError` unless the attributes form a valid CloudEvents 1.0 context."""
    for name in REQUIRED_ATTRIBUTES:
        value = attributes.get(name)
        if value is None:
            raise EventError(f"missing required attribute '{name}'")
        if not isinstance(value, str):
            raise EventError(f"attribute '{name}' must be a string")
        if value == "":
            raise EventError(f"attribute '{name}' must not be empty")
    if attributes["specversion"] != SPEC_VERSION:
        raise EventError(f"unsupported specversion {attributes['specversion']!r}: only '1.0' is accepted")
    for name, value in attributes.items():
        if not _ATTRIBUTE_NAME.match(name):
            raise EventError(f"attribute name {name!r} is invalid: names use only a-z and 0-9")
        if name in RESERVED_NAMES:
            raise EventError(f"attribute name {name!r} is reserved for the event's data")
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            if not INT32_MIN <= value <= INT32_MAX:
                raise EventError(f"attribute '{name}' is outside the 32-bit integer range")
            continue
        if not isinstance(value, str):
            raise EventError(f"attribute '{name}' must be a string, integer or boolean")
    for name in NON_EMPTY_OPTIONAL:
        if name in attributes:
            if not isinstance(attributes[name], str):
                raise EventError(f"attribute '{name}' must be a string")
            if attributes[name] == "":
                raise EventError(f"attribute '{name}' must not be empty when present")
    if "time" in attributes:
        check_time(attributes["time"])


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

    def as_mapping(self) -> dict[str, Any]:
        """The event in CloudEvents JSON form, as filters see it: attributes at top level, decoded ``data``."""
        mapping: dict[str, Any] = dict(self.attributes)
        if self.data is not None:
            mapping["data"] = self.json_data()
        return mapping

    # --- storage form -----------------------------------------------------------------------------------
    def to_json_bytes(self) -> bytes:
        """Structured JSON with ``data_base64``: byte-exact and self-describing, the form kept in JetStream."""
        doc: dict[str, Any] = dict(self.attributes)
        if self.data is not None:
            doc["data_base64"] = base64.b64encode(self.data).decode("ascii")
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json_bytes(cls, payload: bytes) -> CloudEvent:
        """Read what :meth:`to_json_bytes` wrote (trusted: it was validated before it was stored)."""
        doc = json.loads(payload)
        encoded = doc.pop("data_base64", None)
        return cls(doc, None if encoded is None else base64.b64decode(encoded))



def _decode_data(data: bytes | None, content_type: str | None) -> Any:
    if data is None:
        return None
    if content_type is None or is_json_media_type(content_type):
        try:
            return json.loads(data)
        except ValueError:
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
