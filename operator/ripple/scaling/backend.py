"""What the autoscaler and the activator need from wherever replicas run: local processes or Kubernetes."""

from __future__ import annotations

import asyncio
import itertools
from typing import Protocol

__all__ = ["FunctionKey", "NotReady", "ReadyReplicas", "ScalingBackend"]

FunctionKey = tuple[str, str]
"""(namespace, name) of a Function."""


class NotReady(Exception):
    """A function has no ready replica within the time allowed."""


class ScalingBackend(Protocol):
    def replicas(self, function: FunctionKey) -> int:
        """Replicas asked for (running or starting)."""
        ...

    def endpoints(self, function: FunctionKey) -> list[str]:
        """Base URLs of the replicas that answer their readiness check now."""
        ...

    def pick(self, function: FunctionKey) -> str:
        """A ready replica's URL, spreading deliveries over the ready ones; :class:`NotReady` when there is none."""
        ...

    async def scale(self, function: FunctionKey, replicas: int, *, initial: bool = False) -> None:
        """Ask for ``replicas``; returns once the request is made, not when replicas are ready.

        ``initial`` marks the start-up scale to ``minScale``: not a cold start, since no event waits for it.
        """
        ...

    async def wait_ready(self, function: FunctionKey, timeout: float) -> str:
        """A ready replica's URL, waiting up to ``timeout`` seconds; raise :class:`NotReady` otherwise."""
        ...

    async def close(self) -> None: ...


class ReadyReplicas:
    """What every backend does with its ready replicas: hand them out in turn, and let a delivery wait for one.

    A backend supplies :meth:`endpoints`, calls :meth:`_notify` when they change, and may say through
    :meth:`_gave_up` that waiting is pointless (no replica is even starting).
    """

    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._round_robin: dict[FunctionKey, itertools.count[int]] = {}

    def endpoints(self, function: FunctionKey) -> list[str]:
        raise NotImplementedError

    def _gave_up(self, function: FunctionKey) -> bool:
        return False

    def pick(self, function: FunctionKey) -> str:
        ready = self.endpoints(function)
        if not ready:
            raise NotReady(f"no ready replica of {function[0]}/{function[1]}")
        counter = self._round_robin.setdefault(function, itertools.count())
        return ready[next(counter) % len(ready)]

    async def wait_ready(self, function: FunctionKey, timeout: float) -> str:
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: bool(self.endpoints(function)) or self._gave_up(function))
        except TimeoutError:
            raise NotReady(f"no ready replica of {function[0]}/{function[1]} after {timeout:g}s") from None
        return self.pick(function)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
