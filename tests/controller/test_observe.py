"""The operator's metrics where they are taken: handler runs by outcome and duration, admission answers, and the
tally of watched objects by their Ready condition."""

from __future__ import annotations

import asyncio

import kopf
import pytest
from prometheus_client import REGISTRY, Gauge

from ripple.controller.observe import Inventory, admission, ready_status, reconciler


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def runs(kind: str, outcome: str) -> float:
    return sample("ripple_operator_reconciles_total", kind=kind, outcome=outcome)


async def test_a_handler_run_is_counted_by_its_outcome_and_timed():
    @reconciler("TestKind")
    async def handler(fail: BaseException | None = None, **_: object) -> str:
        await asyncio.sleep(0.01)
        if fail is not None:
            raise fail
        return "done"

    before = {o: runs("TestKind", o) for o in ("success", "retry", "error")}
    timed = sample("ripple_operator_reconcile_seconds_count", kind="TestKind")
    assert await handler() == "done"
    with pytest.raises(kopf.TemporaryError):
        await handler(fail=kopf.TemporaryError("the Broker is not there yet", delay=5))
    with pytest.raises(RuntimeError):
        await handler(fail=RuntimeError("boom"))
    assert {o: runs("TestKind", o) - before[o] for o in before} == {"success": 1, "retry": 1, "error": 1}
    assert sample("ripple_operator_reconcile_seconds_count", kind="TestKind") - timed == 3
    assert sample("ripple_operator_reconcile_seconds_bucket", kind="TestKind", le="0.005") == 0  # each slept 10 ms


async def test_the_wrapper_keeps_what_kopf_reads_of_a_handler():
    """Kopf names a handler (the id in its progress annotations) and picks how to call it through __wrapped__."""
    from kopf._core.actions.invocation import is_async_fn
    from kopf._core.intents.registries import get_callable_id

    async def reconcile_thing(**_: object) -> None: ...

    def validate_thing(**_: object) -> None: ...

    assert get_callable_id(reconciler("Thing")(reconcile_thing)) == get_callable_id(reconcile_thing)
    assert is_async_fn(reconciler("Thing")(reconcile_thing))
    assert not is_async_fn(admission("Thing")(validate_thing))  # run in Kopf's executor, as before


async def test_a_handler_of_several_kinds_counts_under_the_body_s_kind():
    @reconciler()
    async def delete(body: dict, **_: object) -> None: ...

    before = runs("Parallel", "success")
    await delete(body={"kind": "Parallel"})
    assert runs("Parallel", "success") - before == 1


def test_admission_answers_are_counted():
    @admission("TestTrigger")
    def validate(spec: dict, **_: object) -> None:
        if spec.get("bad"):
            raise kopf.AdmissionError("spec.filters[0]: does not parse", code=422)
        if spec.get("broken"):
            raise KeyError("filters")

    def reviews(result: str) -> float:
        return sample("ripple_operator_admission_reviews_total", kind="TestTrigger", result=result)

    before = {r: reviews(r) for r in ("allowed", "denied", "error")}
    validate(spec={})
    with pytest.raises(kopf.AdmissionError):
        validate(spec={"bad": True})
    with pytest.raises(KeyError):
        validate(spec={"broken": True})
    assert {r: reviews(r) - before[r] for r in before} == {"allowed": 1, "denied": 1, "error": 1}


def test_ready_status_reads_the_ready_condition():
    assert ready_status({"conditions": [{"type": "Deployed", "status": "True"},
                                        {"type": "Ready", "status": "False"}]}) == "False"
    assert ready_status({"conditions": [{"type": "Ready", "status": "True"}]}) == "True"
    assert ready_status({}) == ready_status(None) == "Unknown"  # not reconciled yet
    assert ready_status({"conditions": [{"type": "Ready", "status": "Maybe"}]}) == "Unknown"


def test_the_inventory_follows_each_object_to_its_latest_status_and_out():
    gauge = Gauge("test_inventory_objects", "objects", ["kind", "ready"], registry=None)
    inventory = Inventory(("Broker", "Trigger"), gauge)

    def value(kind: str, ready: str) -> float:
        return gauge.labels(kind, ready)._value.get()

    assert value("Trigger", "Unknown") == 0 and value("Broker", "True") == 0  # zeros, not missing series
    inventory.saw("Trigger", "shop", "t", "Unknown")
    inventory.saw("Trigger", "shop", "t", "False")
    inventory.saw("Trigger", "shop", "t", "False")  # an event that changed something else
    inventory.saw("Trigger", "ops", "t", "True")  # another namespace, another object
    inventory.saw("Broker", "shop", "default", "True")
    assert (value("Trigger", "Unknown"), value("Trigger", "False"), value("Trigger", "True")) == (0, 1, 1)
    inventory.saw("Trigger", "shop", "t", "True")
    assert (value("Trigger", "False"), value("Trigger", "True")) == (0, 2)
    inventory.gone("Trigger", "shop", "t")
    inventory.gone("Trigger", "shop", "never-seen")
    assert value("Trigger", "True") == 1 and inventory.count("Broker", "True") == 1
