"""Trigger specs: every dialect, how ``filter`` and ``filters`` combine, and each validation error's path."""

from __future__ import annotations

from typing import Any

import pytest

from ripple.filters import FilterError, from_trigger_spec, validate_trigger_spec

ORDER = {
    "specversion": "1.0",
    "id": "1",
    "source": "https://shop.example/orders",
    "type": "com.example.order.created",
    "subject": "eu/orders/42",
    "tenant": "acme",
    "priority": 5,
    "express": True,
    "data": {"amount": 120, "currency": "EUR"},
}


def matches(spec: dict[str, Any], event: dict[str, Any] = ORDER) -> bool:
    return from_trigger_spec(spec).matches(event)


def without(name: str) -> dict[str, Any]:
    return {key: value for key, value in ORDER.items() if key != name}


# --- matching ---------------------------------------------------------------------------------------------


def test_a_spec_without_filters_matches_everything() -> None:
    assert matches({"broker": "default"})
    assert matches({"filters": []})
    assert matches({"filter": {"attributes": {}}})


@pytest.mark.parametrize(
    ("exact", "expected"),
    [
        ({"type": "com.example.order.created"}, True),
        ({"type": "com.example.order.created", "tenant": "acme"}, True),
        ({"type": "com.example.order.created", "tenant": "other"}, False),
        ({"type": "COM.EXAMPLE.ORDER.CREATED"}, False),
        ({"type": "com.example.order"}, False),
        ({"missing": "x"}, False),
        ({"priority": "5", "express": "true"}, True),
        ({"express": "True"}, False),
        ({"data": "x"}, False),
    ],
)
def test_exact(exact: dict[str, str], expected: bool) -> None:
    assert matches({"filters": [{"exact": exact}]}) is expected


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ({"subject": "eu/"}, True),
        ({"subject": "eu/orders/42"}, True),
        ({"subject": "EU/"}, False),
        ({"subject": "eu/", "type": "com.example."}, True),
        ({"subject": "eu/", "type": "org."}, False),
        ({"missing": "a"}, False),
    ],
)
def test_prefix(prefix: dict[str, str], expected: bool) -> None:
    assert matches({"filters": [{"prefix": prefix}]}) is expected


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        ({"type": ".created"}, True),
        ({"type": ".Created"}, False),
        ({"type": ".created", "subject": "/42"}, True),
        ({"type": ".created", "subject": "/43"}, False),
        ({"missing": "a"}, False),
    ],
)
def test_suffix(suffix: dict[str, str], expected: bool) -> None:
    assert matches({"filters": [{"suffix": suffix}]}) is expected


def test_every_listed_expression_must_hold() -> None:
    created = {"exact": {"type": "com.example.order.created"}}
    assert matches({"filters": [created, {"prefix": {"subject": "eu/"}}]})
    assert not matches({"filters": [created, {"prefix": {"subject": "us/"}}]})


def test_all_any_and_not_nest() -> None:
    spec = {
        "filters": [
            {
                "all": [
                    {"prefix": {"type": "com.example.order."}},
                    {"any": [{"exact": {"tenant": "acme"}}, {"exact": {"tenant": "globex"}}]},
                    {"not": {"suffix": {"subject": "/draft"}}},
                ]
            }
        ]
    }
    assert matches(spec)
    assert not matches(spec, {**ORDER, "tenant": "initech"})
    assert not matches(spec, {**ORDER, "subject": "eu/orders/draft"})
    assert matches({"filters": [{"not": {"exact": {"missing": "x"}}}]})


def test_cesql_matches_only_a_true_result_without_error() -> None:
    assert matches({"filters": [{"cesql": "tenant = 'acme' AND priority > 3"}]})
    assert not matches({"filters": [{"cesql": "priority > 7"}]})
    assert not matches({"filters": [{"cesql": "missing = 'x' OR TRUE"}]})
    assert not matches({"filters": [{"cesql": "NOT (missing = 'x')"}]})
    assert not matches({"filters": [{"cesql": "'true'"}]})
    assert not matches({"filters": [{"cesql": "priority / 0 = 0"}]})


def test_pattern_sees_attributes_and_data() -> None:
    spec = {
        "filters": [
            {"pattern": {"type": [{"suffix": ".created"}], "data": {"amount": [{"numeric": [">", 100]}]}}}
        ]
    }
    assert matches(spec)
    assert not matches(spec, {**ORDER, "data": {"amount": 99}})


class TestKnativeAttributesFilter:
    def test_all_listed_attributes_must_equal(self) -> None:
        spec = {"filter": {"attributes": {"type": "com.example.order.created", "tenant": "acme"}}}
        assert matches(spec)
        assert not matches(spec, {**ORDER, "tenant": "globex"})

    def test_an_empty_value_accepts_any_value_of_a_present_attribute(self) -> None:
        spec = {"filter": {"attributes": {"tenant": ""}}}
        assert matches(spec)
        assert not matches(spec, without("tenant"))
        assert not matches(spec, {**ORDER, "tenant": ""})

    def test_a_missing_attribute_never_matches(self) -> None:
        assert not matches({"filter": {"attributes": {"subject": "eu/orders/42"}}}, without("subject"))

    def test_values_compare_as_text(self) -> None:
        assert matches({"filter": {"attributes": {"priority": "5", "express": "true"}}})


