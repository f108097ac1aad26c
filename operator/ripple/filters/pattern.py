"""EventBridge-style event patterns, matched against the event's CloudEvents JSON form.

A pattern mirrors the event's structure: object fields are ANDed, each leaf is a non-empty list of
alternatives (ORed), and ``"$or": [{...}, {...}]`` ORs whole sub-patterns. Alternatives are exact values
(string, number, boolean, null) or one-key operator objects: ``prefix``, ``suffix`` (each optionally wrapping
``equals-ignore-case``), ``equals-ignore-case``, ``wildcard``, ``anything-but``, ``numeric``, ``exists`` and
``cidr``. As in EventBridge, values are type-strict (``"5"`` does not match ``5``), string operators only
match strings, ``numeric`` only JSON numbers, and an array in the event matches when any of its elements does;
objects inside arrays are matched element by element, so two fields must hold in the same element. Every
operator except ``exists: false`` needs the field to be present as a leaf (null counts; an object does not).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .attributes import NOT_ATTRIBUTES
from .constraints import NONE, Constraints, OneOf, common_prefix, conjoin, disjoin, starting
from .wildcards import ANY_RUN, Wildcard, matches

__all__ = ["Pattern", "PatternError", "compile"]

Test = Callable[[Any], bool]

_ABSENT = object()
_MAX_DEPTH = 64
"""Deeper patterns are refused: compiling and matching recurse once per nested object."""
_NUMERIC_HINT = (
    'numeric expects ["=", n], ["<", n], ["<=", n], [">", n], [">=", n] or a range like [">", 0, "<=", 5]'
)
_ANYTHING_BUT_HINT = (
    "anything-but expects a string, a number, a non-empty list of strings or of numbers, "
    "or an object with one of prefix, suffix, equals-ignore-case or wildcard"
)


class PatternError(ValueError):
    """A malformed pattern; ``path`` is the dotted field path inside the pattern (empty for the whole)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class Pattern:
    """A compiled event pattern."""

    __slots__ = ("_root",)

    def __init__(self, root: _Object) -> None:
        self._root = root

    def matches(self, event: Mapping[str, Any]) -> bool:
        return self._root.match(event)

    def constraints(self) -> Constraints:
        """Conditions on top-level attributes that hold for each matching event with scalar attributes."""
        return self._root.constraints()


def compile(pattern: Mapping[str, Any]) -> Pattern:
    """Check and compile ``pattern``; raises :class:`PatternError` (a ValueError) naming the bad part."""
    if not isinstance(pattern, Mapping):
        raise PatternError("", f"a pattern must be an object, got {_kind(pattern)}")
    return Pattern(_compile_object(pattern, ""))


# --- matching -----------------------------------------------------------------------------------------------


