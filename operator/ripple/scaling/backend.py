"""What the autoscaler and the activator need from wherever replicas run: local processes or Kubernetes."""

from __future__ import annotations

from typing import Protocol

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
