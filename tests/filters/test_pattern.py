"""EventBridge-style patterns: every operator, array handling, ``$or``, and every malformed-pattern error."""

from __future__ import annotations

from typing import Any

import pytest

from ripple.filters import pattern
from ripple.filters.constraints import OneOf, StartsWith

EVENT = {
    "specversion": "1.0",
    "id": "7",
    "type": "com.example.file.uploaded",
    "source": "https://files.example/eu",
    "subject": "dir/photos/Cat.PNG",
    "data": {
        "name": "Cat.PNG",
        "path": "/srv/lib/cat.png",
        "size": 2048,
        "ratio": 0.75,
        "public": True,
        "owner": None,
        "note": "",
        "ip": "10.0.0.33",
        "ip6": "2001:db8::7",
        "tags": ["pets", "cats"],
        "meta": {"camera": "x100"},
        "empty": [],
        "versions": [{"n": 1, "state": "draft"}, {"n": 2, "state": "final"}],
        "matrix": [[1, 2], [3, [4]]],
    },
}


def matches(spec: dict[str, Any], event: dict[str, Any] = EVENT) -> bool:
    return pattern.compile(spec).matches(event)


def data(field: str, *alternatives: Any) -> dict[str, Any]:
    return {"data": {field: list(alternatives)}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": ["com.example.file.uploaded"]}, True),
        ({"type": ["a", "com.example.file.uploaded"]}, True),
        ({"type": ["com.example.file.uploaded"], "source": ["elsewhere"]}, False),
        (data("size", 2048), True),
        (data("size", 2048.0), True),
        (data("size", "2048"), False),
        (data("ratio", 0.75), True),
        (data("public", True), True),
        (data("public", 1), False),
        (data("owner", None), True),
        (data("owner", "null"), False),
        (data("note", ""), True),
        (data("name", "cat.png"), False),
        (data("missing", "x"), False),
        ({"data": {"meta": {"camera": ["x100"]}}}, True),
        ({"data": {"meta": {"lens": ["x"]}}}, False),
    ],
)
def test_exact_values_are_type_strict(spec: dict[str, Any], expected: bool) -> None:
    assert matches(spec) is expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (data("tags", "cats"), True),
        (data("tags", "dogs"), False),
        (data("matrix", 4), True),
        (data("matrix", {"numeric": [">", 3]}), True),
        ({"data": {"versions": {"n": [2], "state": ["final"]}}}, True),
        ({"data": {"versions": {"n": [1], "state": ["final"]}}}, False),
        (data("empty", {"exists": True}), False),
        (data("empty", {"exists": False}), True),
    ],
)
def test_arrays_match_when_any_element_does(spec: dict[str, Any], expected: bool) -> None:
    assert matches(spec) is expected


@pytest.mark.parametrize(
    ("operator", "field", "expected"),
    [
        ({"prefix": "Cat"}, "name", True),
        ({"prefix": "cat"}, "name", False),
        ({"prefix": {"equals-ignore-case": "cAT."}}, "name", True),
        ({"prefix": "20"}, "size", False),
        ({"suffix": ".PNG"}, "name", True),
        ({"suffix": ".png"}, "name", False),
        ({"suffix": {"equals-ignore-case": ".png"}}, "name", True),
        ({"equals-ignore-case": "cat.png"}, "name", True),
        ({"equals-ignore-case": "cat"}, "name", False),
        ({"wildcard": "*/lib/*.png"}, "path", True),
        ({"wildcard": "*/LIB/*"}, "path", False),
        ({"wildcard": "/srv/*"}, "path", True),
        ({"wildcard": "*.png"}, "size", False),
        ({"anything-but": "Dog.PNG"}, "name", True),
        ({"anything-but": "Cat.PNG"}, "name", False),
        ({"anything-but": ["a", "Cat.PNG"]}, "name", False),
        ({"anything-but": 2048}, "size", False),
        ({"anything-but": [1, 2]}, "size", True),
        ({"anything-but": "2048"}, "size", True),
        ({"anything-but": {"prefix": "Cat"}}, "name", False),
        ({"anything-but": {"prefix": "Dog"}}, "name", True),
        ({"anything-but": {"suffix": ".PNG"}}, "name", False),
        ({"anything-but": {"equals-ignore-case": "CAT.png"}}, "name", False),
        ({"anything-but": {"equals-ignore-case": ["dog.png", "bird.png"]}}, "name", True),
        ({"anything-but": {"wildcard": "*/lib/*"}}, "path", False),
        ({"anything-but": {"wildcard": ["*/bin/*", "*/etc/*"]}}, "path", True),
        ({"anything-but": "x"}, "missing", False),
        ({"numeric": ["=", 2048]}, "size", True),
        ({"numeric": ["=", 2.048e3]}, "size", True),
        ({"numeric": ["<", 2048]}, "size", False),
        ({"numeric": ["<=", 2048]}, "size", True),
        ({"numeric": [">", 2047.5]}, "size", True),
        ({"numeric": [">=", 2049]}, "size", False),
        ({"numeric": [">", 0, "<=", 1]}, "ratio", True),
        ({"numeric": ["<", 1, ">=", 0.8]}, "ratio", False),
        ({"numeric": [">", 0]}, "name", False),
        ({"numeric": [">", 0]}, "public", False),
        ({"exists": True}, "owner", True),
        ({"exists": True}, "missing", False),
        ({"exists": False}, "missing", True),
        ({"exists": False}, "size", False),
        ({"exists": True}, "meta", False),
        ({"exists": False}, "meta", True),
        ({"cidr": "10.0.0.0/24"}, "ip", True),
        ({"cidr": "10.0.1.0/24"}, "ip", False),
        ({"cidr": "2001:db8::/32"}, "ip6", True),
        ({"cidr": "2001:db8::/32"}, "ip", False),
        ({"cidr": "10.0.0.0/8"}, "name", False),
    ],
)
def test_operators(operator: dict[str, Any], field: str, expected: bool) -> None:
    assert matches(data(field, operator)) is expected