class TestFilterAndFiltersTogether:
    def test_filters_wins(self) -> None:
        spec = {
            "filter": {"attributes": {"tenant": "globex"}},
            "filters": [{"exact": {"tenant": "acme"}}],
        }
        assert matches(spec)
        assert not matches(spec, {**ORDER, "tenant": "globex"})

    def test_an_empty_filters_list_leaves_filter_in_force(self) -> None:
        spec = {"filter": {"attributes": {"tenant": "globex"}}, "filters": []}
        assert not matches(spec)

    def test_filter_is_still_validated(self) -> None:
        with pytest.raises(FilterError, match=r"^filter\.attributes\.tenant: expected a string"):
            from_trigger_spec(
                {"filter": {"attributes": {"tenant": 1}}, "filters": [{"exact": {"type": "a"}}]}
            )


# --- validation -------------------------------------------------------------------------------------------

INVALID = [
    ([], "spec: expected a mapping"),
    ({"filters": {"exact": {"type": "a"}}}, "filters: expected a list of filter expressions"),
    ({"filters": ["type = 'a'"]}, "filters[0]: expected a mapping with one dialect key"),
    ({"filters": [{}]}, "filters[0]: expected exactly one dialect key, got none"),
    (
        {"filters": [{"exact": {"type": "a"}, "prefix": {"type": "b"}}]},
        "filters[0]: expected exactly one dialect key",
    ),
    ({"filters": [{"sql": "TRUE"}]}, "filters[0]: unknown dialect 'sql'"),
    ({"filters": [{"exact": {}}]}, "filters[0].exact: expected a non-empty mapping"),
    ({"filters": [{"exact": ["type"]}]}, "filters[0].exact: expected a non-empty mapping"),
    ({"filters": [{"exact": {"": "a"}}]}, "filters[0].exact: attribute names must be non-empty strings"),
    ({"filters": [{"exact": {"type": ""}}]}, "filters[0].exact.type: expected a non-empty string"),
    ({"filters": [{"exact": {"priority": 5}}]}, "filters[0].exact.priority: expected a non-empty string"),
    ({"filters": [{"prefix": {"subject": ""}}]}, "filters[0].prefix.subject: expected a non-empty string"),
    ({"filters": [{"suffix": {"subject": None}}]}, "filters[0].suffix.subject: expected a non-empty string"),
    ({"filters": [{"all": []}]}, "filters[0].all: expected a non-empty list"),
    ({"filters": [{"any": {"exact": {"type": "a"}}}]}, "filters[0].any: expected a non-empty list"),
    ({"filters": [{"not": []}]}, "filters[0].not: expected a mapping with one dialect key"),
    (
        {"filters": [{"exact": {"type": "a"}}, {"any": [{"not": {"exact": {"type": ""}}}]}]},
        "filters[1].any[0].not.exact.type: expected a non-empty string",
    ),
    ({"filters": [{"cesql": 1}]}, "filters[0].cesql: expected a CESQL expression string"),
    (
        {"filters": [{"exact": {"type": "a"}}, {"any": [{"cesql": "type = (1"}]}]},
        "filters[1].any[0].cesql: parse error at position 10: expected ')'",
    ),
    ({"filters": [{"cesql": "NOPE(type)"}]}, "filters[0].cesql: missingFunction error at position 1: "),
    ({"filters": [{"pattern": ["type"]}]}, "filters[0].pattern: a pattern must be an object"),
    (
        {"filters": [{"pattern": {"data": {"amount": [{"numeric": [">", "5"]}]}}}]},
        "filters[0].pattern.data.amount: numeric expects",
    ),
    ({"filter": "type=a"}, "filter: expected a mapping with 'attributes'"),
    ({"filter": {"attributes": {"type": "a"}, "cesql": "TRUE"}}, "filter: unknown field(s) cesql"),
    ({"filter": {"attributes": ["type"]}}, "filter.attributes: expected a mapping"),
    ({"filter": {"attributes": {"": "a"}}}, "filter.attributes: attribute names must be non-empty strings"),
    ({"filter": {"attributes": {"type": True}}}, "filter.attributes.type: expected a string, got bool"),
]


@pytest.mark.parametrize(("spec", "message"), INVALID, ids=[message for _, message in INVALID])
def test_invalid_specs_are_refused_with_the_path_of_the_problem(spec: Any, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        validate_trigger_spec(spec)

    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, ValueError)


def test_validate_accepts_what_compiles() -> None:
    spec = {
        "broker": "default",
        "filters": [{"cesql": "EXISTS subject"}, {"pattern": {"type": [{"prefix": "a"}]}}],
    }
    assert validate_trigger_spec(spec) is None


def test_filters_nested_past_the_limit_are_refused_not_a_recursion_error():
    from ripple.filters import compile_filter
    from ripple.filters.dialects import MAX_FILTER_DEPTH, FilterError

    def nested(depth: int) -> dict:
        node: dict = {"exact": {"type": "a"}}
        for _ in range(depth):
            node = {"not": node}
        return node

    compile_filter(None, [nested(MAX_FILTER_DEPTH - 1)])  # at the limit: compiles
    with pytest.raises(FilterError, match=f"nest more than {MAX_FILTER_DEPTH} levels"):
        compile_filter(None, [nested(600)])  # deep enough to have hit Python's recursion limit before
