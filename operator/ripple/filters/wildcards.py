"""Wildcard matching in linear space and at most len(text) x len(pattern) steps, for CESQL's ``LIKE`` and the
event patterns' ``wildcard``.

Both used to compile to a regular expression of ``.*`` runs, which backtracks exponentially (polynomially with
the number of stars, at best) on text that does not match: one Trigger's filter could stall the dispatcher, one
EventPolicy's the ingress. This is the classic two-pointer match that only ever returns to the last star.
"""

from __future__ import annotations

__all__ = ["ANY_ONE", "ANY_RUN", "Wildcard", "matches"]

ANY_RUN, ANY_ONE = object(), object()
Wildcard = tuple[object, ...]
"""A pattern as tokens: :data:`ANY_RUN` (any run of characters, maybe none), :data:`ANY_ONE` (one character), or
a literal character (a one-character ``str``)."""


def matches(pattern: Wildcard, text: str) -> bool:
    """Whether all of ``text`` matches ``pattern``."""
    t = p = 0
    star, resume = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] is not ANY_RUN and (pattern[p] is ANY_ONE or pattern[p] == text[t]):
            t, p = t + 1, p + 1
        elif p < len(pattern) and pattern[p] is ANY_RUN:
            star, resume, p = p, t, p + 1
        elif star >= 0:  # the last star takes one more character, and matching goes on from there
            resume += 1
            t, p = resume, star + 1
        else:
            return False
    while p < len(pattern) and pattern[p] is ANY_RUN:
        p += 1
    return p == len(pattern)
