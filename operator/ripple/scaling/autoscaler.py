"""The autoscaler: every tick, each Function's demand from JetStream → :func:`policy.decide` → the backend."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import nats.errors
import nats.js.errors

from ripple._aio import cancel_and_wait
from ripple.api.models import Function, Trigger
from ripple.metrics import FUNCTION_PENDING, FUNCTION_REPLICAS
from ripple.scaling.backend import FunctionKey, ScalingBackend
from ripple.scaling.policy import DEFAULT_SCALE_DOWN_DELAY, ScaleBounds, ScaleState, decide
from ripple.store import EventStore, subjects

__all__ = ["Autoscaler", "Target", "targets_by_function"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """A trigger consumer whose backlog counts as demand for a function."""

    namespace: str
    broker: str
    trigger: str


def targets_by_function(triggers: Iterable[Trigger]) -> dict[FunctionKey, list[Target]]:
    found: dict[FunctionKey, list[Target]] = {}
    for trigger in triggers:
        ref = trigger.spec.subscriber.ref
        if ref is not None and ref.kind == "Function":
            key = ref.key(trigger.namespace)
            found.setdefault(key, []).append(Target(trigger.namespace, trigger.spec.broker, trigger.name))
    return found


class Autoscaler:
    """Keeps each Function's replicas at what its demand asks for, within its scale bounds."""

    def __init__(
        self,
        store: EventStore,
        backend: ScalingBackend,
        functions: Mapping[FunctionKey, Function],
        triggers: Iterable[Trigger],
        *,
        tick: float = 0.25,
        scale_down_delay: float = DEFAULT_SCALE_DOWN_DELAY,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        self.leading = leading
        """Whether this replica decides now (it holds the autoscaler's lease); the others only wake functions."""
        self.backend = backend
        self.scale_down_delay = scale_down_delay
        self.bounds: dict[FunctionKey, ScaleBounds] = {}
        self.states: dict[FunctionKey, ScaleState] = {}
        self.targets: dict[FunctionKey, list[Target]] = {}
        self.demand: dict[FunctionKey, int] = {}
        self.tick_seconds = tick
        self._published: set[FunctionKey] = set()
        """Functions with series in FUNCTION_PENDING and FUNCTION_REPLICAS: this replica's, while it decides."""
        self._pending = (dict(functions), list(triggers))
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.set_functions(*self._pending)
        self._loop = asyncio.create_task(self._run(), name="autoscaler")

    async def set_functions(self, functions: Mapping[FunctionKey, Function], triggers: Iterable[Trigger]) -> None:
        """Follow a new set of functions and triggers; a new function with ``minScale`` > 0 is brought up to it."""
        self.targets = targets_by_function(triggers)
        delay = self.scale_down_delay
        self.bounds = {key: ScaleBounds.from_spec(fn.spec.scale, delay) for key, fn in functions.items()}
        for key in self.states.keys() - self.bounds.keys():
            del self.states[key]
            self.demand.pop(key, None)
            self._unpublish(key)
        for key, bounds in self.bounds.items():
            if key not in self.states:
                self.states[key] = ScaleState()
                self.demand[key] = 0
                if bounds.min_scale > 0:
                    self.states[key].replicas = bounds.min_scale
                    await self.backend.scale(key, bounds.min_scale, initial=True)

    async def stop(self) -> None:
        if self._loop is not None:
            await cancel_and_wait([self._loop])

    async def activate(self, function: FunctionKey) -> None:
        """A delivery is waiting for this function: scale from zero now, without waiting for the next tick."""
        state = self.states.get(function)
        if state is None:
            return
        state.last_demand_at = time.monotonic()
        if self.backend.replicas(function) == 0:
            state.replicas = max(1, state.replicas)
            await self.backend.scale(function, state.replicas)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            if not self.leading():
                for key in list(self._published):  # the replica that decides now reports them
                    self._unpublish(key)
                continue
            try:
                await self.tick(time.monotonic())
            except Exception:
                log.exception("autoscaler tick failed")

    async def tick(self, now: float) -> None:
        for key, bounds in list(self.bounds.items()):
            demand = await self.measure(key)
            if demand is None:
                continue
            self.demand[key] = demand
            replicas = decide(bounds, self.states[key], demand, now)
            label = f"{key[0]}/{key[1]}"
            FUNCTION_PENDING.labels(label).set(demand)
            FUNCTION_REPLICAS.labels(label).set(replicas)
            self._published.add(key)
            current = self.backend.replicas(key)
            if replicas != current:
                log.info("function %s/%s: %d → %d replicas (demand %d)", *key, current, replicas, demand)
                await self.backend.scale(key, replicas)

    def _unpublish(self, key: FunctionKey) -> None:
        if key in self._published:
            self._published.discard(key)
            for gauge in (FUNCTION_PENDING, FUNCTION_REPLICAS):
                with contextlib.suppress(KeyError):  # another autoscaler in this process removed it already
                    gauge.remove(f"{key[0]}/{key[1]}")

    async def measure(self, function: FunctionKey) -> int | None:
        """Events waiting for or held by the function's triggers; ``None`` when JetStream cannot say."""
        total = 0
        for target in self.targets.get(function, []):
            stream = subjects.stream_name(target.namespace, target.broker)
            try:
                info = await self.store.js.consumer_info(stream, subjects.consumer_name(target.trigger))
            except nats.js.errors.NotFoundError:
                continue
            except (nats.errors.Error, TimeoutError):
                return None
            total += info.num_pending + info.num_ack_pending
        return total
