"""Knative-style status conditions: ``type``/``status``/``reason``/``message``, with ``Ready`` summing them up."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["Condition", "ready_from", "render_conditions"]


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool | None
    """True, False, or None for Unknown."""
    reason: str
    message: str = ""

    @property
    def status_text(self) -> str:
        return "Unknown" if self.status is None else str(self.status)


def ready_from(conditions: Sequence[Condition]) -> Condition:
    """Ready is True when every other condition is; otherwise it carries the first failing one's reason."""
    for condition in conditions:
        if condition.status is not True:
            return Condition("Ready", condition.status, condition.reason, condition.message)
    return Condition("Ready", True, "Ready")


def render_conditions(
    conditions: Iterable[Condition], previous: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """Conditions as the API stores them; ``lastTransitionTime`` moves only when a status changes."""
    before = {c.get("type"): c for c in previous or []}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rendered = []
    for condition in conditions:
        old = before.get(condition.type)
        changed = old is None or old.get("status") != condition.status_text
        entry: dict[str, Any] = {
            "type": condition.type,
            "status": condition.status_text,
            "reason": condition.reason,
            "message": condition.message,
            "lastTransitionTime": (
                now if old is None or changed or not old.get("lastTransitionTime") else old["lastTransitionTime"]
            ),
        }
        rendered.append(entry)
    return rendered
