"""The fan-out cap is a rule on the configuration, never a delivery dropped: a trigger that would let some event
reach more than the cap of its broker's triggers does not run (not Ready in a cluster; local mode and the
manifests dispatcher refuse the manifests), so every trigger that runs gets every event it matches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ripple.api.loading import load_manifests
from ripple.cli import dispatcher as dispatcher_cli
from ripple.cli.parser import build_parser
from ripple.controller.handlers.trigger import admission_order
from ripple.controller.resources.trigger import trigger_status
from ripple.defaults import MAX_FANOUT
from ripple.dispatch.fanout import fanout_refusals, manifests_over_fanout
from ripple.local.dev import DevOptions, LocalRipple
from ripple.local.functions import LocalModeError
from tests.support import trigger


def typed(name: str, *types: str, broker: str = "default", namespace: str = "default") -> Any:
    """A trigger pinned to ``types`` (one: an exact filter; several: a CESQL ``IN``), none: every event."""
    spec: dict[str, Any] = {"broker": broker}
    if len(types) == 1:
        spec["filter"] = {"attributes": {"type": types[0]}}
    elif types:
        spec["filters"] = [{"any": [{"exact": {"type": t}} for t in types]}]
    return trigger(name, namespace=namespace, subscriber="http://sub.example/", **spec)


def test_triggers_up_to_the_cap_all_run_and_the_next_is_refused_naming_the_cap():
    triggers = [typed(f"t{i}") for i in range(4)]
    assert fanout_refusals(triggers[:3], 3) == {}
    refused = fanout_refusals(triggers, 3)
    assert list(refused) == [("default", "t3")]
    assert refused[("default", "t3")] == ("an event would reach 4 triggers of broker default/default, over the "
                                          "fan-out cap of 3 (--max-fanout): this trigger waits until others go")


def test_triggers_pinned_to_different_types_do_not_add_up():
    triggers = [typed(f"order{i}", "order.placed") for i in range(3)] + [typed(f"ship{i}", "order.shipped")
                                                                           for i in range(3)]
    assert fanout_refusals(triggers, 3) == {}
    refused = fanout_refusals([*triggers, typed("one-more", "order.shipped", "refund.issued")], 3)
    assert list(refused) == [("default", "one-more")]
    assert "an event of type 'order.shipped', 'refund.issued' would reach 4 triggers" in refused[("default",
                                                                                                   "one-more")]


def test_a_trigger_for_every_event_adds_to_every_type():
    triggers = [typed("a", "x"), typed("b", "x"), typed("c", "y"), typed("all")]
    assert fanout_refusals(triggers, 3) == {}
    assert list(fanout_refusals([*triggers, typed("d", "x")], 3)) == [("default", "d")]
    assert list(fanout_refusals([*triggers, typed("e", "y")], 3)) == []
    assert list(fanout_refusals([*triggers, typed("everything")], 3)) == [("default", "everything")]


def test_a_refused_trigger_takes_no_room_and_the_earlier_ones_keep_theirs():
    triggers = [typed("old1", "x"), typed("old2", "x"), typed("new", "x"), typed("other", "y")]
    refused = fanout_refusals(triggers, 2)
    assert list(refused) == [("default", "new")], "the older triggers keep their place; another type still fits"
    assert list(fanout_refusals(triggers[1:], 2)) == [], "once one goes, the waiting one fits"


def test_brokers_and_namespaces_are_counted_apart_and_a_trigger_matching_nothing_is_not_counted():
    triggers = [typed("a"), typed("b", broker="other"), typed("a", namespace="shop"), typed("c")]
    assert fanout_refusals(triggers, 2) == {}
    impossible = trigger("impossible", subscriber="http://sub.example/",
                         filters=[{"all": [{"exact": {"type": "x"}}, {"exact": {"type": "y"}}]}])
    assert fanout_refusals([typed("a"), impossible, typed("b")], 2) == {}


def test_manifests_are_refused_whole_naming_each_trigger_over_the_cap():
    message = manifests_over_fanout([typed("c"), typed("a"), typed("b")], 2)
    assert message is not None and message.startswith("Trigger 'default/c': an event would reach 3 triggers")
    assert manifests_over_fanout([typed("a"), typed("b")], 2) is None
    assert MAX_FANOUT == 100 and manifests_over_fanout([typed(f"t{i}") for i in range(MAX_FANOUT)], MAX_FANOUT) is None


MANIFESTS = """
apiVersion: ripple.dev/v1alpha1
kind: Broker
metadata: {name: default}
---
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {name: audit}
spec: {subscriber: {uri: "http://127.0.0.1:9/"}}
---
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {name: billing}
spec: {subscriber: {uri: "http://127.0.0.1:9/"}}
"""


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    path = tmp_path / "ripple.yaml"
    path.write_text(MANIFESTS)
    return path


def test_local_mode_refuses_manifests_over_the_cap_before_starting_anything(manifests: Path, tmp_path: Path):
    loaded = load_manifests([manifests])
    with pytest.raises(LocalModeError, match=r"Trigger 'default/billing': an event would reach 2 triggers .* cap of 1"):
        LocalRipple(loaded, DevOptions([manifests], data_dir=tmp_path / "data", max_fanout=1))
    LocalRipple(loaded, DevOptions([manifests], data_dir=tmp_path / "data", max_fanout=2))


async def test_the_manifests_dispatcher_refuses_manifests_over_the_cap(manifests: Path):
    args = build_parser().parse_args(["dispatcher", str(manifests), "--nats", "nats://127.0.0.1:9",
                                      "--max-fanout", "1"])
    with pytest.raises(SystemExit, match="ripple dispatcher: Trigger 'default/billing'"):
        await dispatcher_cli.run(args)


# --- in a cluster: the Trigger's conditions -----------------------------------------------------------------------


def body(name: str, created: str | None, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "default"}
    if created is not None:
        metadata["creationTimestamp"] = created
    return {"apiVersion": "ripple.dev/v1alpha1", "kind": "Trigger", "metadata": metadata,
            "spec": {"subscriber": {"uri": "http://sub.example/"}, **spec}}


def test_a_trigger_over_the_cap_is_not_ready_and_says_why():
    t = typed("late")
    over = trigger_status(t, broker_exists=True, function_exists=lambda ns, n: True, filter_error=None,
                          fanout_refusal="an event would reach 101 triggers")
    conditions = {c.type: (c.status, c.reason, c.message) for c in over.conditions}
    assert conditions["FanoutWithinCap"] == (False, "FanoutCapExceeded", "an event would reach 101 triggers")
    assert conditions["Ready"][:2] == (False, "FanoutCapExceeded") and not over.ready
    within = trigger_status(t, broker_exists=True, function_exists=lambda ns, n: True, filter_error=None)
    assert within.ready and {c.type: c.status for c in within.conditions}["FanoutWithinCap"] is True


def test_triggers_take_their_broker_s_fan_out_oldest_first():
    listed = [body("b", "2026-01-01T00:00:02Z"), body("a", "2026-01-01T00:00:03Z"), body("c", "2026-01-01T00:00:01Z"),
              body("broken", "2026-01-01T00:00:00Z", delivery={"retry": "many"}),
              body("new", "2026-01-01T00:00:09Z", filter={"attributes": {"type": "old"}})]
    this = body("new", None)  # reconciled as just created, before the list shows its timestamp; and its spec now
    order = admission_order(listed, this)
    assert [t.name for t in order] == ["c", "b", "a", "new"]
    assert order[-1].spec.filter is None, "the trigger reconciled, as it is now, not as listed"
    assert list(fanout_refusals(order, 3)) == [("default", "new")]
