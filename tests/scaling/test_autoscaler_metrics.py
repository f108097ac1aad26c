"""What the autoscaler reports while it decides: each Function's pending events and the replicas it asks for,
one series per Function, gone when the Function goes or another replica takes the decisions over."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from ripple.api.models import API_VERSION, Function
from ripple.scaling.autoscaler import Autoscaler
from tests.support import eventually


class Backend:
    """Replicas as asked, no endpoints: all the autoscaler needs to decide."""

    def __init__(self) -> None:
        self.asked: dict[tuple[str, str], int] = {}

    def replicas(self, function: tuple[str, str]) -> int:
        return self.asked.get(function, 0)

    def endpoints(self, function: tuple[str, str]) -> list[str]:
        return []

    def pick(self, function: tuple[str, str]) -> str:
        raise LookupError(function)

    async def scale(self, function: tuple[str, str], replicas: int, *, initial: bool = False) -> None:
        self.asked[function] = replicas

    async def wait_ready(self, function: tuple[str, str], timeout: float) -> str:
        raise TimeoutError

    async def close(self) -> None:
        pass


class Measured(Autoscaler):
    """Demand as the test sets it, instead of from JetStream's consumers."""

    waiting: dict[tuple[str, str], int]

    async def measure(self, function: tuple[str, str]) -> int | None:
        return self.waiting.get(function, 0)


def function(name: str) -> Function:
    return Function.model_validate({"apiVersion": API_VERSION, "kind": "Function",
                                    "metadata": {"name": name, "namespace": "shop"},
                                    "spec": {"handler": "m:h", "image": "fn:1", "scale": {"targetConcurrency": 10}}})


def gauge(name: str, function: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"function": function})


async def test_pending_events_and_replicas_are_reported_while_leading():
    leading = True
    scaler = Measured(None, Backend(), {("shop", "resize"): function("resize"), ("shop", "mail"): function("mail")},
                      [], tick=0.02, leading=lambda: leading)  # type: ignore[arg-type]
    scaler.waiting = {("shop", "resize"): 25}
    await scaler.start()
    try:
        await eventually(lambda: gauge("ripple_function_replicas", "shop/resize") == 3, timeout=5, interval=0.02)
        assert gauge("ripple_function_pending_events", "shop/resize") == 25
        assert gauge("ripple_function_pending_events", "shop/mail") == 0  # every Function, waiting or not
        assert gauge("ripple_function_replicas", "shop/mail") == 0
        await scaler.set_functions({("shop", "resize"): function("resize")}, [])
        assert gauge("ripple_function_replicas", "shop/mail") is None  # the Function went: so did its series
        leading = False  # another replica decides now: it reports them, this one stops
        await eventually(lambda: gauge("ripple_function_replicas", "shop/resize") is None, timeout=5, interval=0.02)
        assert gauge("ripple_function_pending_events", "shop/resize") is None
        await asyncio.sleep(0.1)
        assert gauge("ripple_function_pending_events", "shop/resize") is None
    finally:
        await scaler.stop()
