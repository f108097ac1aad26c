"""The CESQL built-in functions, resolved by name and arity when an expression is compiled.

Each implementation takes arguments already cast to its parameter types and returns ``(value, error)``; on
error the value is the one the spec prescribes (for instance ``LEFT('abc', -2)`` gives ``'abc'``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .ast import FUNCTION_EVALUATION, INT_MAX, INT_MIN, MATH, Value
from .casts import Cast, parse_int, to_bool, to_bool_explicit, to_int, to_str

__all__ = ["Function", "resolve"]

Result = tuple[Value, str | None]

_WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
"""Characters with the Unicode White_Space property: TRIM removes these and nothing else."""


def _keep(value: Value) -> Result:
    return value, None


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    params: tuple[Cast, ...]
    variadic: Cast | None
    """Cast for any arguments after ``params``; None when the arity is fixed."""
    returns: type
    impl: Callable[..., Result]

    def accepts(self, argc: int) -> bool:
        return argc == len(self.params) or (self.variadic is not None and argc > len(self.params))

    def casts(self, argc: int) -> list[Cast]:
        extra = [self.variadic] * (argc - len(self.params)) if self.variadic is not None else []
        return [*self.params, *extra]


def _left(text: str, n: int) -> Result:
    return (text, FUNCTION_EVALUATION) if n < 0 else (text[:n], None)


def _right(text: str, n: int) -> Result:
    if n < 0:
        return text, FUNCTION_EVALUATION
    return (text[-n:] if n else ""), None


def _substring(text: str, pos: int, length: int | None = None) -> Result:
    size = len(text)
    if pos > size or pos < -size or (length is not None and length < 0):
        return "", FUNCTION_EVALUATION
    if pos == 0:
        return "", None
    start = pos - 1 if pos > 0 else size + pos
    return (text[start:] if length is None else text[start : start + length]), None


def _abs(n: int) -> Result:
    return (INT_MAX, MATH) if n == INT_MIN else (abs(n), None)


def _fn(
    name: str, params: tuple[Cast, ...], returns: type, impl: Callable[..., Any], variadic: Cast | None = None
) -> Function:
    return Function(name, params, variadic, returns, impl)


_BUILTINS = (
    _fn("LENGTH", (to_str,), int, lambda s: (len(s), None)),
    _fn("CONCAT", (), str, lambda *xs: ("".join(xs), None), variadic=to_str),
    _fn("CONCAT_WS", (to_str,), str, lambda sep, *xs: (sep.join(xs), None), variadic=to_str),
    _fn("LOWER", (to_str,), str, lambda s: (s.lower(), None)),
    _fn("UPPER", (to_str,), str, lambda s: (s.upper(), None)),
    _fn("TRIM", (to_str,), str, lambda s: (s.strip(_WHITESPACE), None)),
    _fn("LEFT", (to_str, to_int), str, _left),
    _fn("RIGHT", (to_str, to_int), str, _right),
    _fn("SUBSTRING", (to_str, to_int), str, _substring),
    _fn("SUBSTRING", (to_str, to_int, to_int), str, _substring),
    _fn("ABS", (to_int,), int, _abs),
    _fn("INT", (_keep,), int, to_int),
    _fn("BOOL", (_keep,), bool, to_bool_explicit),
    _fn("STRING", (_keep,), str, to_str),
    _fn("IS_BOOL", (to_str,), bool, lambda s: (to_bool(s)[1] is None, None)),
    _fn("IS_INT", (to_str,), bool, lambda s: (parse_int(s) is not None, None)),
)


def resolve(name: str, argc: int) -> Function | None:
    """The built-in called ``name`` (upper case) that takes ``argc`` arguments, if any."""
    return next((f for f in _BUILTINS if f.name == name and f.accepts(argc)), None)
