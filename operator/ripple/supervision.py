"""Long-running tasks that are restarted when they fail, so that one bad input or one lost connection never
stops a component for good, while health still tells Kubernetes about a task that cannot recover.

A supervised task is a coroutine factory: each (re)start calls it afresh, so the task rebuilds what it needs
(a pull subscription on the store's current connection, a watch) instead of reusing what broke. A task that
returns has finished and is not restarted; one that raises is logged with its cause, counted in
``ripple_task_restarts_total{task}`` and started again after a backoff that doubles up to a cap. A task that
has failed ``unhealthy_after`` times in a row is unhealthy until a run of it has lasted ``stable_after``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ripple._aio import cancel_and_wait
from ripple.metrics import TASK_RESTARTS

log = logging.getLogger(__name__)

INITIAL_BACKOFF = 0.5
"""Seconds before the first restart of a failed task."""
MAX_BACKOFF = 30.0
"""The longest wait between restarts."""
STABLE_AFTER = 30.0
"""A run at least this long counts as recovered: the backoff and the failure streak start over."""
UNHEALTHY_AFTER = 5
"""Failures in a row after which the task, and so its component, reports unhealthy."""

TaskFactory = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class SupervisorSettings:
    initial_backoff: float = INITIAL_BACKOFF
    max_backoff: float = MAX_BACKOFF
    stable_after: float = STABLE_AFTER
    unhealthy_after: int = UNHEALTHY_AFTER


@dataclass
class TaskState:
    """What health reports about one supervised task."""

    name: str
    kind: str
    failures: int = 0
    """Failures since the task was first started."""
    streak: int = 0
    """Failures since its last stable run."""
    last_error: str = ""
    finished: bool = False
    run_started: float = 0.0
    """When the current run began (monotonic seconds)."""

    def unhealthy(self, settings: SupervisorSettings, now: float) -> bool:
        recovered = not self.finished and now - self.run_started >= settings.stable_after
        return self.streak >= settings.unhealthy_after and not recovered


@dataclass
class _Supervised:
    state: TaskState
    task: asyncio.Task[None] = field(repr=False)


class Supervisor:
    """Runs named tasks and restarts each one that fails; :meth:`stop` or :meth:`close` end them."""

    def __init__(self, settings: SupervisorSettings | None = None) -> None:
        self.settings = settings or SupervisorSettings()
        self._tasks: dict[str, _Supervised] = {}

    def start(self, name: str, factory: TaskFactory, *, kind: str) -> TaskState:
        """Run ``factory()`` under supervision as ``name``; ``kind`` (a bounded word) labels the metric."""
        if name in self._tasks and not self._tasks[name].task.done():
            raise RuntimeError(f"task {name!r} is already running")
        state = TaskState(name, kind)
        task = asyncio.create_task(self._run(state, factory), name=name)
        self._tasks[name] = _Supervised(state, task)
        return state

    async def _run(self, state: TaskState, factory: TaskFactory) -> None:
        settings = self.settings
        backoff = settings.initial_backoff
        while True:
            started = state.run_started = time.monotonic()
            try:
                await factory()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # Some libraries turn the cancellation of a wait into an error of their own (nats-py does
                    # when the connection closes meanwhile): the stop asked for still wins.
                    raise asyncio.CancelledError from exc
                if time.monotonic() - started >= settings.stable_after:
                    backoff, state.streak = settings.initial_backoff, 0
                state.failures += 1
                state.streak += 1
                state.last_error = f"{type(exc).__name__}: {exc}"[:500]
                TASK_RESTARTS.labels(state.kind).inc()
                log.error("task %s failed (%d in a row), restarting in %.1fs: %s", state.name, state.streak,
                          backoff, state.last_error, exc_info=state.streak == 1)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, settings.max_backoff)
                continue
            state.finished = True
            return

    async def stop(self, name: str) -> None:
        supervised = self._tasks.pop(name, None)
        if supervised is not None:
            await cancel_and_wait([supervised.task])

    async def close(self) -> None:
        for name in list(self._tasks):
            await self.stop(name)

    def states(self) -> list[TaskState]:
        return [s.state for s in self._tasks.values()]

    def unhealthy(self, *, ignore: frozenset[str] = frozenset()) -> list[TaskState]:
        """Tasks failing without recovering, except those of the kinds in ``ignore``."""
        now = time.monotonic()
        return [s for s in self.states() if s.kind not in ignore and s.unhealthy(self.settings, now)]

    def healthy(self, *, ignore: frozenset[str] = frozenset()) -> bool:
        """Whether every task (of the kinds not ignored) can do its work."""
        return not self.unhealthy(ignore=ignore)


__all__ = [
    "INITIAL_BACKOFF",
    "MAX_BACKOFF",
    "STABLE_AFTER",
    "UNHEALTHY_AFTER",
    "RenewedLease",
    "Supervisor",
    "SupervisorSettings",
    "TaskState",
]


class RenewedLease:
    """What every lease of Ripple's shares: held for 80 % of its ``ttl`` counted from before the write that took
    or renewed it (so a holder that cannot renew counts itself out before anyone else can count itself in),
    renewed every ``ttl / 3`` while held and tried every ``ttl / 5`` while not. Subclasses write the lease."""

    MARGIN = 0.8

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._valid_until = 0.0

    def held(self) -> bool:
        return time.monotonic() < self._valid_until

    def _confirmed(self, started: float) -> bool:
        self._valid_until = started + self.ttl * self.MARGIN
        return True

    def _lost(self) -> bool:
        self._valid_until = 0.0
        return False

    async def attempt(self) -> bool:
        """Take the lease, or renew it when held; whether this process holds it afterwards."""
        raise NotImplementedError

    async def run(self) -> None:
        while True:
            await self.attempt()
            await asyncio.sleep(self.ttl / 3 if self.held() else self.ttl / 5)
