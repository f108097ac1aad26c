"""The cluster data plane without an API server: its loops under supervision, and the brokers, triggers and
functions it learns from watch events, fed here as the watch would hand them over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ripple.api.models import API_VERSION, Destination, Reference
from ripple.cluster import ClusterBrokers, ClusterDispatcher, run_supervised
from ripple.dispatch import Unresolvable
from ripple.store import EventStore
from ripple.supervision import Supervisor, SupervisorSettings
from tests.support import eventually

FAST = SupervisorSettings(initial_backoff=0.01, max_backoff=0.01)


def obj(kind: str, name: str, namespace: str = "default", spec: dict[str, Any] | None = None,
        **extra: Any) -> dict[str, Any]:
    body = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, "namespace": namespace}, **extra}
    if spec is not None:
        body["spec"] = spec
    return body


# -- run_supervised ---------------------------------------------------------------------------------------------


class Loop:
    """A loop that records its runs and is told when to fail."""

    def __init__(self) -> None:
        self.runs = 0
        self.cancelled = 0
        self.fail = asyncio.Event()

    async def __call__(self) -> None:
        self.runs += 1
        try:
            await self.fail.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.fail.clear()
        raise RuntimeError("the watch broke")


async def test_loops_run_under_the_supervisor_and_a_failed_one_restarts_alone():
    supervisor = Supervisor(FAST)
    watch, apply = Loop(), Loop()
    running = asyncio.create_task(run_supervised(supervisor, {"watch triggers": watch, "apply triggers": apply}))
    try:
        await eventually(lambda: watch.runs == 1 and apply.runs == 1)
        assert sorted(state.name for state in supervisor.states()) == ["apply triggers", "watch triggers"]

        watch.fail.set()
        await eventually(lambda: watch.runs == 2)
        (state,) = [s for s in supervisor.states() if s.name == "watch triggers"]
        assert state.failures == 1 and "the watch broke" in state.last_error
        assert apply.runs == 1 and apply.cancelled == 0  # the other loop was left alone
        assert not running.done()
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running


async def test_cancelling_stops_every_loop():
    supervisor = Supervisor(FAST)
    loops = {"watch brokers": Loop(), "watch functions": Loop(), "apply functions": Loop()}
    running = asyncio.create_task(run_supervised(supervisor, dict(loops)))
    await eventually(lambda: all(loop.runs == 1 for loop in loops.values()))

    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert [loop.cancelled for loop in loops.values()] == [1, 1, 1]
    assert supervisor.states() == []
    await asyncio.sleep(0.05)
    assert [loop.runs for loop in loops.values()] == [1, 1, 1]  # and none is started again


async def test_a_loop_failing_over_and_over_makes_the_supervisor_unhealthy():
    supervisor = Supervisor(SupervisorSettings(initial_backoff=0.01, max_backoff=0.01, unhealthy_after=3))

    async def broken() -> None:
        raise RuntimeError("no API server")

    running = asyncio.create_task(run_supervised(supervisor, {"watch brokers": broken}))
    try:
        await eventually(lambda: not supervisor.healthy())
        assert [state.name for state in supervisor.unhealthy()] == ["watch brokers"]
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running


# -- ClusterBrokers ---------------------------------------------------------------------------------------------


async def test_cluster_brokers_follow_broker_events(api):
    brokers = ClusterBrokers(api)
    assert not brokers("shop", "orders")

    await brokers.objects._event("ADDED", obj("Broker", "orders", "shop"))
    await brokers.objects._event("ADDED", obj("Broker", "default"))
    assert brokers("shop", "orders") and brokers("default", "default")
    assert not brokers("default", "orders") and not brokers("shop", "default")

    await brokers.objects._event("DELETED", obj("Broker", "orders", "shop"))
    assert not brokers("shop", "orders") and brokers("default", "default")


async def test_cluster_brokers_leave_out_invalid_brokers(api):
    brokers = ClusterBrokers(api)
    await brokers.objects._event("ADDED", obj("Broker", "orders", "shop", {"retention": {"maxAge": "a week"}}))
    assert not brokers("shop", "orders")


# -- ClusterDispatcher ------------------------------------------------------------------------------------------


def trigger(name: str, status: str | None = None) -> dict[str, Any]:
    extra = {"status": {"conditions": [{"type": "Ready", "status": status}]}} if status else {}
    return obj("Trigger", name, spec={"subscriber": {"ref": {"kind": "Function", "name": "ship"}}}, **extra)


def endpoint_slice(name: str, address: str, function: str = "ship", namespace: str = "default") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"ripple.dev/function": function, "kubernetes.io/service-name": function}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
    }


FUNCTION = obj("Function", "ship", spec={"handler": "ship:handle", "image": "registry.example/ship:1"})


@pytest.fixture
async def dispatcher(store: EventStore, api) -> AsyncIterator[ClusterDispatcher]:
    cluster = ClusterDispatcher(store, api, autoscale=False)
    try:
        yield cluster
    finally:
        await cluster.dispatcher.close()
        await cluster._http.close()


async def test_dispatcher_takes_only_triggers_the_operator_made_ready(dispatcher: ClusterDispatcher):
    triggers = dispatcher.triggers
    await triggers._event("ADDED", trigger("ship"))
    await triggers._event("ADDED", trigger("bill", "False"))
    assert triggers.items == {}

    await triggers._event("MODIFIED", trigger("ship", "True"))
    assert list(triggers.items) == [("default", "ship")]

    await triggers._event("MODIFIED", trigger("ship", "False"))  # e.g. its consumer went away
    assert triggers.items == {}


async def test_dispatcher_resolves_the_functions_the_watch_reported(dispatcher: ClusterDispatcher):
    to_ship = Destination(ref=Reference(kind="Function", name="ship"))
    with pytest.raises(Unresolvable, match="default/ship"):
        await dispatcher.activator.resolve(to_ship, "default")

    applying = asyncio.create_task(dispatcher._apply_loop())
    try:
        await dispatcher.functions._event("ADDED", FUNCTION)
        await eventually(lambda: dispatcher.function_keys == {("default", "ship")})
        assert dispatcher.backend.functions == {("default", "ship")}
        # What the readiness watch hands over next: the Function's Service has a ready endpoint.
        await dispatcher.backend.observe("ADDED", endpoint_slice("ship-abc12", "10.0.0.7"))
        assert await dispatcher.activator.resolve(to_ship, "default") == "http://10.0.0.7:8080/"

        await dispatcher.functions._event("DELETED", FUNCTION)
        await eventually(lambda: dispatcher.function_keys == set())
        assert dispatcher.backend.functions == set()
        with pytest.raises(Unresolvable, match="default/ship"):
            await dispatcher.activator.resolve(to_ship, "default")
    finally:
        applying.cancel()
        with pytest.raises(asyncio.CancelledError):
            await applying
