"""CESQL type casts (spec section 3.7): each returns the cast value, or the target's zero value and ``cast``.

Implicit Integer-to-Boolean casting is not done: the conformance kit expects ``NOT 10`` to fail with a cast
error, so only the explicit ``BOOL()`` function turns integers into booleans.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .ast import CAST, INT_MAX, INT_MIN, Value

__all__ = [
    "IMPLICIT",
    "ZERO",
    "Cast",
    "digits_value",
    "parse_int",
    "to_bool",
    "to_bool_explicit",
    "to_int",
    "to_str",
]

Cast = Callable[[Value], tuple[Value, str | None]]

_INTEGER = re.compile(r"[+-]?[0-9]+")
ZERO: dict[type, Value] = {bool: False, int: 0, str: ""}
_INT32_DIGITS = len(str(INT_MAX))


def digits_value(digits: str) -> int | None:
    """The value of a run of ASCII digits, or None when it has more significant digits than a 32-bit integer.

    Leading zeros are dropped before ``int()``, which counts them against its limit of 4300 digits (beyond it,
    :class:`ValueError`; ``sys.get_int_max_str_digits``), and longer text is out of range without converting it.
    """
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= _INT32_DIGITS else None


def parse_int(text: str) -> int | None:
    """A base-10, optionally signed, 32-bit integer; None for anything else (no spaces, no underscores)."""
    if _INTEGER.fullmatch(text) is None:
        return None
    magnitude = digits_value(text.lstrip("+-"))
    if magnitude is None:
        return None
    value = -magnitude if text.startswith("-") else magnitude
    return value if INT_MIN <= value <= INT_MAX else None


def to_str(value: Value) -> tuple[Value, str | None]:
    if type(value) is bool:
        return ("true" if value else "false"), None
    return str(value), None


def to_int(value: Value) -> tuple[Value, str | None]:
    kind = type(value)
    if kind is int:
        return value, None
    if kind is bool:
        return int(value), None
    parsed = parse_int(str(value))
    return (0, CAST) if parsed is None else (parsed, None)


def to_bool(value: Value) -> tuple[Value, str | None]:
    """Implicit cast to Boolean: booleans, and strings spelling true or false in any case."""
    kind = type(value)
    if kind is bool:
        return value, None
    if kind is str:
        lowered = str(value).lower()
        if lowered in ("true", "false"):
            return lowered == "true", None
    return False, CAST


def to_bool_explicit(value: Value) -> tuple[Value, str | None]:
    """``BOOL(x)``: the implicit cast, plus integers (zero is false)."""
    if type(value) is int:
        return value != 0, None
    return to_bool(value)


IMPLICIT: dict[type, Cast] = {bool: to_bool, int: to_int, str: to_str}
