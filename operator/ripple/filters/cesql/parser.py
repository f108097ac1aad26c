"""A precedence-climbing parser for CESQL v1.

Precedence follows spec section 3.6, tightest first: function calls, unary ``NOT`` and ``-``, ``LIKE``,
``IN``, ``* / %``, ``+ -``, comparisons, then ``AND``/``OR``/``XOR`` together, all left to right. So
``NOT a = b`` reads ``(NOT a) = b`` and ``a OR b AND c`` reads ``(a OR b) AND c``, as the spec orders them.
Keywords and function names are case-insensitive; identifiers are read in lower case (attribute names are
lower case in CloudEvents). Function names and arities are checked here, so an unknown function fails at
compile time (missingFunction).
"""

from __future__ import annotations

import re

from .ast import (
    INT_MAX,
    MISSING_FUNCTION,
    PARSE,
    Attribute,
    Binary,
    Call,
    CesqlError,
    Exists,
    In,
    Like,
    Literal,
    Node,
    Unary,
)
from .functions import resolve
from .lexer import Token, tokenize

__all__ = ["parse"]

_LOGICAL, _COMPARISON, _ADDITIVE, _MULTIPLICATIVE, _IN, _LIKE = 1, 2, 3, 4, 5, 6
_BINARY = {
    "AND": _LOGICAL,
    "OR": _LOGICAL,
    "XOR": _LOGICAL,
    "=": _COMPARISON,
    "!=": _COMPARISON,
    "<>": _COMPARISON,
    "<": _COMPARISON,
    "<=": _COMPARISON,
    ">": _COMPARISON,
    ">=": _COMPARISON,
    "+": _ADDITIVE,
    "-": _ADDITIVE,
    "*": _MULTIPLICATIVE,
    "/": _MULTIPLICATIVE,
    "%": _MULTIPLICATIVE,
}
_KEYWORDS = frozenset({"AND", "OR", "XOR", "NOT", "LIKE", "IN", "EXISTS", "TRUE", "FALSE"})
_IDENTIFIER = re.compile(r"[A-Za-z0-9]+")
_FUNCTION_NAME = re.compile(r"[A-Za-z][A-Za-z_]*")
_MAX_DEPTH = 100
"""Deeper trees are refused as a parse error: compiling and evaluating recurse once per level."""


def parse(source: str) -> Node:
    parser = _Parser(tokenize(source))
    node = parser.expression(0)
    parser.expect("end")
    return node


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._i = 0
        self._depth = 0

    def peek(self, ahead: int = 0) -> Token:
        return self._tokens[min(self._i + ahead, len(self._tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self._i += 1
        return token

    def expect(self, kind: str) -> Token:
        token = self.take()
        if token.kind != kind:
            wanted = "end of expression" if kind == "end" else repr(kind)
            raise CesqlError(PARSE, token.pos, f"expected {wanted}, found {_describe(token)}")
        return token

    def expression(self, min_precedence: int) -> Node:
        entered = self._depth
        self._enter(self.peek())
        left = self.unary()
        while True:
            token = self.peek()
            op = token.text.upper() if token.kind == "word" else token.kind
            negated = op == "NOT" and _keyword(self.peek(1)) in ("LIKE", "IN")
            if negated:
                op = self.peek(1).text.upper()  # a word: its keyword is LIKE or IN
            precedence = {"LIKE": _LIKE, "IN": _IN}.get(op) or _BINARY.get(op)
            if precedence is None or precedence < min_precedence:
                break
            self._enter(token)  # each operator puts the tree built so far one level deeper
            self._i += 2 if negated else 1
            if op == "LIKE":
                left = Like(left, self._like_pattern(), negated)
            elif op == "IN":
                left = In(left, self._set(), negated)
            else:
                left = Binary(op, left, self.expression(precedence + 1))
        self._depth = entered
        return left

    def unary(self) -> Node:
        token = self.peek()
        if token.kind in ("-", "+") and self.peek(1).kind == "int":
            self._i += 1
            return self._integer(self.take(), negative=token.kind == "-")
        if token.kind == "-" or _keyword(token) == "NOT":
            self._i += 1
            self._enter(token)
            operand = self.unary()
            self._depth -= 1
            return Unary("-" if token.kind == "-" else "NOT", operand)
        return self.primary()

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "int":
            return self._integer(token, negative=False)
        if token.kind == "string":
            return Literal(str(token.value))
        if token.kind == "(":
            inner = self.expression(0)
            self.expect(")")
            return inner
        if token.kind != "word":
            raise CesqlError(PARSE, token.pos, f"unexpected {_describe(token)}")
        keyword = _keyword(token)
        if keyword in ("TRUE", "FALSE"):
            return Literal(keyword == "TRUE")
        if keyword == "EXISTS":
            return Exists(self._identifier(self.take()))
        if self.peek().kind == "(":
            return self._call(token)
        return Attribute(self._identifier(token))

    def _call(self, name: Token) -> Call:
        if _FUNCTION_NAME.fullmatch(name.text) is None:
            raise CesqlError(PARSE, name.pos, f"invalid function name {name.text!r}")
        self.expect("(")
        args: list[Node] = []
        if self.peek().kind != ")":
            args.append(self.expression(0))
            while self.peek().kind == ",":
                self._i += 1
                args.append(self.expression(0))
        self.expect(")")
        upper = name.text.upper()
        if resolve(upper, len(args)) is None:
            raise CesqlError(
                MISSING_FUNCTION, name.pos, f"no function {upper} taking {len(args)} argument(s)"
            )
        return Call(upper, tuple(args))

    def _set(self) -> tuple[Node, ...]:
        self.expect("(")
        items = [self.expression(0)]
        while self.peek().kind == ",":
            self._i += 1
            items.append(self.expression(0))
        self.expect(")")
        return tuple(items)

    def _like_pattern(self) -> str:
        token = self.take()
        if token.kind != "string":
            raise CesqlError(
                PARSE, token.pos, f"LIKE expects a string literal pattern, found {_describe(token)}"
            )
        return str(token.value)

    def _identifier(self, token: Token) -> str:
        if token.kind != "word" or _keyword(token) in _KEYWORDS or _IDENTIFIER.fullmatch(token.text) is None:
            raise CesqlError(PARSE, token.pos, f"expected an attribute name, found {_describe(token)}")
        return token.text.lower()

    def _integer(self, token: Token, negative: bool) -> Literal:
        value = -int(token.value) if negative else int(token.value)
        if not -INT_MAX - 1 <= value <= INT_MAX:
            raise CesqlError(PARSE, token.pos, f"integer literal {value} is outside the 32-bit range")
        return Literal(value)

    def _enter(self, token: Token) -> None:
        self._depth += 1
        if self._depth > _MAX_DEPTH:
            raise CesqlError(PARSE, token.pos, f"expression nested more than {_MAX_DEPTH} levels deep")


def _keyword(token: Token) -> str | None:
    return token.text.upper() if token.kind == "word" else None


def _describe(token: Token) -> str:
    if token.kind == "end":
        return "end of expression"
    return f"{token.text!r}"
