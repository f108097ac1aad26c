"""Where Ripple's kinds live in the Kubernetes API: group, version and the plural of each kind."""

from __future__ import annotations

from ripple.api.crds import KINDS
from ripple.api.models import GROUP, VERSION, Resource

__all__ = ["GROUP", "VERSION", "custom_object", "plural"]

_PLURALS: dict[type[Resource], str] = {info.model: info.plural for info in KINDS}


def plural(model: type[Resource]) -> str:
    return _PLURALS[model]


def custom_object(model: type[Resource]) -> tuple[str, str, str]:
    """``(group, version, plural)``: the first arguments of every CustomObjectsApi call for the kind."""
    return GROUP, VERSION, _PLURALS[model]