def _flatten(values: list[Any]) -> Iterator[Any]:
    """The non-list items of nested lists, in order (iterative: event arrays may nest deeply)."""
    stack = [iter(values)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            yield value
        else:
            stack.pop()


class _Leaf:
    """A list of alternatives for one field: plain strings are looked up in a set, the rest are tests."""

    __slots__ = ("exists", "prefixes", "strings", "tests")

    def __init__(
        self, strings: frozenset[str], prefixes: tuple[str, ...], tests: list[Test], exists: list[bool]
    ) -> None:
        self.strings = strings
        self.prefixes = prefixes
        self.tests = tuple(tests)
        self.exists = tuple(exists)

    def match_field(self, value: Any) -> bool:
        if value is _ABSENT or isinstance(value, Mapping):
            values: list[Any] = []
        elif isinstance(value, list):
            values = [v for v in _flatten(value) if not isinstance(v, Mapping)]
        else:
            values = [value]
        if self.exists and (bool(values) in self.exists):
            return True
        for v in values:
            if type(v) is str and (v in self.strings or v.startswith(self.prefixes)):
                return True
            for test in self.tests:
                if test(v):
                    return True
        return False

    def constraint(self, name: str) -> Constraints:
        if self.tests or self.exists:
            return NONE
        if not self.prefixes:
            return {name: OneOf(self.strings)}
        return starting(name, common_prefix([*self.strings, *self.prefixes]))


class _Object:
    __slots__ = ("fields", "ors")

    def __init__(self, fields: list[tuple[str, _Leaf | _Object]], ors: list[list[_Object]]) -> None:
        self.fields = tuple(fields)
        self.ors = tuple(tuple(branches) for branches in ors)

    def match(self, value: Any) -> bool:
        obj = value if isinstance(value, Mapping) else None
        for name, sub in self.fields:
            if not sub.match_field(obj.get(name, _ABSENT) if obj is not None else _ABSENT):
                return False
        return all(any(branch.match(value) for branch in branches) for branches in self.ors)

    def match_field(self, value: Any) -> bool:
        if isinstance(value, list):
            objects = [v for v in _flatten(value) if isinstance(v, Mapping)]
            return any(self.match(o) for o in objects) if objects else self.match(_ABSENT)
        return self.match(value)

    def constraints(self) -> Constraints:
        parts: list[Constraints] = [
            sub.constraint(name)
            for name, sub in self.fields
            if isinstance(sub, _Leaf) and name not in NOT_ATTRIBUTES
        ]
        parts.extend(disjoin([branch.constraints() for branch in branches]) for branches in self.ors)
        return conjoin(parts)


# --- compiling ----------------------------------------------------------------------------------------------


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compile_object(obj: Mapping[str, Any], path: str, depth: int = 1) -> _Object:
    if not obj:
        raise PatternError(path, "expected a non-empty object")
    if depth > _MAX_DEPTH:
        raise PatternError(path, f"patterns may nest at most {_MAX_DEPTH} objects deep")
    fields: list[tuple[str, _Leaf | _Object]] = []
    ors: list[list[_Object]] = []
    for name, value in obj.items():
        if not isinstance(name, str):
            raise PatternError(path, f"field names must be strings, got {name!r}")
        where = _join(path, name)
        if name == "$or":
            if not isinstance(value, list) or len(value) < 2:
                raise PatternError(where, "$or expects a list of at least two objects")
            ors.append([_compile_branch(branch, f"{where}[{i}]", depth) for i, branch in enumerate(value)])
        elif isinstance(value, Mapping):
            fields.append((name, _compile_object(value, where, depth + 1)))
        elif isinstance(value, list):
            fields.append((name, _compile_leaf(value, where)))
        else:
            raise PatternError(where, f"expected a list of values or a nested object, got {_kind(value)}")
    return _Object(fields, ors)


def _compile_branch(branch: Any, path: str, depth: int) -> _Object:
    if not isinstance(branch, Mapping):
        raise PatternError(path, f"expected an object, got {_kind(branch)}")
    return _compile_object(branch, path, depth + 1)


def _compile_leaf(items: list[Any], path: str) -> _Leaf:
    if not items:
        raise PatternError(path, "expected a non-empty list of values")
    strings: set[str] = set()
    prefixes: list[str] = []
    tests: list[Test] = []
    exists: list[bool] = []
    for item in items:
        if isinstance(item, str):
            strings.add(item)
        elif item is None or isinstance(item, bool):
            tests.append(_identical_to(item))
        elif _is_number(item):
            _check_finite(item, path, "a value")
            tests.append(_number_equal_to(item))
        elif isinstance(item, Mapping):
            if len(item) != 1:
                raise PatternError(
                    path, f"an operator object needs exactly one key, got {sorted(map(str, item))}"
                )
            ((op, arg),) = item.items()
            if op == "exists":
                if not isinstance(arg, bool):
                    raise PatternError(path, f"exists expects true or false, got {_kind(arg)}")
                exists.append(arg)
            elif op == "prefix" and isinstance(arg, str):
                prefixes.append(arg)
            else:
                tests.append(_operator(op, arg, path))
        else:
            raise PatternError(
                path,
                f"unsupported value {_kind(item)}: expected a string, number, boolean, null "
                "or an operator object",
            )
    return _Leaf(frozenset(strings), tuple(prefixes), tests, exists)


def _identical_to(want: Any) -> Test:
    return lambda v: v is want


def _number_equal_to(want: Any) -> Test:
    return lambda v: _is_number(v) and v == want


def _operator(op: Any, arg: Any, path: str) -> Test:
    if op in ("prefix", "suffix"):
        return _affix(op, arg, path)
    if op == "equals-ignore-case":
        folded = _string_arg(op, arg, path).casefold()
        return lambda v: type(v) is str and v.casefold() == folded
    if op == "wildcard":
        wildcard = _wildcard(_string_arg(op, arg, path), path)
        return lambda v: type(v) is str and matches(wildcard, v)
    if op == "anything-but":
        return _anything_but(arg, path)
    if op == "numeric":
        return _numeric(arg, path)
    if op == "cidr":
        return _cidr(arg, path)
    raise PatternError(path, f"unknown operator {op!r}")


def _string_arg(op: str, arg: Any, path: str) -> str:
    if not isinstance(arg, str):
        raise PatternError(path, f"{op} expects a string, got {_kind(arg)}")
    return arg


def _affix(op: str, arg: Any, path: str) -> Test:
    """``prefix``/``suffix`` with a string, or with ``{"equals-ignore-case": string}``."""
    ignoring_case = arg.get("equals-ignore-case") if isinstance(arg, Mapping) and len(arg) == 1 else None
    if isinstance(ignoring_case, str):
        folded = ignoring_case.casefold()
        if op == "prefix":
            return lambda v: type(v) is str and v.casefold().startswith(folded)
        return lambda v: type(v) is str and v.casefold().endswith(folded)
    if not isinstance(arg, str):
        raise PatternError(
            path, f'{op} expects a string or {{"equals-ignore-case": <string>}}, got {_kind(arg)}'
        )
    if op == "prefix":
        return lambda v: type(v) is str and v.startswith(arg)
    return lambda v: type(v) is str and v.endswith(arg)


def _wildcard(text: str, path: str) -> Wildcard:
    r"""``*`` matches any run of characters; ``\*`` and ``\\`` are a literal star and backslash."""
    parts: list[object] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "*\\":
                raise PatternError(path, f"wildcard {text!r}: a backslash may only escape '*' or '\\'")
            parts.append(text[i + 1])
            i += 2
            continue
        if c == "*":
            if text.startswith("*", i + 1):
                raise PatternError(path, f"wildcard {text!r}: consecutive '*' are not allowed")
            parts.append(ANY_RUN)
        else:
            parts.append(c)
        i += 1
    return tuple(parts)


def _anything_but(arg: Any, path: str) -> Test:
    if isinstance(arg, str) or _is_number(arg):
        arg = [arg]
    if isinstance(arg, list) and arg:
        if all(isinstance(v, str) for v in arg):
            excluded_strings = frozenset(arg)
            return lambda v: not (type(v) is str and v in excluded_strings)
        if all(_is_number(v) for v in arg):
            for v in arg:
                _check_finite(v, path, "anything-but")
            excluded_numbers = frozenset(arg)
            return lambda v: not (_is_number(v) and v in excluded_numbers)
    if isinstance(arg, Mapping) and len(arg) == 1:
        ((op, inner),) = arg.items()
        if op in ("prefix", "suffix") and isinstance(inner, str):
            test = _affix(op, inner, path)
            return lambda v: type(v) is str and not test(v)
        if op in ("equals-ignore-case", "wildcard"):
            texts = [inner] if isinstance(inner, str) else inner
            if isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts):
                tests = [_operator(op, t, path) for t in texts]
                return lambda v: type(v) is str and not any(test(v) for test in tests)
    raise PatternError(path, f"{_ANYTHING_BUT_HINT}, got {_kind(arg)}")