def test_wildcard_escapes() -> None:
    assert matches(data("v", {"wildcard": "a\\*b*"}), {"data": {"v": "a*bc"}})
    assert not matches(data("v", {"wildcard": "a\\*b*"}), {"data": {"v": "axbc"}})
    assert matches(data("v", {"wildcard": "c:\\\\*"}), {"data": {"v": "c:\\temp"}})


def test_patterns_nest_at_most_64_objects_deep() -> None:
    spec: dict[str, Any] = {"leaf": ["x"]}
    for _ in range(64):
        spec = {"a": spec}

    with pytest.raises(pattern.PatternError, match="nest at most 64 objects deep") as caught:
        pattern.compile(spec)
    assert caught.value.path == ".".join(["a"] * 64)
    assert pattern.compile(spec["a"]).matches({}) is False


def test_deeply_nested_event_arrays_are_flattened() -> None:
    nested: Any = "deep"
    for _ in range(5000):
        nested = [nested]
    assert matches(data("v", "deep"), {"data": {"v": nested}})


def test_exists_false_holds_when_a_parent_is_missing() -> None:
    assert matches({"data": {"meta": {"lens": [{"exists": False}]}}})
    assert matches({"nothing": {"deeper": [{"exists": False}]}})


def test_alternatives_are_ored_and_fields_anded() -> None:
    spec = {
        "type": [{"prefix": "org."}, {"suffix": ".uploaded"}],
        "data": {"size": [{"numeric": [">", 1000]}]},
    }
    assert matches(spec)
    assert not matches({**spec, "subject": [{"prefix": "tmp/"}]})


