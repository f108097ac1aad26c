"""CloudEvents SQL Expression Language (CESQL) v1: compile once, evaluate per event.

>>> expr = compile("type = 'order.created' AND INT(priority) > 3")
>>> expr.evaluate({"type": "order.created", "priority": "5"})
(True, None)

Evaluation returns ``(value, error)`` where ``error`` is None or one of the spec's error kinds; the value is
then the zero value the spec prescribes. Parse errors and calls to unknown functions (or with the wrong number
of arguments) are found at compile time and raise :class:`CesqlError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..constraints import Constraints
from . import analysis
from .ast import ERROR_KINDS, CesqlError, Node, Value
from .evaluator import build
from .parser import parse

__all__ = ["ERROR_KINDS", "CesqlError", "Expression", "compile"]


class Expression:
    """A compiled CESQL expression."""

    __slots__ = ("_run", "ast", "source")

    def __init__(self, source: str, ast: Node) -> None:
        self.source = source
        self.ast = ast
        self._run = build(ast)

    def evaluate(self, event: Mapping[str, Any]) -> tuple[Value, str | None]:
        """The expression's value for ``event`` (CloudEvents JSON form) and the first error, if any."""
        return self._run(event)

    def constraints(self) -> Constraints:
        """Attribute conditions that hold whenever the expression is true without error."""
        return analysis.constraints(self.ast)

    def __repr__(self) -> str:
        return f"cesql.compile({self.source!r})"


def compile(expression: str) -> Expression:
    """Parse and check ``expression``; raises :class:`CesqlError` (kind ``parse`` or ``missingFunction``)."""
    return Expression(expression, parse(expression))
