"""Filter dialects of a Trigger spec, compiled into nodes that match events and report their constraints.

``filter.attributes`` follows Knative: exact string equality on every listed attribute, where an empty value
accepts any non-empty value; a missing attribute never matches. ``filters`` follows the CloudEvents
Subscriptions API (``exact``, ``prefix``, ``suffix``, ``all``, ``any``, ``not``), extended with ``cesql`` (as
Knative does) and ``pattern`` (EventBridge-style). Attribute values are compared as text (see
:mod:`ripple.filters.attributes`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from . import cesql, pattern
from .attributes import event_attribute_text
from .constraints import NONE, Constraints, conjoin, disjoin, exactly, starting

__all__ = [
    "MAX_FILTER_DEPTH",
    "AllOf",
    "AnyOf",
    "Attributes",
    "Cesql",
    "Exact",
    "FilterError",
    "MatchAll",
    "Node",
    "Not",
    "Pattern",
    "Prefix",
    "Suffix",
    "compile_spec",
    "expression",
]


class FilterError(ValueError):
    """An invalid trigger filter; the message starts with the path of the offending part."""


class Node(Protocol):
    exhaustive: bool
    """True when the node matches exactly the events that meet its constraints (attributes read as text)."""

    def matches(self, event: Mapping[str, Any]) -> bool: ...

    def constraints(self) -> Constraints: ...


class MatchAll:
    exhaustive = True

    def matches(self, event: Mapping[str, Any]) -> bool:
        return True

    def constraints(self) -> Constraints:
        return NONE


class Attributes:
    """Knative ``filter.attributes``."""

    def __init__(self, expected: Mapping[str, str]) -> None:
        self._expected = tuple(expected.items())
        self.exhaustive = all(expected.values())

    def matches(self, event: Mapping[str, Any]) -> bool:
        for name, value in self._expected:
            text = event_attribute_text(event, name)
            if not text or (value and text != value):
                return False
        return True

    def constraints(self) -> Constraints:
        return conjoin(exactly(name, value) for name, value in self._expected if value)


class Exact:
    exhaustive = True

    def __init__(self, expected: Mapping[str, str]) -> None:
        self._expected = tuple(expected.items())

    def matches(self, event: Mapping[str, Any]) -> bool:
        for name, value in self._expected:
            if event_attribute_text(event, name) != value:
                return False
        return True

    def constraints(self) -> Constraints:
        return conjoin(exactly(name, value) for name, value in self._expected)


class Prefix:
    exhaustive = True

    def __init__(self, expected: Mapping[str, str]) -> None:
        self._expected = tuple(expected.items())

    def matches(self, event: Mapping[str, Any]) -> bool:
        for name, value in self._expected:
            text = event_attribute_text(event, name)
            if text is None or not text.startswith(value):
                return False
        return True

    def constraints(self) -> Constraints:
        return conjoin(starting(name, value) for name, value in self._expected)


class Suffix:
    exhaustive = False

    def __init__(self, expected: Mapping[str, str]) -> None:
        self._expected = tuple(expected.items())

    def matches(self, event: Mapping[str, Any]) -> bool:
        for name, value in self._expected:
            text = event_attribute_text(event, name)
            if text is None or not text.endswith(value):
                return False
        return True

    def constraints(self) -> Constraints:
        return NONE


class AllOf:
    def __init__(self, nodes: Sequence[Node]) -> None:
        self._nodes = tuple(nodes)
        self.exhaustive = all(node.exhaustive for node in nodes)

    def matches(self, event: Mapping[str, Any]) -> bool:
        for node in self._nodes:
            if not node.matches(event):
                return False
        return True

    def constraints(self) -> Constraints:
        return conjoin(node.constraints() for node in self._nodes)


class AnyOf:
    exhaustive = False

    def __init__(self, nodes: Sequence[Node]) -> None:
        self._nodes = tuple(nodes)

    def matches(self, event: Mapping[str, Any]) -> bool:
        for node in self._nodes:
            if node.matches(event):
                return True
        return False

    def constraints(self) -> Constraints:
        return disjoin([node.constraints() for node in self._nodes])


class Not:
    exhaustive = False

    def __init__(self, node: Node) -> None:
        self._node = node

    def matches(self, event: Mapping[str, Any]) -> bool:
        return not self._node.matches(event)

    def constraints(self) -> Constraints:
        return NONE


class Cesql:
    """Matches only when the expression evaluates to boolean true without error."""

    exhaustive = False

    def __init__(self, expression: cesql.Expression) -> None:
        self._evaluate = expression.evaluate
        self._constraints = expression.constraints()

    def matches(self, event: Mapping[str, Any]) -> bool:
        value, error = self._evaluate(event)
        return value is True and error is None

    def constraints(self) -> Constraints:
        return self._constraints


class Pattern:
    exhaustive = False

    def __init__(self, compiled: pattern.Pattern) -> None:
        self._pattern = compiled
        self._constraints = compiled.constraints()

    def matches(self, event: Mapping[str, Any]) -> bool:
        return self._pattern.matches(event)

    def constraints(self) -> Constraints:
        return self._constraints


# --- compiling a spec -------------------------------------------------------------------------------------


def compile_spec(spec: Mapping[str, Any]) -> Node:
    """The node for a Trigger ``spec``: ``filters`` when it has expressions, else ``filter``, else match-all.

    Both fields are checked even when only ``filters`` is used, so a broken ``filter`` is reported rather than
    silently ignored. An empty ``filters`` list counts as unset, as in Knative.
    """
    if not isinstance(spec, Mapping):
        raise FilterError(f"spec: expected a mapping, got {type(spec).__name__}")
    attributes = _filter_field(spec["filter"], "filter") if spec.get("filter") is not None else None
    expressions = spec.get("filters")
    if expressions is not None and not isinstance(expressions, list):
        raise FilterError(f"filters: expected a list of filter expressions, got {type(expressions).__name__}")
    if expressions:
        nodes = [expression(item, f"filters[{i}]") for i, item in enumerate(expressions)]
        return nodes[0] if len(nodes) == 1 else AllOf(nodes)
    return attributes or MatchAll()


def _filter_field(value: Any, path: str) -> Node | None:
    if not isinstance(value, Mapping):
        raise FilterError(f"{path}: expected a mapping with 'attributes', got {type(value).__name__}")
    unknown = sorted(str(key) for key in value if key != "attributes")
    if unknown:
        raise FilterError(f"{path}: unknown field(s) {', '.join(unknown)}; only 'attributes' is supported")
    attributes = value.get("attributes")
    if attributes is None:
        return None
    if not isinstance(attributes, Mapping):
        raise FilterError(f"{path}.attributes: expected a mapping of attribute names to strings")
    for name, text in attributes.items():
        if not isinstance(name, str) or not name:
            raise FilterError(f"{path}.attributes: attribute names must be non-empty strings, got {name!r}")
        if not isinstance(text, str):
            raise FilterError(f"{path}.attributes.{name}: expected a string, got {type(text).__name__}")
    return Attributes(attributes) if attributes else None


MAX_FILTER_DEPTH = 64
"""Most nested dialects (``all``/``any``/``not``) one filter may have: compiling and matching recurse, and a
Trigger that arrives as JSON from the API server is not bounded by a YAML parser's own limits."""


