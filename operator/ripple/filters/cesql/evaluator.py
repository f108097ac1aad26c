"""Turns a CESQL syntax tree into nested closures that evaluate it against an event.

Every closure returns ``(value, error)``. Error rules, as the spec and its conformance kit set them:

* an operand that failed makes its operator return the operator's zero value with the operand's error (so
  ``missing = 2`` is ``false`` and ``1 / missing`` is ``0``, both with missingAttribute, not a math error);
* a cast that fails inside an operator yields the target's zero value, the operator still runs and the cast
  error is reported (``NOT 10`` is ``true`` with a cast error);
* ``AND`` and ``OR`` do not evaluate their right operand once the left one decides the result.

Compiling to closures instead of walking the tree per event keeps per-event cost to plain function calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..attributes import NOT_ATTRIBUTES, to_text
from ..wildcards import ANY_ONE, ANY_RUN, Wildcard, matches
from .ast import (
    INT_MAX,
    INT_MIN,
    MATH,
    MISSING_ATTRIBUTE,
    Attribute,
    Binary,
    Call,
    Exists,
    In,
    Like,
    Literal,
    Node,
    Unary,
    Value,
)
from .casts import IMPLICIT, ZERO, to_bool, to_int, to_str
from .functions import resolve

__all__ = ["build", "like_pattern"]

Result = tuple[Value, str | None]
Evaluate = Callable[[Mapping[str, Any]], Result]

_REQUIRED = frozenset({"specversion", "id", "source", "type"})
_MISSING: Result = (False, MISSING_ATTRIBUTE)


def build(node: Node) -> Evaluate:
    match node:
        case Literal(value):
            constant: Result = (value, None)
            return lambda event: constant
        case Attribute(name):
            return _attribute(name)
        case Exists(name):
            return _exists(name)
        case Unary("NOT", operand):
            return _not(build(operand))
        case Unary(_, operand):
            return _negate(build(operand))
        case Binary("AND" | "OR" as op, left, right):
            return _short_circuit(op == "OR", build(left), build(right))
        case Binary("XOR", left, right):
            return _xor(build(left), build(right))
        case Binary("=" | "!=" | "<>" as op, left, right):
            return _equality(op != "=", build(left), build(right))
        case Binary(op, left, right) if op in _ORDERINGS:
            return _integers(_ORDERINGS[op], False, build(left), build(right))
        case Binary(op, left, right):
            return _integers(_ARITHMETIC[op], 0, build(left), build(right))
        case Like(operand, pattern, negated):
            return _like(build(operand), like_pattern(pattern), negated)
        case In(operand, items, negated):
            return _in(build(operand), [build(item) for item in items], negated)
        case Call(name, args):
            return _call(name, [build(arg) for arg in args])
    raise AssertionError(f"unknown node {node!r}")


def like_pattern(pattern: str) -> Wildcard:
    r"""``%`` is any run of characters, ``_`` one; ``\`` before ``%``, ``_`` or ``\`` makes it literal. Runs of
    ``%`` are one: they match the same."""
    tokens: list[object] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_\\":
            tokens.append(pattern[i + 1])
            i += 2
            continue
        token = ANY_RUN if c == "%" else ANY_ONE if c == "_" else c
        if not (token is ANY_RUN and tokens and tokens[-1] is ANY_RUN):
            tokens.append(token)
        i += 1
    return tuple(tokens)


def _attribute(name: str) -> Evaluate:
    if name in NOT_ATTRIBUTES:
        return lambda event: _MISSING

    def run(event: Mapping[str, Any]) -> Result:
        value: Any = event.get(name)
        kind = type(value)
        if kind is str or kind is bool:
            return value, None
        if kind is int:
            return (value, None) if INT_MIN <= value <= INT_MAX else (str(value), None)
        text = None if value is None else to_text(value)
        return _MISSING if text is None else (text, None)

    return run


def _exists(name: str) -> Evaluate:
    if name in _REQUIRED:
        # The spec assumes a valid event, so its required attributes always exist.
        return lambda event: (True, None)
    if name in NOT_ATTRIBUTES:
        return lambda event: (False, None)
    return lambda event: (event.get(name) is not None, None)


def _not(operand: Evaluate) -> Evaluate:
    def run(event: Mapping[str, Any]) -> Result:
        value, error = operand(event)
        if error:
            return False, error
        flag, error = to_bool(value)
        return not flag, error

    return run


def _negate(operand: Evaluate) -> Evaluate:
    def run(event: Mapping[str, Any]) -> Result:
        value, error = operand(event)
        if error:
            return 0, error
        number, error = to_int(value)
        if number == INT_MIN:
            return 0, error or MATH
        return -int(number), error

    return run


def _short_circuit(is_or: bool, left: Evaluate, right: Evaluate) -> Evaluate:
    def run(event: Mapping[str, Any]) -> Result:
        value, error = left(event)
        if error:
            return False, error
        flag, cast_error = to_bool(value)
        if flag == is_or:
            return flag, cast_error
        value, error = right(event)
        if error:
            return False, cast_error or error
        flag, error = to_bool(value)
        return flag, cast_error or error

    return run


def _xor(left: Evaluate, right: Evaluate) -> Evaluate:
    def run(event: Mapping[str, Any]) -> Result:
        a, error = left(event)
        if error:
            return False, error
        b, error = right(event)
        if error:
            return False, error
        a, e1 = to_bool(a)
        b, e2 = to_bool(b)
        return a != b, e1 or e2

    return run


def _equality(negate: bool, left: Evaluate, right: Evaluate) -> Evaluate:
    """``=`` is defined for each type: the left operand is cast to the right one's type (spec 3.7)."""

    def run(event: Mapping[str, Any]) -> Result:
        a, error = left(event)
        if error:
            return False, error
        b, error = right(event)
        if error:
            return False, error
        if type(a) is not type(b):
            a, error = IMPLICIT[type(b)](a)
        return (a == b) != negate, error

    return run


