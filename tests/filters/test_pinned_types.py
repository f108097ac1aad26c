"""``Filter.pinned_types()``: which event types a trigger can receive, used to select events by subject."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ripple.filters import from_trigger_spec

from . import random_specs

A = {"exact": {"type": "a"}}
B = {"exact": {"type": "b"}}


@pytest.mark.parametrize(
    ("spec", "pinned"),
    [
        ({}, None),
        ({"filter": {"attributes": {"type": "a", "source": "s"}}}, {"a"}),
        ({"filter": {"attributes": {"type": ""}}}, None),
        ({"filters": [A]}, {"a"}),
        ({"filters": [A, {"prefix": {"subject": "eu/"}}]}, {"a"}),
        ({"filters": [{"all": [{"exact": {"source": "s"}}, A]}]}, {"a"}),
        ({"filters": [{"any": [A, B]}]}, {"a", "b"}),
        ({"filters": [{"any": [A, {"all": [B, {"exact": {"source": "s"}}]}]}]}, {"a", "b"}),
        ({"filters": [{"any": [A, {"exact": {"source": "s"}}]}]}, None),
        ({"filters": [{"not": A}]}, None),
        ({"filters": [{"prefix": {"type": "a"}}]}, None),
        ({"filters": [{"any": [A, {"prefix": {"type": "a."}}]}]}, None),
        ({"filters": [{"all": [{"any": [A, B]}, {"any": [B, {"exact": {"type": "c"}}]}]}]}, {"b"}),
        ({"filters": [A, B]}, set()),
        ({"filters": [{"pattern": {"type": ["a", "b"], "data": {"n": [1]}}}]}, {"a", "b"}),
        ({"filters": [{"pattern": {"type": ["a", {"prefix": "b"}]}}]}, None),
        ({"filters": [{"pattern": {"$or": [{"type": ["a"]}, {"type": ["b"]}]}}]}, {"a", "b"}),
        ({"filters": [{"pattern": {"data": {"type": ["a"]}}}]}, None),
        ({"filters": [{"cesql": "type = 'a' AND priority > 2"}]}, {"a"}),
        ({"filters": [{"cesql": "type IN ('a', 'b') OR type = 'c'"}]}, {"a", "b", "c"}),
        ({"filters": [{"cesql": "type = 'a' OR source = 's'"}]}, None),
        ({"filter": {"attributes": {"type": "a"}}, "filters": [{"exact": {"source": "s"}}]}, None),
    ],
)
def test_pinned_types(spec: dict[str, Any], pinned: set[str] | None) -> None:
    assert from_trigger_spec(spec).pinned_types() == (None if pinned is None else frozenset(pinned))


def test_no_event_outside_the_pinned_types_ever_matches() -> None:
    rng = random.Random(7)
    filters = [from_trigger_spec(random_specs.spec(rng)) for _ in range(600)]
    events = [random_specs.event(rng) for _ in range(300)]
    pinned = [(f, f.pinned_types()) for f in filters]
    assert sum(types is not None for _, types in pinned) > 100

    for ev in events:
        for f, types in pinned:
            if types is not None and f.matches(ev):
                assert ev["type"] in types
