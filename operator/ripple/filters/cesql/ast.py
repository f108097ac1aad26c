"""The syntax tree of a CESQL expression, kept after compiling so filters can be analysed for indexing."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CAST",
    "ERROR_KINDS",
    "FUNCTION_EVALUATION",
    "INT_MAX",
    "INT_MIN",
    "MATH",
    "MISSING_ATTRIBUTE",
    "MISSING_FUNCTION",
    "PARSE",
    "Attribute",
    "Binary",
    "Call",
    "CesqlError",
    "Exists",
    "In",
    "Like",
    "Literal",
    "Node",
    "Unary",
    "Value",
]

Value = bool | int | str
"""A CESQL value: Boolean, 32-bit Integer or String (Python ``bool`` is checked before ``int`` throughout)."""

PARSE = "parse"
MATH = "math"
CAST = "cast"
MISSING_FUNCTION = "missingFunction"
FUNCTION_EVALUATION = "functionEvaluation"
MISSING_ATTRIBUTE = "missingAttribute"
GENERIC = "generic"
ERROR_KINDS = frozenset(
    {PARSE, MATH, CAST, MISSING_FUNCTION, FUNCTION_EVALUATION, MISSING_ATTRIBUTE, GENERIC}
)

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1


class CesqlError(ValueError):
    """An expression that cannot be compiled; ``kind`` is ``parse`` or ``missingFunction``."""

    def __init__(self, kind: str, position: int, detail: str) -> None:
        super().__init__(f"{kind} error at position {position}: {detail}")
        self.kind = kind
        self.position = position
        """1-based character position in the expression."""
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Literal:
    value: Value


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str


@dataclass(frozen=True, slots=True)
class Exists:
    name: str


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    """``NOT`` or ``-``."""
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    """``AND OR XOR = != <> < <= > >= + - * / %`` (``!=`` and ``<>`` are kept apart only for display)."""
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Like:
    operand: Node
    pattern: str
    negated: bool


@dataclass(frozen=True, slots=True)
class In:
    operand: Node
    items: tuple[Node, ...]
    negated: bool


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    """Upper-cased function name, resolved against the built-ins at compile time."""
    args: tuple[Node, ...]


Node = Literal | Attribute | Exists | Unary | Binary | Like | In | Call