def _integers(
    compute: Callable[[int, int], Result], zero: Value, left: Evaluate, right: Evaluate
) -> Evaluate:
    def run(event: Mapping[str, Any]) -> Result:
        a, error = left(event)
        if error:
            return zero, error
        b, error = right(event)
        if error:
            return zero, error
        a, e1 = to_int(a)
        b, e2 = to_int(b)
        value, e3 = compute(int(a), int(b))
        return value, e1 or e2 or e3

    return run


def _checked(value: int) -> Result:
    return (value, None) if INT_MIN <= value <= INT_MAX else (0, MATH)


def _divide(a: int, b: int) -> Result:
    if b == 0:
        return 0, MATH
    quotient = abs(a) // abs(b)
    return _checked(quotient if (a < 0) == (b < 0) else -quotient)


def _modulo(a: int, b: int) -> Result:
    if b == 0:
        return 0, MATH
    remainder = abs(a) % abs(b)
    return (-remainder if a < 0 else remainder), None


_ARITHMETIC: dict[str, Callable[[int, int], Result]] = {
    "+": lambda a, b: _checked(a + b),
    "-": lambda a, b: _checked(a - b),
    "*": lambda a, b: _checked(a * b),
    "/": _divide,
    "%": _modulo,
}
_ORDERINGS: dict[str, Callable[[int, int], Result]] = {
    "<": lambda a, b: (a < b, None),
    "<=": lambda a, b: (a <= b, None),
    ">": lambda a, b: (a > b, None),
    ">=": lambda a, b: (a >= b, None),
}


def _like(operand: Evaluate, pattern: Wildcard, negated: bool) -> Evaluate:
    def run(event: Mapping[str, Any]) -> Result:
        value, error = operand(event)
        if error:
            return False, error
        text, _ = to_str(value)
        return matches(pattern, str(text)) != negated, None

    return run


def _in(operand: Evaluate, items: list[Evaluate], negated: bool) -> Evaluate:
    """Set members are cast to the left operand's type, then compared as with ``=``."""

    def run(event: Mapping[str, Any]) -> Result:
        value, error = operand(event)
        if error:
            return False, error
        cast = IMPLICIT[type(value)]
        cast_error = None
        for item in items:
            member, error = item(event)
            if error:
                return False, error
            if type(member) is not type(value):
                member, error = cast(member)
                cast_error = cast_error or error
            if member == value:
                return not negated, cast_error
        return negated, cast_error

    return run


def _call(name: str, args: list[Evaluate]) -> Evaluate:
    function = resolve(name, len(args))
    assert function is not None, "the parser resolves every call"
    casts = function.casts(len(args))
    zero = ZERO[function.returns]
    impl = function.impl

    def run(event: Mapping[str, Any]) -> Result:
        values: list[Value] = []
        cast_error = None
        for arg, cast in zip(args, casts, strict=True):
            value, error = arg(event)
            if error:
                return zero, error
            value, error = cast(value)
            cast_error = cast_error or error
            values.append(value)
        value, error = impl(*values)
        return value, cast_error or error

    return run
