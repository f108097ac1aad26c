"""Dead letters: the original event, unchanged, plus extensions that say why it could not be delivered."""

from __future__ import annotations

import base64
import re

from ripple.dispatch.client import DeliveryResult
from ripple.events.extensions import ERROR_CODE, ERROR_DATA, ERROR_DEST, ERROR_REASON, ERROR_TRIGGER
from ripple.events.model import CloudEvent

MAX_ERROR_DATA = 512
"""Bytes of the response body (or error text) kept in ``rippleerrordata``; base64 keeps it under the limit of
an extension value, so a dead letter is itself a valid event a sink can receive."""
MAX_REASON = 256
MAX_DESTINATION = 1024
UNDECODABLE_TYPE = "dev.ripple.undecodable"
"""The type of a dead letter made from a stored message that is not a CloudEvent at all."""
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def printable(text: str, limit: int = MAX_REASON) -> str:
    """``text`` cut to ``limit`` characters, without the control characters an attribute may not hold."""
    return _UNPRINTABLE.sub("?", text[:limit])


def dead_letter_event(
    event: CloudEvent, result: DeliveryResult, *, destination: str, trigger: str, reason: str = ""
) -> CloudEvent:
    """The event with ``rippleerror*`` extensions: status (0 for no answer), URL, response body (≤ 512 bytes),
    trigger and the reason in words."""
    detail = result.body if result.body else result.error.encode(errors="replace")
    extensions: dict[str, str | int | None] = {
        ERROR_CODE: result.status,
        ERROR_DEST: printable(destination, MAX_DESTINATION) or None,
        ERROR_TRIGGER: trigger,
        ERROR_DATA: base64.b64encode(detail[:MAX_ERROR_DATA]).decode("ascii") if detail else None,
        ERROR_REASON: printable(reason or result.error) or None,
    }
    return event.with_attributes(**extensions)


def undecodable_event(payload: bytes, *, namespace: str, broker: str, sequence: int) -> CloudEvent:
    """A stored message that cannot be read as a CloudEvent, wrapped as one (its bytes as data) so that it is
    kept as a dead letter instead of being dropped."""
    attributes = {
        "specversion": "1.0",
        "id": f"{namespace}.{broker}.{sequence}",
        "source": f"/ripple/{namespace}/{broker}",
        "type": UNDECODABLE_TYPE,
        "datacontenttype": "application/octet-stream",
    }
    return CloudEvent(attributes, payload)


__all__ = ["MAX_ERROR_DATA", "UNDECODABLE_TYPE", "dead_letter_event", "printable", "undecodable_event"]