def _numeric(arg: Any, path: str) -> Test:
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        raise PatternError(path, f"{_NUMERIC_HINT}, got {_kind(arg)}")
    bounds: list[tuple[str, float]] = []
    for op, number in zip(arg[::2], arg[1::2], strict=True):
        if op not in ("=", "<", "<=", ">", ">="):
            raise PatternError(path, f"{_NUMERIC_HINT}; unknown comparison {op!r}")
        if not _is_number(number):
            raise PatternError(path, f"{_NUMERIC_HINT}; {op!r} needs a number, got {_kind(number)}")
        _check_finite(number, path, "numeric")
        bounds.append((op, number))
    if len(bounds) == 2:
        (op1, n1), (op2, n2) = bounds
        lower = next((b for b in bounds if b[0] in (">", ">=")), None)
        upper = next((b for b in bounds if b[0] in ("<", "<=")), None)
        if lower is None or upper is None:
            raise PatternError(path, f"{_NUMERIC_HINT}; a range needs a lower ('>', '>=') and an upper bound")
        if lower[1] > upper[1] or (lower[1] == upper[1] and (lower[0] == ">" or upper[0] == "<")):
            raise PatternError(path, f"numeric range [{op1!r}, {n1}, {op2!r}, {n2}] matches no number")
    checks = [_COMPARE[op](number) for op, number in bounds]
    return lambda v: _is_number(v) and all(check(v) for check in checks)


_COMPARE: dict[str, Callable[[float], Test]] = {
    "=": lambda n: lambda v: v == n,
    "<": lambda n: lambda v: v < n,
    "<=": lambda n: lambda v: v <= n,
    ">": lambda n: lambda v: v > n,
    ">=": lambda n: lambda v: v >= n,
}


def _cidr(arg: Any, path: str) -> Test:
    try:
        network = ipaddress.ip_network(arg, strict=False) if isinstance(arg, str) else None
    except ValueError:
        network = None
    if network is None:
        raise PatternError(path, f"cidr expects an IPv4 or IPv6 CIDR block like '10.0.0.0/24', got {arg!r}")

    def test(v: Any) -> bool:
        if type(v) is not str:
            return False
        try:
            address = ipaddress.ip_address(v)
        except ValueError:
            return False
        return address.version == network.version and address in network

    return test


def _check_finite(number: float, path: str, what: str) -> None:
    """Refuse NaN and infinities; an integer is always finite, however large (``math.isfinite`` would convert it
    to a float, which overflows past 1e308)."""
    if isinstance(number, float) and not math.isfinite(number):
        raise PatternError(path, f"{what} needs a finite number, got {number!r}")
