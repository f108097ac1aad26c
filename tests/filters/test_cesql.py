"""CESQL behaviour beyond the conformance kit: syntax corners, casts, functions, errors, constraints."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ripple.filters import cesql
from ripple.filters.constraints import OneOf, StartsWith

EVENT = {
    "specversion": "1.0",
    "id": "42",
    "source": "https://shop.example/orders",
    "type": "order.created",
    "subject": "eu/orders/42",
    "priority": 5,
    "express": True,
    "count": "07",
}


def evaluate(expression: str, event: dict[str, Any] | None = None) -> tuple[Any, str | None]:
    return cesql.compile(expression).evaluate(EVENT if event is None else event)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("type = 'order.created' and priority > 3", True),
        ("TYPE = 'order.created'", True),
        ("lower('ABC') = 'abc'", True),
        ("priority IN (1, 5, 9)", True),
        ("priority NOT IN (1, 9)", True),
        ("type IN ('a', 'b')", False),
        ("count = 7", True),
        ("count = '7'", False),
        ("express = 'true'", True),
        ("express = 'TRUE'", False),
        ("'TRUE' = express", True),
        ("subject LIKE 'eu/%/42'", True),
        ("subject NOT LIKE 'us/%'", True),
        ("concat_ws('/', 'eu', 'orders', id) = subject", True),
        ("substring(subject, -2) = '42'", True),
        ("exists subject and not exists nothing", True),
        ("int('-12') + 2", -10),
        ("string(true)", "true"),
        ("bool(0)", False),
        ("bool('FALSE')", False),
        ("is_bool('False')", True),
        ("is_int(' 5')", False),
        ("is_int('+5')", True),
        ("-7 / 2", -3),
        ("-7 % 2", -1),
        ("7 % -2", 1),
        ("'it''s' = \"it's\"", True),
        ("length(trim('\u2003abc\u00a0'))", 3),
        ("+5 - -5", 10),
        ("4 -1", 3),
    ],
)
def test_evaluates(expression: str, expected: Any) -> None:
    assert evaluate(expression) == (expected, None)


def test_logical_operators_share_one_precedence_and_group_left_to_right() -> None:
    """Spec 3.6 lists AND, OR and XOR at one level, evaluated left to right."""
    assert evaluate("TRUE OR TRUE AND FALSE") == (False, None)
    assert evaluate("FALSE AND TRUE OR TRUE") == (True, None)


def test_unary_operators_bind_tighter_than_comparisons() -> None:
    assert evaluate("NOT FALSE = FALSE") == (False, None)  # (NOT FALSE) = FALSE
    assert evaluate("-2 * 3") == (-6, None)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2147483647 + 1", (0, "math")),
        ("-2147483648 - 1", (0, "math")),
        ("65536 * 65536", (0, "math")),
        ("-2147483648 / -1", (0, "math")),
        ("-(-2147483648)", (0, "math")),
        ("'abc' + 1", (1, "cast")),
        ("INT('2147483648')", (0, "cast")),
        ("LENGTH(missing)", (0, "missingAttribute")),
        ("missing AND TRUE", (False, "missingAttribute")),
        ("FALSE AND missing", (False, None)),
        ("priority IN ('x', 5)", (True, "cast")),
    ],
)
def test_reports_errors_with_zero_values(expression: str, expected: tuple[Any, str]) -> None:
    assert evaluate(expression) == expected


def test_data_is_not_an_attribute() -> None:
    assert evaluate("data = 'x'", {**EVENT, "data": "x"}) == (False, "missingAttribute")
    assert evaluate("EXISTS data", {**EVENT, "data": "x"}) == (False, None)


def test_non_primitive_attribute_values_read_as_strings() -> None:
    event = {**EVENT, "big": 2**40, "ratio": 0.5}
    assert evaluate("big = '1099511627776' AND ratio = '0.5'", event) == (True, None)


@pytest.mark.parametrize(
    ("expression", "position", "detail"),
    [
        ("type = ", 8, "unexpected end of expression"),
        ("type == 'a'", 7, "unexpected '='"),
        ("'abc", 1, "unterminated string literal"),
        ("type ~ 'a'", 6, "unexpected character '~'"),
        ("subject LIKE type", 14, "LIKE expects a string literal pattern"),
        ("2147483648 > 1", 1, "outside the 32-bit range"),
        ("a b", 3, "expected end of expression"),
        ("EXISTS 'x'", 8, "expected an attribute name"),
        ("my_ext = 1", 1, "expected an attribute name"),
        ("x IN ()", 7, "unexpected ')'"),
    ],
)
def test_parse_errors_name_the_position(expression: str, position: int, detail: str) -> None:
    with pytest.raises(cesql.CesqlError) as caught:
        cesql.compile(expression)

    assert caught.value.kind == "parse"
    assert caught.value.position == position
    assert detail in caught.value.detail
    assert str(caught.value).startswith(f"parse error at position {position}: ")


@pytest.mark.parametrize(
    "expression",
    ["(" * 101 + "1" + ")" * 101, "NOT " * 101 + "TRUE", " OR ".join(["x = 1"] * 101), "1" + " + 1" * 101],
)
def test_trees_deeper_than_100_levels_are_refused(expression: str) -> None:
    """Compiling and evaluating recurse once per level, so the depth is bounded before the stack is."""
    with pytest.raises(cesql.CesqlError, match="nested more than 100 levels deep") as caught:
        cesql.compile(expression)

    assert caught.value.kind == "parse"
    assert cesql.compile(" OR ".join(["x = 1"] * 90)).evaluate({"x": 1}) == (True, None)


@pytest.mark.parametrize("expression", ["NOPE(1)", "LENGTH('a', 'b')", "SUBSTRING('a')", "ABS()"])
def test_unknown_functions_and_arities_fail_at_compile_time(expression: str) -> None:
    with pytest.raises(cesql.CesqlError) as caught:
        cesql.compile(expression)

    assert caught.value.kind == "missingFunction"
    assert caught.value.position == 1


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("type = 'a'", {"type": OneOf(frozenset({"a"}))}),
        ("type = 'a' AND source = 's'", {"type": OneOf(frozenset({"a"})), "source": OneOf(frozenset({"s"}))}),
        ("type = 'a' OR type = 'b'", {"type": OneOf(frozenset({"a", "b"}))}),
        ("type IN ('a', 'b')", {"type": OneOf(frozenset({"a", "b"}))}),
        ("subject LIKE 'eu/%'", {"subject": StartsWith("eu/")}),
        ("subject LIKE 'eu\\_x'", {"subject": OneOf(frozenset({"eu_x"}))}),
        ("type = 'a' OR source = 's'", {}),
        ("'a' = type", {}),
        ("type = 1", {}),
        ("NOT type = 'a'", {}),
        ("n IN ('5', '05')", {}),
        ("flag IN ('TRUE')", {}),
    ],
)
def test_constraints_only_claim_what_every_true_result_implies(
    expression: str, expected: dict[str, Any]
) -> None:
    assert dict(cesql.compile(expression).constraints()) == expected


def test_integer_literals_of_more_digits_than_int_reads_are_parse_errors() -> None:
    """``int()`` refuses more than 4300 digits with a ValueError (tests/fuzz/corpus/cesql/regression-long-literal)."""
    with pytest.raises(cesql.CesqlError) as caught:
        cesql.compile("priority = " + "9" * 5000)

    assert caught.value.kind == "parse"
    assert caught.value.position == 12
    assert caught.value.detail == "integer literal 9999999999999999… (5000 digits) is outside the 32-bit range"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0" * 5000 + "7 = 7", (True, None)),
        ("INT('" + "0" * 5000 + "7') = 7", (True, None)),
        ("INT('-" + "0" * 5000 + "7')", (-7, None)),
        ("INT('" + "9" * 5000 + "')", (0, "cast")),
        ("IS_INT('" + "1" * 5000 + "')", (False, None)),
        ("'" + "1" * 5000 + "' = 1", (False, "cast")),
        ("INT('00002147483647') = 2147483647 AND NOT IS_INT('02147483648')", (True, None)),
    ],
)
def test_digit_runs_past_the_int_conversion_limit_read_as_integers_or_cast_errors(
    expression: str, expected: tuple[Any, str | None]
) -> None:
    """Casting text longer than 4300 digits raised ValueError when evaluated, for every event
    (tests/fuzz/corpus/cesql/regression-long-cast)."""
    assert evaluate(expression) == expected


def test_like_with_many_wildcards_is_linear_not_a_regex_that_backtracks():
    """Found by fuzzing: a LIKE pattern of many ``%`` compiled to a regular expression of ``.*`` runs took seconds
    (exponential backtracking) on a value that does not match, stalling whoever evaluates it."""
    from ripple.filters.cesql.evaluator import like_pattern
    from ripple.filters.wildcards import matches as like_matches

    pattern = like_pattern("c" + "%a" * 40 + "%b")  # as a regular expression, this ran for hours on the first text
    assert not like_matches(pattern, "c" + "a" * 5000)
    assert like_matches(pattern, "c" + "a" * 5000 + "b")
    assert like_pattern("a%%%%b") == like_pattern("a%b")


@given(st.text(alphabet="ab%_\\", max_size=8), st.text(alphabet="ab%_\\", max_size=10))
def test_like_matches_as_the_regular_expression_it_replaces(pattern: str, text: str):
    import re

    from ripple.filters.cesql.evaluator import like_pattern
    from ripple.filters.wildcards import matches as like_matches

    parts, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_\\":
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    expected = re.compile("".join(parts), re.DOTALL).fullmatch(text) is not None
    assert like_matches(like_pattern(pattern), text) == expected
