"""Necessary conditions on attributes that a filter implies, for indexing and type pinning.

A filter's constraints say what must hold of an event for the filter to match; they never claim more. Each
maps an attribute name to either a set of allowed text values (:class:`OneOf`) or a required text prefix
(:class:`StartsWith`), all of them ANDed. Attribute values are compared in their
:func:`~ripple.filters.attributes.event_attribute_text` form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "NONE",
    "Constraint",
    "Constraints",
    "OneOf",
    "StartsWith",
    "common_prefix",
    "conjoin",
    "disjoin",
    "exactly",
    "starting",
    "unsatisfiable",
]


@dataclass(frozen=True, slots=True)
class OneOf:
    """The attribute must be present and its text one of ``values`` (empty: the filter can never match)."""

    values: frozenset[str]


@dataclass(frozen=True, slots=True)
class StartsWith:
    """The attribute must be present and its text start with ``prefix`` (never empty)."""

    prefix: str


Constraint = OneOf | StartsWith
Constraints = Mapping[str, Constraint]

NONE: Constraints = {}
"""No constraint: any event may match."""


def exactly(name: str, value: str) -> dict[str, Constraint]:
    return {name: OneOf(frozenset((value,)))}


def starting(name: str, prefix: str) -> dict[str, Constraint]:
    return {name: StartsWith(prefix)} if prefix else {}


def unsatisfiable(constraints: Constraints) -> bool:
    """True when no event can meet ``constraints``."""
    return any(isinstance(c, OneOf) and not c.values for c in constraints.values())


def conjoin(parts: Iterable[Constraints]) -> dict[str, Constraint]:
    """Constraints that hold when every one of ``parts`` holds."""
    out: dict[str, Constraint] = {}
    for part in parts:
        for name, constraint in part.items():
            out[name] = _both(out[name], constraint) if name in out else constraint
    return out


def disjoin(parts: Sequence[Constraints]) -> dict[str, Constraint]:
    """Constraints that hold when at least one of ``parts`` holds.

    Only attributes constrained in every satisfiable branch survive: value sets are united, and a mix of
    values and prefixes becomes their longest common prefix.
    """
    live = [part for part in parts if not unsatisfiable(part)]
    if not live:
        return dict(parts[0]) if parts else {}
    out: dict[str, Constraint] = {}
    for name in set(live[0]).intersection(*live[1:]):
        branches = [part[name] for part in live]
        if all(isinstance(c, OneOf) for c in branches):
            out[name] = OneOf(frozenset().union(*(c.values for c in branches if isinstance(c, OneOf))))
            continue
        texts = [text for c in branches for text in (c.values if isinstance(c, OneOf) else (c.prefix,))]
        out.update(starting(name, common_prefix(texts)))
    return out


def common_prefix(texts: Iterable[str]) -> str:
    """The longest string every one of ``texts`` starts with."""
    texts = list(texts)
    if not texts:
        return ""
    low, high = min(texts), max(texts)
    size = 0
    while size < len(low) and low[size] == high[size]:
        size += 1
    return low[:size]


def _both(a: Constraint, b: Constraint) -> Constraint:
    if isinstance(a, OneOf) and isinstance(b, OneOf):
        return OneOf(a.values & b.values)
    if isinstance(a, OneOf) and isinstance(b, StartsWith):
        return OneOf(frozenset(v for v in a.values if v.startswith(b.prefix)))
    if isinstance(a, StartsWith) and isinstance(b, OneOf):
        return _both(b, a)
    assert isinstance(a, StartsWith) and isinstance(b, StartsWith)
    if a.prefix.startswith(b.prefix):
        return a
    if b.prefix.startswith(a.prefix):
        return b
    return OneOf(frozenset())
