"""Turns CESQL source into tokens.

Words (identifiers, keywords, function names) are runs of ASCII letters, digits and underscores; the parser
tells them apart. Signs are separate tokens: the parser folds ``-`` into a following integer literal so that
``-2147483648`` stays in range.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from .ast import PARSE, CesqlError
from .casts import digits_value

__all__ = ["Token", "tokenize"]

_WORD_CHARS = frozenset(string.ascii_letters + string.digits + "_")
_SPACE = frozenset(" \t\r\n")
_OPERATORS = ("!=", "<>", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",")


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    """``int``, ``string``, ``word``, ``end``, or the operator/punctuation text itself."""
    text: str
    value: int | str
    pos: int
    """1-based position of the token's first character."""


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c in _SPACE:
            i += 1
        elif c in _WORD_CHARS:
            j = i
            while j < n and source[j] in _WORD_CHARS:
                j += 1
            word = source[i:j]
            kind = "int" if word.isdigit() else "word"
            value = digits_value(word) if kind == "int" else word
            if value is None:
                shown = word if len(word) <= 16 else f"{word[:16]}… ({len(word)} digits)"
                raise CesqlError(PARSE, i + 1, f"integer literal {shown} is outside the 32-bit range")
            tokens.append(Token(kind, word, value, i + 1))
            i = j
        elif c in "'\"":
            value, j = _string(source, i)
            tokens.append(Token("string", source[i:j], value, i + 1))
            i = j
        else:
            op = next((op for op in _OPERATORS if source.startswith(op, i)), None)
            if op is None:
                raise CesqlError(PARSE, i + 1, f"unexpected character {c!r}")
            tokens.append(Token(op, op, op, i + 1))
            i += len(op)
    tokens.append(Token("end", "", "", n + 1))
    return tokens


def _string(source: str, start: int) -> tuple[str, int]:
    r"""Read the literal opening at ``start``; return its value and the index after its closing quote.

    ``\`` escapes the next character: an escaped quote of the literal's own kind stands for the quote, any
    other pair is kept as written (so LIKE patterns keep their ``\%`` and ``\_``). A doubled quote also stands
    for one.
    """
    quote = source[start]
    out: list[str] = []
    i, n = start + 1, len(source)
    while i < n:
        c = source[i]
        if c == "\\" and i + 1 < n:
            nxt = source[i + 1]
            out.append(nxt if nxt == quote else c + nxt)
            i += 2
        elif c == quote:
            if i + 1 < n and source[i + 1] == quote:
                out.append(quote)
                i += 2
            else:
                return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise CesqlError(PARSE, start + 1, "unterminated string literal")
