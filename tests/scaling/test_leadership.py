"""One autoscaler decides at a time: a lease on a JetStream key held by one process, taken over within its time
to live when the holder dies, and an autoscaler that does not hold it never scales."""

from __future__ import annotations

import asyncio
import time

from ripple.api.models import API_VERSION, Function
from ripple.scaling.autoscaler import Autoscaler
from ripple.store import EventStore
from ripple.store.leases import KvLease

TTL = 1.5


class RecordingBackend:
    """A scaling backend that keeps no replicas and records every request, so each tick asks again."""

    def __init__(self) -> None:
        self.requests: list[tuple[tuple[str, str], int]] = []

    def replicas(self, function: tuple[str, str]) -> int:
        return 0

    def endpoints(self, function: tuple[str, str]) -> list[str]:
        return []

    def pick(self, function: tuple[str, str]) -> str:
        raise LookupError(function)

    async def scale(self, function: tuple[str, str], replicas: int, *, initial: bool = False) -> None:
        if not initial:
            self.requests.append((function, replicas))

    async def wait_ready(self, function: tuple[str, str], timeout: float) -> str:
        raise TimeoutError

    async def close(self) -> None:
        pass


def function() -> Function:
    return Function.model_validate({"apiVersion": API_VERSION, "kind": "Function",
                                    "metadata": {"name": "warm", "namespace": "default"},
                                    "spec": {"handler": "m:h", "source": {"inline": "def h(e): pass"},
                                             "scale": {"minScale": 1}}})


async def test_one_holder_at_a_time_and_a_dead_holders_lease_is_taken_within_its_ttl(store: EventStore):
    first, second = KvLease(store, "autoscaler", "first", ttl=TTL), KvLease(store, "autoscaler", "second", ttl=TTL)
    runs = {"first": asyncio.create_task(first.run()), "second": asyncio.create_task(second.run())}
    try:
        deadline = time.monotonic() + 3 * TTL
        while time.monotonic() < deadline:
            assert not (first.held() and second.held())
            await asyncio.sleep(0.01)
        assert first.held() != second.held()
        leader, other = (first, second) if first.held() else (second, first)
        runs[leader.holder].cancel()  # the holder dies: no release, its lease runs out
        died = time.monotonic()
        while not other.held():
            assert not leader.held() or time.monotonic() - died < TTL  # counts itself out before its ttl ends
            assert time.monotonic() - died < 2 * TTL, "the lease was not taken over"
            await asyncio.sleep(0.01)
        took_over = time.monotonic() - died
        assert not leader.held()
        assert took_over <= TTL + TTL / 5 + 0.5
    finally:
        for task in runs.values():
            task.cancel()
        await asyncio.gather(*runs.values(), return_exceptions=True)


async def test_a_released_lease_is_taken_at_once(store: EventStore):
    first, second = KvLease(store, "job", "first", ttl=30), KvLease(store, "job", "second", ttl=30)
    assert await first.attempt() and not await second.attempt()
    await first.release()
    assert await second.attempt() and not first.held()


async def test_only_the_autoscaler_holding_the_lease_scales(store: EventStore):
    leases = [KvLease(store, "autoscaler", name, ttl=TTL) for name in ("a", "b")]
    backends = [RecordingBackend(), RecordingBackend()]
    scalers = [Autoscaler(store, backend, {("default", "warm"): function()}, [], tick=0.05, leading=lease.held)
               for backend, lease in zip(backends, leases, strict=True)]
    runs = [asyncio.create_task(lease.run()) for lease in leases]
    for scaler in scalers:
        await scaler.start()
    try:
        await asyncio.sleep(1.0)
        counts = [len(backend.requests) for backend in backends]
        holder = [lease.held() for lease in leases].index(True)
        assert counts[holder] > 5 and counts[1 - holder] == 0, counts
    finally:
        for scaler in scalers:
            await scaler.stop()
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
