"""Trigger filters: compile a Trigger spec's ``filter``/``filters`` once, then match events against it.

>>> f = from_trigger_spec({"filters": [{"exact": {"type": "order.created"}}, {"prefix": {"subject": "eu/"}}]})
>>> f.matches({"type": "order.created", "subject": "eu/42"})
True
>>> sorted(f.pinned_types())
['order.created']

Events are mappings in CloudEvents JSON form: attributes and extensions as top-level keys, the decoded payload
under ``data``. See :mod:`ripple.filters.dialects` for the dialects, :mod:`ripple.filters.index` for matching
many triggers at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from .constraints import Constraint, OneOf
from .dialects import FilterError, Node, compile_spec

__all__ = ["Filter", "FilterError", "compile_filter", "from_trigger_spec", "validate_trigger_spec"]


class Filter:
    """A compiled trigger filter."""

    __slots__ = ("_constraints", "_node")

    def __init__(self, node: Node) -> None:
        self._node = node
        self._constraints: Mapping[str, Constraint] = MappingProxyType(dict(node.constraints()))

    def matches(self, event: Mapping[str, Any]) -> bool:
        """True when ``event`` (CloudEvents JSON form) passes the filter."""
        return self._node.matches(event)

    def index_constraints(self) -> Mapping[str, Constraint]:
        """Conditions every matching event meets, ANDed: attribute name to allowed values or required prefix.

        Sound but not complete: a filter matches only events that meet them, not every such event.
        """
        return self._constraints

    def constraints_decide(self) -> bool:
        """True when meeting :meth:`index_constraints` is also enough to match (for scalar attributes)."""
        return self._node.exhaustive

    def decided_by_type(self) -> bool:
        """True when the filter asks only that ``type`` be one of :meth:`pinned_types`: a consumer whose subjects
        select exactly those types (a trigger's, see ``store.consumers``) has nothing left to test."""
        return self._node.exhaustive and self._constraints.keys() == {"type"} and self.pinned_types() is not None

    def pinned_types(self) -> frozenset[str] | None:
        """The only ``type`` values a matching event can have, or None when any type can match."""
        constraint = self._constraints.get("type")
        return constraint.values if isinstance(constraint, OneOf) else None


def compile_filter(
    attributes: Mapping[str, str] | None, expressions: Sequence[Mapping[str, Any]] | None
) -> Filter:
    """Compile a trigger's filter from its typed parts: ``filter.attributes`` and the ``filters`` expressions."""
    spec: dict[str, Any] = {}
    if attributes is not None:
        spec["filter"] = {"attributes": dict(attributes)}
    if expressions is not None:
        spec["filters"] = list(expressions)
    return Filter(compile_spec(spec))


def from_trigger_spec(spec: Mapping[str, Any]) -> Filter:
    """Compile a Trigger ``spec``; raises :class:`FilterError` naming the offending part by its path."""
    return Filter(compile_spec(spec))


def validate_trigger_spec(spec: Mapping[str, Any]) -> None:
    """Raise :class:`FilterError` if ``spec`` holds an invalid filter (the same checks as compiling)."""
    compile_spec(spec)