def test_or_combines_whole_sub_patterns() -> None:
    spec = {
        "source": [{"prefix": "https://files.example/"}],
        "$or": [{"data": {"size": [{"numeric": [">", 1_000_000]}]}}, {"data": {"public": [True]}}],
    }
    assert matches(spec)
    assert not matches(spec, {**EVENT, "data": {**EVENT["data"], "public": False}})
    nested = {"data": {"$or": [{"name": ["x"]}, {"meta": {"camera": ["x100"]}}]}}
    assert matches(nested)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": ["a", "b"]}, {"type": OneOf(frozenset({"a", "b"}))}),
        ({"type": ["com.x.a", {"prefix": "com.x."}]}, {"type": StartsWith("com.x.")}),
        ({"type": ["a", {"suffix": "b"}]}, {}),
        ({"type": [{"prefix": ""}]}, {}),
        ({"type": ["a"], "data": {"type": ["b"]}}, {"type": OneOf(frozenset({"a"}))}),
        ({"data": ["x"]}, {}),
        (
            {"$or": [{"type": ["a"]}, {"type": ["b"], "source": ["s"]}]},
            {"type": OneOf(frozenset({"a", "b"}))},
        ),
        ({"$or": [{"type": ["a"]}, {"source": ["s"]}]}, {}),
    ],
)
def test_constraints_cover_top_level_string_alternatives(
    spec: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert dict(pattern.compile(spec).constraints()) == expected


MALFORMED = [
    (["type"], "", "a pattern must be an object"),
    ({}, "", "expected a non-empty object"),
    ({"data": {}}, "data", "expected a non-empty object"),
    ({1: ["a"]}, "", "field names must be strings"),
    ({"type": "a"}, "type", "expected a list of values or a nested object, got a string"),
    ({"type": []}, "type", "expected a non-empty list of values"),
    ({"type": [["a"]]}, "type", "unsupported value a list"),
    ({"type": [float("nan")]}, "type", "a value needs a finite number"),
    ({"type": [{"prefix": "a", "suffix": "b"}]}, "type", "an operator object needs exactly one key"),
    ({"type": [{"contains": "a"}]}, "type", "unknown operator 'contains'"),
    ({"type": [{"prefix": 1}]}, "type", "prefix expects a string or"),
    ({"type": [{"prefix": {"equals-ignore-case": 1}}]}, "type", "prefix expects a string or"),
    ({"type": [{"suffix": ["a"]}]}, "type", "suffix expects a string or"),
    ({"type": [{"equals-ignore-case": None}]}, "type", "equals-ignore-case expects a string, got null"),
    ({"type": [{"wildcard": 1}]}, "type", "wildcard expects a string"),
    ({"type": [{"wildcard": "a**b"}]}, "type", "consecutive '*' are not allowed"),
    ({"type": [{"wildcard": "a\\b"}]}, "type", "a backslash may only escape"),
    ({"type": [{"wildcard": "a\\"}]}, "type", "a backslash may only escape"),
    ({"type": [{"anything-but": True}]}, "type", "anything-but expects"),
    ({"type": [{"anything-but": []}]}, "type", "anything-but expects"),
    ({"type": [{"anything-but": ["a", 1]}]}, "type", "anything-but expects"),
    ({"type": [{"anything-but": {"numeric": [">", 1]}}]}, "type", "anything-but expects"),
    ({"type": [{"anything-but": {"prefix": ["a", "b"]}}]}, "type", "anything-but expects"),
    ({"type": [{"anything-but": {"equals-ignore-case": []}}]}, "type", "anything-but expects"),
    ({"type": [{"anything-but": {"prefix": "a", "suffix": "b"}}]}, "type", "anything-but expects"),
    ({"data": {"n": [{"numeric": 5}]}}, "data.n", "numeric expects"),
    ({"data": {"n": [{"numeric": [">", 1, "<"]}]}}, "data.n", "numeric expects"),
    ({"data": {"n": [{"numeric": ["~", 1]}]}}, "data.n", "unknown comparison '~'"),
    ({"data": {"n": [{"numeric": [">", "1"]}]}}, "data.n", "'>' needs a number, got a string"),
    ({"data": {"n": [{"numeric": [">", True]}]}}, "data.n", "'>' needs a number, got a boolean"),
    ({"data": {"n": [{"numeric": [">", float("inf")]}]}}, "data.n", "numeric needs a finite number"),
    ({"data": {"n": [{"numeric": [">", 1, ">=", 2]}]}}, "data.n", "a range needs a lower"),
    ({"data": {"n": [{"numeric": ["=", 1, "<", 2]}]}}, "data.n", "a range needs a lower"),
    ({"data": {"n": [{"numeric": [">", 5, "<", 5]}]}}, "data.n", "matches no number"),
    ({"data": {"n": [{"numeric": [">=", 6, "<=", 5]}]}}, "data.n", "matches no number"),
    ({"data": {"n": [{"exists": "yes"}]}}, "data.n", "exists expects true or false"),
    ({"data": {"ip": [{"cidr": "10.0.0.0/33"}]}}, "data.ip", "cidr expects an IPv4 or IPv6 CIDR block"),
    ({"data": {"ip": [{"cidr": 10}]}}, "data.ip", "cidr expects"),
    ({"$or": {"type": ["a"]}}, "$or", "$or expects a list of at least two objects"),
    ({"$or": [{"type": ["a"]}]}, "$or", "$or expects a list of at least two objects"),
    ({"$or": [{"type": ["a"]}, "b"]}, "$or[1]", "expected an object, got a string"),
    ({"data": {"$or": [{"type": ["a"]}, {"type": "b"}]}}, "data.$or[1].type", "expected a list of values"),
]


@pytest.mark.parametrize(
    ("spec", "path", "message"), MALFORMED, ids=[f"{p or '<root>'}: {m}" for _, p, m in MALFORMED]
)
def test_malformed_patterns_are_refused_with_the_path_of_the_problem(
    spec: Any, path: str, message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        pattern.compile(spec)

    assert isinstance(caught.value, pattern.PatternError)
    assert caught.value.path == path
    assert message in caught.value.message
    assert str(caught.value) == (f"{path}: {caught.value.message}" if path else caught.value.message)


HUGE = 10**400
"""An integer beyond any float: refused with an OverflowError from ``math.isfinite`` until checked as an integer
(tests/fuzz/corpus/pattern/regression-huge-integer)."""


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ({"n": [HUGE]}, HUGE, True),
        ({"n": [HUGE]}, 5, False),
        ({"n": [{"numeric": [">", HUGE]}]}, HUGE, False),
        ({"n": [{"numeric": [">=", -HUGE, "<", HUGE]}]}, 1e308, True),
        ({"n": [{"numeric": [">", 0, "<", HUGE]}]}, HUGE, False),
        ({"n": [{"anything-but": [HUGE, 1]}]}, HUGE, False),
        ({"n": [{"anything-but": HUGE}]}, 5, True),
    ],
)
def test_integers_too_large_for_a_float_are_compared_exactly(spec: dict[str, Any], value: Any, expected: bool) -> None:
    assert pattern.compile(spec).matches({"n": value}) is expected


def test_a_wildcard_with_many_stars_matches_in_linear_steps():
    """As a regular expression, ``*a*a...*b`` backtracked for as long as the text had a's and no b."""
    spec = {"subject": [{"wildcard": "*a" * 30 + "*b"}]}
    assert not matches(spec, {**EVENT, "subject": "a" * 5000})
    assert matches(spec, {**EVENT, "subject": "a" * 5000 + "b"})
