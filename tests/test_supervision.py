"""Supervised tasks: restarted with backoff when they fail, counted, and reported unhealthy when they can't recover."""

from __future__ import annotations

import asyncio
import itertools

from prometheus_client import REGISTRY

from ripple.supervision import Supervisor, SupervisorSettings
from tests.support import eventually

FAST = SupervisorSettings(initial_backoff=0.01, max_backoff=0.04, stable_after=0.5, unhealthy_after=3)


def restarts(kind: str) -> float:
    return REGISTRY.get_sample_value("ripple_task_restarts_total", {"task": kind}) or 0.0


async def test_a_failing_task_is_restarted_until_it_runs():
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError(f"boom {len(runs)}")
        await asyncio.Event().wait()

    supervisor = Supervisor(FAST)
    before = restarts("test-flaky")
    state = supervisor.start("flaky", flaky, kind="test-flaky")
    await eventually(lambda: len(runs) == 3)
    assert state.failures == 2 and state.last_error == "RuntimeError: boom 2"
    assert restarts("test-flaky") - before == 2
    assert supervisor.healthy()
    await supervisor.close()
    assert supervisor.states() == []


async def test_a_task_failing_in_a_row_makes_health_false_and_backs_off():
    started: list[float] = []

    async def broken() -> None:
        started.append(asyncio.get_running_loop().time())
        raise ValueError("never works")

    supervisor = Supervisor(FAST)
    supervisor.start("broken", broken, kind="test-broken")
    await eventually(lambda: not supervisor.healthy())
    await eventually(lambda: len(started) >= 6)
    gaps = [b - a for a, b in itertools.pairwise(started)]
    assert gaps[0] < gaps[-1] and max(gaps) < 0.5  # doubling, capped
    assert [s.name for s in supervisor.unhealthy()] == ["broken"]
    await supervisor.close()


async def test_a_stable_run_resets_the_streak():
    runs: list[int] = []

    async def sometimes() -> None:
        runs.append(1)
        if len(runs) % 2 == 0:
            await asyncio.sleep(0.6)  # longer than stable_after
        raise RuntimeError("again")

    supervisor = Supervisor(FAST)
    state = supervisor.start("sometimes", sometimes, kind="test-sometimes")
    await eventually(lambda: len(runs) >= 6, timeout=5)
    assert state.streak < FAST.unhealthy_after
    await supervisor.close()


async def test_a_task_that_returns_is_finished_not_restarted():
    runs: list[int] = []

    async def once() -> None:
        runs.append(1)

    supervisor = Supervisor(FAST)
    state = supervisor.start("once", once, kind="test-once")
    await eventually(lambda: state.finished)
    await asyncio.sleep(0.05)
    assert runs == [1] and supervisor.healthy()


async def test_health_comes_back_once_a_failing_task_runs_stably():
    runs: list[int] = []

    async def recovers() -> None:
        runs.append(1)
        if len(runs) <= FAST.unhealthy_after:
            raise RuntimeError("not yet")
        await asyncio.Event().wait()

    supervisor = Supervisor(FAST)
    supervisor.start("recovers", recovers, kind="test-recovers")
    await eventually(lambda: len(runs) > FAST.unhealthy_after)
    assert not supervisor.healthy()
    await eventually(supervisor.healthy, timeout=FAST.stable_after * 4)
    await supervisor.close()


async def test_stop_wins_over_a_cancellation_turned_into_an_error():
    started = asyncio.Event()

    async def converts() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("connection closed") from None

    supervisor = Supervisor(FAST)
    supervisor.start("converts", converts, kind="test-converts")
    await started.wait()
    async with asyncio.timeout(2):
        await supervisor.stop("converts")
    assert supervisor.states() == []


async def test_health_can_ignore_kinds_that_fail_alone():
    async def broken() -> None:
        raise ValueError("one trigger's consumer cannot be made")

    supervisor = Supervisor(FAST)
    supervisor.start("trigger x", broken, kind="trigger")
    await eventually(lambda: not supervisor.healthy())
    assert supervisor.healthy(ignore=frozenset({"trigger"}))
    await supervisor.close()


async def test_stop_ends_a_task_that_swallows_its_first_cancellation():
    # Python 3.11's asyncio.wait_for can swallow a cancellation that arrives with the result; a loop around it
    # goes on, and a single cancel() would leave stop() waiting for ever.
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed.is_set():
                    raise
                swallowed.set()  # the first one is lost, as in the race

    supervisor = Supervisor(FAST)
    supervisor.start("stubborn", stubborn, kind="test-stubborn")
    await asyncio.sleep(0.01)
    async with asyncio.timeout(5):
        await supervisor.stop("stubborn")
    assert swallowed.is_set() and supervisor.states() == []
