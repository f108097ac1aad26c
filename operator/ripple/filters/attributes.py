"""One rendering of CloudEvents attribute values as text.

The string-comparing dialects (``filter.attributes``, ``exact``, ``prefix``, ``suffix``), CESQL's String cast
of attributes and the trigger index must all read an attribute the same way; otherwise the index could leave
out a trigger whose filter would match.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = ["NOT_ATTRIBUTES", "event_attribute_text", "to_text"]

NOT_ATTRIBUTES = frozenset({"data", "data_base64"})
"""Keys of the CloudEvents JSON form that carry the payload, not context attributes."""


def to_text(value: Any) -> str | None:
    """The text form of an attribute value, or None when it has none (null, objects, arrays)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return None


def event_attribute_text(event: Mapping[str, Any], name: str) -> str | None:
    """The attribute ``name`` of ``event`` as text, or None when the event lacks it."""
    if name in NOT_ATTRIBUTES:
        return None
    value = event.get(name)
    return None if value is None else to_text(value)
