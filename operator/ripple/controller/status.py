"""Writing a reconciled object's status the same way for every kind."""

from __future__ import annotations

from collections.abc import Sequence

import kopf

from ripple.controller.resources.conditions import Condition, ready_from, render_conditions

__all__ = ["write_conditions"]


def write_conditions(
    body: kopf.Body, status: kopf.Status, patch: kopf.Patch, conditions: Sequence[Condition], *, ready: bool = True
) -> None:
    """Patch ``status.conditions`` (with ``Ready`` summing them up unless ``ready=False`` says they already
    include it) and ``observedGeneration``."""
    final = [*conditions, ready_from(conditions)] if ready else list(conditions)
    patch.status["conditions"] = render_conditions(final, status.get("conditions"))
    patch.status["observedGeneration"] = body["metadata"].get("generation")
