"""Filter engine throughput on one core: the trigger index against checking every trigger's filter.

Run with ``PYTHONPATH=operator python bench/filters.py``. For 1, 100, 1,000 and 10,000 triggers it builds a
realistic mix (exact type, subject prefix, a type plus numeric data pattern, a CESQL expression) and measures
events per second through ``TriggerIndex.match`` and through a loop over every filter, on the same events in
the same run (the loop gets fewer events when there are many triggers, to keep the run short). It prints a
table, then as its last line one JSON object with the figures and the indexed/naive ratio per trigger count.
"""

from __future__ import annotations

import json
import platform
import random
import time
from collections.abc import Callable
from typing import Any

from ripple.filters import Filter, from_trigger_spec
from ripple.filters.index import TriggerIndex

TRIGGER_COUNTS = (1, 100, 1_000, 10_000)
EVENTS = 2_000
MIN_SECONDS = 0.5
"""Each measurement repeats its events until at least this long has passed."""
NAIVE_CHECKS = 2_000_000
"""Filter checks the naive loop may spend in one pass: 200 events at 10,000 triggers."""
MIX = {"exact type": 8, "subject prefix": 5, "type + numeric data pattern": 4, "CESQL": 3}


def trigger_spec(i: int, types: int, tenants: int, rng: random.Random) -> dict[str, Any]:
    kind = i % sum(MIX.values())
    event_type = f"com.example.orders.t{rng.randrange(types)}"
    if kind < 8:
        return {"filters": [{"exact": {"type": event_type}}]}
    if kind < 13:
        return {"filters": [{"prefix": {"subject": f"tenants/{rng.randrange(tenants)}/"}}]}
    if kind < 17:
        above = [{"numeric": [">", rng.choice([10, 100, 500])]}]
        return {"filters": [{"pattern": {"type": [event_type], "data": {"amount": above}}}]}
    return {"filters": [{"cesql": f"type = '{event_type}' AND priority >= {rng.randrange(10)}"}]}


def make_event(i: int, types: int, tenants: int, rng: random.Random) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"evt-{i}",
        "source": f"https://shop.example/{rng.choice(['eu', 'us', 'apac'])}",
        "type": f"com.example.orders.t{rng.randrange(types)}",
        "subject": f"tenants/{rng.randrange(tenants)}/orders/{rng.randrange(10**6)}",
        "time": "2024-06-13T12:00:00Z",
        "datacontenttype": "application/json",
        "priority": rng.randrange(10),
        "data": {"amount": rng.randrange(1000), "currency": "EUR", "items": rng.randrange(1, 5)},
    }


def events_per_second(match: Callable[[dict[str, Any]], list[str]], events: list[dict[str, Any]]) -> float:
    done, start = 0, time.perf_counter()
    while True:
        for event in events:
            match(event)
        done += len(events)
        elapsed = time.perf_counter() - start
        if elapsed >= MIN_SECONDS:
            return done / elapsed


def run(count: int) -> dict[str, Any]:
    rng = random.Random(count)
    types, tenants = max(10, count // 8), max(10, count // 4)
    filters: dict[str, Filter] = {
        f"trigger-{i}": from_trigger_spec(trigger_spec(i, types, tenants, rng)) for i in range(count)
    }
    index: TriggerIndex[str] = TriggerIndex()
    for key, f in filters.items():
        index.add(key, f)
    events = [make_event(i, types, tenants, rng) for i in range(EVENTS)]
    naive_events = events[: max(100, min(EVENTS, NAIVE_CHECKS // count))]

    def naive(event: dict[str, Any]) -> list[str]:
        return [key for key, f in filters.items() if f.matches(event)]

    for event in naive_events:
        assert index.match(event) == naive(event), "index and naive loop disagree"
    indexed_eps = events_per_second(index.match, events)
    naive_eps = events_per_second(naive, naive_events)
    return {
        "triggers": count,
        "indexed_events_per_s": round(indexed_eps),
        "naive_events_per_s": round(naive_eps),
        "ratio": round(indexed_eps / naive_eps, 2),
        "candidates_per_event": round(sum(len(list(index.candidates(e))) for e in events) / len(events), 2),
        "matches_per_event": round(sum(len(index.match(e)) for e in events) / len(events), 2),
        "naive_events": len(naive_events),
    }


def main() -> None:
    share = sum(MIX.values())
    mix = ", ".join(f"{100 * n // share}% {name}" for name, n in MIX.items())
    print(f"Ripple filter engine, one core, Python {platform.python_version()} on {platform.machine()}")
    print(f"trigger mix: {mix}; {EVENTS} events (fewer for the naive loop at high trigger counts)\n")
    header = ("triggers", "indexed ev/s", "naive ev/s", "indexed/naive", "candidates/ev", "matches/ev")
    print("  ".join(f"{h:>14}" for h in header))
    results = []
    for count in TRIGGER_COUNTS:
        r = run(count)
        results.append(r)
        row = (
            f"{r['triggers']:,}",
            f"{r['indexed_events_per_s']:,}",
            f"{r['naive_events_per_s']:,}",
            f"{r['ratio']:.2f}x",
            f"{r['candidates_per_event']:.2f}",
            f"{r['matches_per_event']:.2f}",
        )
        print("  ".join(f"{cell:>14}" for cell in row), flush=True)
    print()
    summary = {
        "benchmark": "ripple.filters",
        "python": platform.python_version(),
        "mix": {name: round(n / share, 2) for name, n in MIX.items()},
        "results": results,
        "ratios": {str(r["triggers"]): r["ratio"] for r in results},
    }
    print(json.dumps(summary, separators=(",", ":")))


if __name__ == "__main__":
    main()
