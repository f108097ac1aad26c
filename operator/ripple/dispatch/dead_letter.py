"""Dead letters: the original event, unchanged, plus extensions that say why it could not be delivered."""

from __future__ import annotations

import base64

from ripple.dispatch.client import DeliveryResult
from ripple.events.extensions import ERROR_CODE, ERROR_DATA, ERROR_DEST, ERROR_TRIGGER
from ripple.events.model import CloudEvent

MAX_ERROR_DATA = 1024


def dead_letter_event(event: CloudEvent, result: DeliveryResult, *, destination: str, trigger: str) -> CloudEvent:
    """The event with ``rippleerror*`` extensions: status (0 for no answer), URL, response body (≤ 1 KiB)."""
    detail = result.body if result.body else result.error.encode()
    extensions: dict[str, str | int | None] = {
        ERROR_CODE: result.status,
        ERROR_DEST: destination,
        ERROR_TRIGGER: trigger,
        ERROR_DATA: base64.b64encode(detail[:MAX_ERROR_DATA]).decode("ascii") if detail else None,
    }
    return event.with_attributes(**extensions)
