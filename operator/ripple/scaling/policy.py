"""How many replicas a Function should have: a pure function of demand, bounds and recent history.

Demand is the events that want a replica now: deliveries in flight plus the backlog waiting in JetStream
(``num_pending`` + ``num_ack_pending`` of the triggers that target the function). Desired replicas are
``ceil(demand / targetConcurrency)`` clamped to ``[minScale, maxScale]``. Going up is immediate; going down waits
for the lower figure to hold for the scale-down delay (no flapping), and going to zero waits for ``idleTimeout``
without any demand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ripple.api.durations import seconds
from ripple.api.models import ScaleSpec
from ripple.defaults import SCALE_DOWN_DELAY

__all__ = ["DEFAULT_SCALE_DOWN_DELAY", "ScaleBounds", "ScaleState", "decide", "wanted"]

DEFAULT_SCALE_DOWN_DELAY = SCALE_DOWN_DELAY


@dataclass(frozen=True)
class ScaleBounds:
    min_scale: int
    max_scale: int
    target_concurrency: int
    idle_timeout: float
    scale_down_delay: float = DEFAULT_SCALE_DOWN_DELAY

    @classmethod
    def from_spec(cls, spec: ScaleSpec, scale_down_delay: float = DEFAULT_SCALE_DOWN_DELAY) -> ScaleBounds:
        return cls(spec.min_scale, spec.max_scale, spec.target_concurrency, seconds(spec.idle_timeout),
                   scale_down_delay)


@dataclass
class ScaleState:
    """What the policy remembers about one function between ticks."""

    replicas: int = 0
    last_demand_at: float | None = None
    """When demand was last seen above zero."""
    lower_since: float | None = None
    """Since when the wanted figure has been below ``replicas``."""


def wanted(bounds: ScaleBounds, demand: int) -> int:
    """Replicas for this demand right now, clamped; zero demand wants the minimum."""
    return max(bounds.min_scale, min(bounds.max_scale, math.ceil(demand / bounds.target_concurrency)))


def decide(bounds: ScaleBounds, state: ScaleState, demand: int, now: float) -> int:
    """The replica count to run now; updates ``state`` (the caller applies the returned count)."""
    if demand > 0:
        state.last_demand_at = now
    target = wanted(bounds, demand)
    if target == 0 and state.replicas > 0:
        if state.last_demand_at is None:
            state.last_demand_at = now  # running without a known history: the idle clock starts now
        if now - state.last_demand_at < bounds.idle_timeout:
            target = 1  # still inside the idle timeout: keep one warm
    if target >= state.replicas:
        state.lower_since = None
        state.replicas = target
        return target
    if target > 0:
        if state.lower_since is None:
            state.lower_since = now
        if now - state.lower_since < bounds.scale_down_delay:
            return state.replicas
    state.lower_since = None
    state.replicas = target
    return target
