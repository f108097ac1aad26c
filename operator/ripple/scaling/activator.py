"""The activator: resolves a Function to a ready replica, waking it from zero when it has none.

While it waits, the dispatcher keeps the JetStream message alive with in-progress acks, so the event is held,
not lost; if no replica is ready within the wait, the delivery fails like an unreachable subscriber and the
trigger's retry and dead-letter policy applies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ripple.api.models import Destination
from ripple.defaults import ACTIVATION_TIMEOUT
from ripple.dispatch.resolve import Unresolvable
from ripple.scaling.backend import FunctionKey, NotReady, ScalingBackend

__all__ = ["DEFAULT_ACTIVATION_TIMEOUT", "Activator"]

DEFAULT_ACTIVATION_TIMEOUT = ACTIVATION_TIMEOUT


class Activator:
    def __init__(
        self,
        backend: ScalingBackend,
        activate: Callable[[FunctionKey], Awaitable[None]],
        functions: set[FunctionKey],
        *,
        timeout: float = DEFAULT_ACTIVATION_TIMEOUT,
    ) -> None:
        self.backend = backend
        self.activate = activate
        self.functions = functions
        self.timeout = timeout

    async def resolve(self, destination: Destination, namespace: str) -> str:
        """The URL to deliver to: a URI as given, or a ready replica of the referenced Function."""
        key = destination.target(namespace)
        if isinstance(key, str):
            return key
        if key not in self.functions:
            raise Unresolvable(f"no Function '{key[0]}/{key[1]}'")
        if self.backend.endpoints(key):
            return self.backend.pick(key)
        await self.activate(key)
        try:
            return await self.backend.wait_ready(key, self.timeout)
        except NotReady as exc:
            raise Unresolvable(str(exc)) from None
