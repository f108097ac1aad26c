"""The scaling policy as a table of situations: demand in, replicas out."""

from __future__ import annotations

from ripple.api.models import ScaleSpec
from ripple.scaling.policy import ScaleBounds, ScaleState, decide, wanted

BOUNDS = ScaleBounds(min_scale=0, max_scale=5, target_concurrency=10, idle_timeout=30, scale_down_delay=2)


def test_wanted_replicas_follow_demand_within_bounds():
    assert [wanted(BOUNDS, d) for d in (0, 1, 10, 11, 25, 49, 50, 51, 1000)] == [0, 1, 1, 2, 3, 5, 5, 5, 5]
    assert wanted(ScaleBounds(2, 4, 10, 30), 0) == 2


def test_bounds_come_from_the_function_spec():
    spec = ScaleSpec(min_scale=1, max_scale=3, target_concurrency=4, idle_timeout="PT90S")
    assert ScaleBounds.from_spec(spec, scale_down_delay=5) == ScaleBounds(1, 3, 4, 90.0, 5)


def test_scale_up_is_immediate():
    state = ScaleState()
    assert decide(BOUNDS, state, demand=1, now=0) == 1
    assert decide(BOUNDS, state, demand=45, now=0.1) == 5


def test_idle_function_keeps_one_replica_until_the_idle_timeout_then_goes_to_zero():
    state = ScaleState()
    decide(BOUNDS, state, demand=3, now=0)
    assert decide(BOUNDS, state, demand=0, now=10) == 1
    assert decide(BOUNDS, state, demand=0, now=29.9) == 1
    assert decide(BOUNDS, state, demand=0, now=30.1) == 0


def test_demand_during_idle_restarts_the_idle_clock():
    state = ScaleState()
    decide(BOUNDS, state, demand=1, now=0)
    decide(BOUNDS, state, demand=1, now=25)
    assert decide(BOUNDS, state, demand=0, now=40) == 1
    assert decide(BOUNDS, state, demand=0, now=55.1) == 0


def test_scale_down_waits_for_the_lower_figure_to_hold():
    state = ScaleState()
    decide(BOUNDS, state, demand=40, now=0)
    assert decide(BOUNDS, state, demand=5, now=1) == 4
    assert decide(BOUNDS, state, demand=5, now=2.5) == 4
    assert decide(BOUNDS, state, demand=5, now=3.1) == 1


def test_a_flap_resets_the_scale_down_delay():
    state = ScaleState()
    decide(BOUNDS, state, demand=40, now=0)
    decide(BOUNDS, state, demand=5, now=1)
    assert decide(BOUNDS, state, demand=40, now=2) == 4
    assert decide(BOUNDS, state, demand=5, now=3.5) == 4
    assert decide(BOUNDS, state, demand=5, now=5.6) == 1


def test_min_scale_one_never_goes_to_zero():
    bounds = ScaleBounds(min_scale=1, max_scale=3, target_concurrency=1, idle_timeout=1)
    state = ScaleState(replicas=1)
    assert [decide(bounds, state, demand=0, now=t) for t in (0, 10, 100, 1000)] == [1, 1, 1, 1]


def test_a_running_function_without_history_gets_a_full_idle_timeout():
    state = ScaleState(replicas=2)
    assert decide(BOUNDS, state, demand=0, now=100) == 2  # down to one only after the scale-down delay
    assert decide(BOUNDS, state, demand=0, now=102.5) == 1
    assert decide(BOUNDS, state, demand=0, now=129) == 1
    assert decide(BOUNDS, state, demand=0, now=131) == 0


def test_zero_stays_zero_without_demand():
    state = ScaleState()
    assert [decide(BOUNDS, state, demand=0, now=t) for t in (0, 1, 100)] == [0, 0, 0]
