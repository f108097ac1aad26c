"""What a CESQL expression requires of attributes whenever it evaluates to true without error.

Only shapes whose meaning does not depend on the attribute's runtime type are used: ``attr = 'text'`` (the
left operand is cast to String, which renders like :func:`~ripple.filters.attributes.to_text`), ``attr LIKE
'...'`` and ``attr IN ('a', ...)`` with members that no Integer or Boolean cast could read differently.
Anything else constrains nothing, which is always sound.
"""

from __future__ import annotations

from ..constraints import NONE, Constraints, OneOf, conjoin, disjoin, exactly, starting
from .ast import Attribute, Binary, In, Like, Literal, Node
from .casts import parse_int

__all__ = ["constraints"]


def constraints(node: Node) -> Constraints:
    match node:
        case Binary("AND", left, right):
            return conjoin((constraints(left), constraints(right)))
        case Binary("OR", left, right):
            return disjoin((constraints(left), constraints(right)))
        case Binary("=", Attribute(name), Literal(str() as text)):
            return exactly(name, text)
        case Like(Attribute(name), pattern, False):
            return _like(name, pattern)
        case In(Attribute(name), items, False):
            texts = [item.value for item in items if isinstance(item, Literal) and type(item.value) is str]
            if len(texts) == len(items) and all(_canonical(str(text)) for text in texts):
                return {name: OneOf(frozenset(str(text) for text in texts))}
    return NONE


def _like(name: str, pattern: str) -> Constraints:
    """The literal text before the first wildcard; the whole pattern when it has none."""
    prefix: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_\\":
            prefix.append(pattern[i + 1])
            i += 2
        elif c in "%_":
            return starting(name, "".join(prefix))
        else:
            prefix.append(c)
            i += 1
    return exactly(name, "".join(prefix))


def _canonical(text: str) -> bool:
    """True when casting ``text`` to Integer or Boolean and back would give ``text`` again.

    ``IN`` casts its members to the attribute's type, so ``'05'`` matches an integer attribute 5, whose text
    is ``'5'``; such members cannot be used as index values.
    """
    number = parse_int(text)
    if number is not None:
        return str(number) == text
    if text.lower() in ("true", "false"):
        return text in ("true", "false")
    return True
