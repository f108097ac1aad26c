"""Reading Kubernetes status conditions, for Ripple's kinds and built-in ones alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["is_ready"]


def is_ready(status: Mapping[str, Any] | None) -> bool:
    """Whether an object's ``status.conditions`` say Ready=True (Ripple's kinds and Pods alike)."""
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (status or {}).get("conditions") or [])
