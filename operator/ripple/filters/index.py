"""Match an event against many triggers at a cost that depends on the triggers that could match it.

Each filter is filed under one of its :meth:`~ripple.filters.Filter.index_constraints`, preferring exact
values over prefixes and ``type`` over ``source`` over ``subject`` over other attributes:

* exact values go in a hash table per attribute (one lookup per indexed attribute per event);
* prefixes go in a table per attribute keyed by prefix, probed once for each distinct prefix length;
* filters without constraints are checked for every event, and filters that can never match are filed nowhere.

A candidate is then checked with its filter, unless the filter is decided by the one constraint it is filed
under (a plain ``exact`` or ``prefix`` on one attribute, say): being found is then proof of a match.

An event whose indexed attribute holds an array (not a valid CloudEvent, but patterns can match array
elements) is checked against every trigger, so :meth:`TriggerIndex.match` always equals checking each filter.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from . import Filter
from .attributes import event_attribute_text
from .constraints import Constraint, OneOf, unsatisfiable

__all__ = ["TriggerIndex"]

K = TypeVar("K", bound=Hashable)

_PRIORITY = {"type": 0, "source": 1, "subject": 2}


class _Prefixes(Generic[K]):
    """Keys filed by required prefix of one attribute; a lookup costs one probe per distinct prefix length."""

    def __init__(self) -> None:
        self._keys: dict[str, set[K]] = {}
        self._lengths: list[int] = []
        self._per_length: dict[int, int] = {}

    def __bool__(self) -> bool:
        return bool(self._keys)

    def add(self, prefix: str, key: K) -> None:
        keys = self._keys.setdefault(prefix, set())
        if not keys:
            size = len(prefix)
            if size not in self._per_length:
                bisect.insort(self._lengths, size)
            self._per_length[size] = self._per_length.get(size, 0) + 1
        keys.add(key)

    def discard(self, prefix: str, key: K) -> None:
        keys = self._keys[prefix]
        keys.discard(key)
        if keys:
            return
        del self._keys[prefix]
        size = len(prefix)
        self._per_length[size] -= 1
        if not self._per_length[size]:
            del self._per_length[size]
            self._lengths.remove(size)

    def collect(self, text: str, into: set[K]) -> None:
        for size in self._lengths:
            if size > len(text):
                break
            keys = self._keys.get(text[:size])
            if keys:
                into |= keys


class TriggerIndex(Generic[K]):
    """Filters by key, indexed so that :meth:`candidates` touches only triggers that could match."""

    def __init__(self) -> None:
        self._filters: dict[K, Filter] = {}
        self._checks: dict[K, Callable[[Mapping[str, Any]], bool]] = {}
        self._order: dict[K, int] = {}
        self._serial = 0
        self._filed: dict[K, tuple[str, str, Constraint | None]] = {}
        self._exact: dict[str, dict[str, set[K]]] = {}
        self._prefix: dict[str, _Prefixes[K]] = {}
        self._always: set[K] = set()

    def __len__(self) -> int:
        return len(self._filters)

    def __contains__(self, key: object) -> bool:
        return key in self._filters

    def add(self, key: K, filter: Filter) -> None:
        """File ``filter`` under ``key``, replacing any filter the key had."""
        if key in self._filters:
            self.remove(key)
        self._filters[key] = filter
        self._order[key] = self._serial
        self._serial += 1
        constraints = filter.index_constraints()
        if not (filter.constraints_decide() and len(constraints) <= 1):
            self._checks[key] = filter.matches
        place = _choose(constraints)
        self._filed[key] = place
        kind, name, constraint = place
        if kind == "always":
            self._always.add(key)
        elif isinstance(constraint, OneOf):
            table = self._exact.setdefault(name, {})
            for value in constraint.values:
                table.setdefault(value, set()).add(key)
        elif constraint is not None:
            self._prefix.setdefault(name, _Prefixes()).add(constraint.prefix, key)

    def remove(self, key: K) -> None:
        """Forget ``key``; raises KeyError when it is not filed."""
        del self._filters[key]
        del self._order[key]
        self._checks.pop(key, None)
        kind, name, constraint = self._filed.pop(key)
        if kind == "always":
            self._always.discard(key)
        elif isinstance(constraint, OneOf):
            table = self._exact[name]
            for value in constraint.values:
                keys = table[value]
                keys.discard(key)
                if not keys:
                    del table[value]
            if not table:
                del self._exact[name]
        elif constraint is not None:
            prefixes = self._prefix[name]
            prefixes.discard(constraint.prefix, key)
            if not prefixes:
                del self._prefix[name]

    def candidates(self, event: Mapping[str, Any]) -> Iterable[K]:
        """Keys whose filter could match ``event`` (all whose filter does), in the order they were added."""
        return list(self._filters) if self._has_array(event) else self._candidates(event)

    def match(self, event: Mapping[str, Any]) -> list[K]:
        """Exactly the keys whose filter matches ``event``, in the order they were added."""
        if self._has_array(event):
            return [key for key, f in self._filters.items() if f.matches(event)]
        checks = self._checks
        return [key for key in self._candidates(event) if (check := checks.get(key)) is None or check(event)]

    def _candidates(self, event: Mapping[str, Any]) -> list[K]:
        found = set(self._always)
        for name, table in self._exact.items():
            text = event_attribute_text(event, name)
            if text is not None:
                keys = table.get(text)
                if keys:
                    found |= keys
        for name, prefixes in self._prefix.items():
            text = event_attribute_text(event, name)
            if text is not None:
                prefixes.collect(text, found)
        return sorted(found, key=self._order.__getitem__)

    def _has_array(self, event: Mapping[str, Any]) -> bool:
        return any(isinstance(event.get(name), list) for name in (*self._exact, *self._prefix))


def _choose(constraints: Mapping[str, Constraint]) -> tuple[str, str, Constraint | None]:
    """Where to file a filter: ``(kind, attribute, constraint)``; kind is indexed, never or always."""
    if unsatisfiable(constraints):
        return "never", "", None
    if not constraints:
        return "always", "", None

    def rank(item: tuple[str, Constraint]) -> tuple[int, int, int]:
        name, constraint = item
        if isinstance(constraint, OneOf):
            return 0, _PRIORITY.get(name, len(_PRIORITY)), len(constraint.values)
        return 1, _PRIORITY.get(name, len(_PRIORITY)), -len(constraint.prefix)

    name, constraint = min(constraints.items(), key=rank)
    return "indexed", name, constraint