def expression(value: Any, path: str) -> Node:
    """Compile one Subscriptions API filter expression found at ``path``."""
    if path.count(".") > MAX_FILTER_DEPTH:  # each level of nesting adds one ``.<dialect>`` to the path
        raise FilterError(f"{path[:80]}...: filters nest more than {MAX_FILTER_DEPTH} levels deep")
    if not isinstance(value, Mapping):
        raise FilterError(f"{path}: expected a mapping with one dialect key, got {type(value).__name__}")
    if len(value) != 1:
        keys = ", ".join(sorted(map(str, value))) or "none"
        raise FilterError(f"{path}: expected exactly one dialect key, got {keys}")
    ((dialect, argument),) = value.items()
    compiler = _DIALECTS.get(dialect)
    if compiler is None:
        known = ", ".join(sorted(_DIALECTS))
        raise FilterError(f"{path}: unknown dialect {dialect!r} (expected one of {known})")
    return compiler(argument, f"{path}.{dialect}")


def _attribute_map(value: Any, path: str) -> dict[str, str]:
    """``exact``/``prefix``/``suffix`` take non-empty names and non-empty string values (spec 3.2.4.1.1)."""
    if not isinstance(value, Mapping) or not value:
        raise FilterError(f"{path}: expected a non-empty mapping of attribute names to strings")
    for name, text in value.items():
        if not isinstance(name, str) or not name:
            raise FilterError(f"{path}: attribute names must be non-empty strings, got {name!r}")
        if not isinstance(text, str) or not text:
            raise FilterError(f"{path}.{name}: expected a non-empty string, got {text!r}")
    return dict(value)


def _expressions(value: Any, path: str) -> list[Node]:
    if not isinstance(value, list) or not value:
        raise FilterError(f"{path}: expected a non-empty list of filter expressions")
    return [expression(item, f"{path}[{i}]") for i, item in enumerate(value)]


def _cesql(value: Any, path: str) -> Node:
    if not isinstance(value, str):
        raise FilterError(f"{path}: expected a CESQL expression string, got {type(value).__name__}")
    try:
        return Cesql(cesql.compile(value))
    except cesql.CesqlError as exc:
        raise FilterError(f"{path}: {exc}") from None


def _pattern(value: Any, path: str) -> Node:
    try:
        return Pattern(pattern.compile(value))
    except pattern.PatternError as exc:
        where = f"{path}.{exc.path}" if exc.path else path
        raise FilterError(f"{where}: {exc.message}") from None


_DIALECTS: dict[str, Callable[[Any, str], Node]] = {
    "exact": lambda value, path: Exact(_attribute_map(value, path)),
    "prefix": lambda value, path: Prefix(_attribute_map(value, path)),
    "suffix": lambda value, path: Suffix(_attribute_map(value, path)),
    "all": lambda value, path: AllOf(_expressions(value, path)),
    "any": lambda value, path: AnyOf(_expressions(value, path)),
    "not": lambda value, path: Not(expression(value, path)),
    "cesql": _cesql,
    "pattern": _pattern,
}
