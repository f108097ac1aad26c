"""The trigger index returns exactly what checking every filter would, while looking at few of them."""

from __future__ import annotations

import random

from ripple.filters import Filter, from_trigger_spec
from ripple.filters.index import TriggerIndex

from . import random_specs


def brute_force(filters: dict[str, Filter], event: dict) -> list[str]:
    return [key for key, f in filters.items() if f.matches(event)]


def test_match_equals_checking_every_filter_over_random_triggers_and_events() -> None:
    rng = random.Random(20240613)
    filters = {f"t{i}": from_trigger_spec(random_specs.spec(rng)) for i in range(400)}
    index: TriggerIndex[str] = TriggerIndex()
    for key, f in filters.items():
        index.add(key, f)
    events = [random_specs.event(rng) for _ in range(400)]

    for ev in events:
        expected = brute_force(filters, ev)
        assert index.match(ev) == expected
        assert set(index.candidates(ev)) >= set(expected)

    for key in rng.sample(sorted(filters), 150):
        index.remove(key)
        del filters[key]
    for i in range(50):  # re-adding under an existing key replaces the filter and moves it last
        key = rng.choice(sorted(filters))
        replacement = from_trigger_spec(random_specs.spec(rng)) if i % 2 else filters[key]
        del filters[key]
        filters[key] = replacement
        index.add(key, replacement)
    assert len(index) == len(filters) == 250

    for ev in events:
        assert index.match(ev) == brute_force(filters, ev)


def test_selective_triggers_leave_few_candidates() -> None:
    index: TriggerIndex[str] = TriggerIndex()
    for i in range(1000):
        index.add(f"type-{i}", from_trigger_spec({"filters": [{"exact": {"type": f"com.example.t{i}"}}]}))
        index.add(f"tenant-{i}", from_trigger_spec({"filters": [{"prefix": {"subject": f"tenants/{i}/"}}]}))
        index.add(
            f"sql-{i}", from_trigger_spec({"filters": [{"cesql": f"type IN ('com.example.t{i}') AND x = 1"}]})
        )
        index.add(
            f"pattern-{i}",
            from_trigger_spec(
                {"filters": [{"pattern": {"type": [f"com.example.t{i}"], "data": {"n": [1]}}}]}
            ),
        )
    index.add("everything", from_trigger_spec({"filters": [{"suffix": {"subject": "/1"}}]}))

    event = {"type": "com.example.t7", "subject": "tenants/7/orders/1", "x": "1", "data": {"n": 1}}

    assert list(index.candidates(event)) == ["type-7", "tenant-7", "sql-7", "pattern-7", "everything"]
    assert index.match(event) == ["type-7", "tenant-7", "sql-7", "pattern-7", "everything"]
    assert list(index.candidates({"type": "com.example.t5000", "subject": "tenants/70"})) == ["everything"]


def test_filters_that_can_never_match_are_never_candidates() -> None:
    index: TriggerIndex[str] = TriggerIndex()
    index.add(
        "contradiction", from_trigger_spec({"filters": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]})
    )

    assert list(index.candidates({"type": "a"})) == []
    index.remove("contradiction")
    assert len(index) == 0


def test_an_array_valued_attribute_is_checked_against_every_trigger() -> None:
    index: TriggerIndex[str] = TriggerIndex()
    index.add("pattern", from_trigger_spec({"filters": [{"pattern": {"subject": ["eu"]}}]}))
    index.add("exact", from_trigger_spec({"filters": [{"exact": {"subject": "eu"}}]}))

    assert index.match({"subject": ["us", "eu"]}) == ["pattern"]


def test_removing_the_last_trigger_of_an_attribute_drops_its_table() -> None:
    index: TriggerIndex[int] = TriggerIndex()
    index.add(1, from_trigger_spec({"filters": [{"prefix": {"subject": "a/"}}]}))
    index.add(2, from_trigger_spec({"filters": [{"prefix": {"subject": "a/b/"}}]}))
    index.add(3, from_trigger_spec({"filters": [{"exact": {"source": "s"}}]}))

    assert index.match({"subject": "a/b/c", "source": "s"}) == [1, 2, 3]
    for key in (2, 1, 3):
        index.remove(key)
    assert index.match({"subject": "a/b/c", "source": "s"}) == []
    assert 1 not in index
