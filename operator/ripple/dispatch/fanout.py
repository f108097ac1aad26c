"""The fan-out cap: how many of one broker's triggers a single event may be delivered to.

Each trigger an event matches costs a delivery (and, for a trigger that does not pin ``type``, a stored copy), so
a broker with thousands of overlapping triggers turns one accepted event into thousands of deliveries. Capping
that per event at delivery time would break the broker's promise (an accepted event reaches every trigger it
matches, or is kept as a dead letter), and dead-lettering the excess would cost as much as delivering it. So the
cap is a rule on the configuration instead: a trigger is admitted only while no event could reach more than
``cap`` of the broker's admitted triggers, and a trigger that is not admitted never runs (in a cluster it is not
Ready; local mode refuses the manifests). Every trigger that runs then gets every event it matches.

"Could reach" is bounded by what the filters pin: an event of type ``T`` can reach the triggers pinned to ``T``
and every trigger that pins no type, so triggers pinned to different types do not add up. Triggers are admitted
in a stable order (oldest first in a cluster, by name in manifests), so adding one never unseats another, and a
trigger refused waits for room (it is checked again while it is not Ready).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from ripple.api.models import Trigger
from ripple.filters import FilterError

__all__ = ["fanout_refusals", "manifests_over_fanout"]


def fanout_refusals(triggers: Iterable[Trigger], cap: int) -> dict[tuple[str, str], str]:
    """The triggers (namespace, name) to leave out so that no event reaches more than ``cap`` triggers of its
    broker, each with why; ``triggers`` are admitted in the order given. A trigger whose filter does not compile
    is neither admitted nor refused here (it is refused for its filter)."""
    refused: dict[tuple[str, str], str] = {}
    pinned: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    """Per broker, the admitted triggers pinned to each type."""
    unpinned: Counter[tuple[str, str]] = Counter()
    """Per broker, the admitted triggers that pin no type (any event may reach them)."""
    for trigger in triggers:
        broker = (trigger.namespace, trigger.spec.broker)
        try:
            types = trigger.spec.compiled_filter.pinned_types()
        except FilterError:
            continue
        by_type = pinned[broker]
        if types is None:
            reach = max(by_type.values(), default=0) + unpinned[broker] + 1
        elif types:
            reach = max(by_type[t] for t in types) + unpinned[broker] + 1
        else:
            continue  # pinned to no type at all: it matches no event
        if reach > cap:
            what = "an event" if types is None else f"an event of type {_types(types)}"
            refused[trigger.key] = (f"{what} would reach {reach} triggers of broker {broker[0]}/{broker[1]}, over "
                                    f"the fan-out cap of {cap} (--max-fanout): this trigger waits until others go")
            continue
        if types is None:
            unpinned[broker] += 1
        else:
            by_type.update(types)
    return refused


def manifests_over_fanout(triggers: Iterable[Trigger], cap: int) -> str | None:
    """Why the triggers of a set of manifests cannot all run (taken by namespace and name), ``None`` when they can:
    local mode refuses such manifests whole rather than run some of their triggers and not others."""
    over = fanout_refusals(sorted(triggers, key=lambda t: t.key), cap)
    return "; ".join(f"Trigger '{ns}/{name}': {why}" for (ns, name), why in over.items()) or None


def _types(types: frozenset[str]) -> str:
    shown = sorted(types)
    return ", ".join(repr(t) for t in shown[:3]) + (f" (and {len(shown) - 3} more)" if len(shown) > 3 else "")
