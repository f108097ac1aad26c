"""Sequence and Parallel → the durable consumers of their hops, their address, and conditions that say what is
missing.

``StepsResolved`` says whether every Function, Sequence or Parallel a step, branch, error route, dead-letter sink
or reply names exists; ``BrokerReady`` whether the broker that keeps the hand-offs does; ``ConsumersReady``
whether every hop's consumer (and a Parallel's entry) exists in JetStream. ``status.address.url`` is where the
ingress takes events for it; the dispatcher runs it, and the ingress accepts events for it, once ``Ready``. A
timer looks again while it is not Ready (a Function may come later), and the finalizer removes the consumers.
"""

from __future__ import annotations

from typing import Any

import kopf

from ripple.api.models import Broker, Destination, Function, Parallel, Resource, Sequence
from ripple.controller.config import OperatorConfig
from ripple.controller.observe import reconciler
from ripple.controller.resources.conditions import Condition
from ripple.controller.status import write_conditions
from ripple.dispatch.hops import flow_hops
from ripple.kube.conditions import is_ready
from ripple.kube.names import flow_url
from ripple.kube.objects import InvalidSpec, parse
from ripple.kube.resources import custom_object
from ripple.store import EventStore, StoreUnavailable, subjects
from ripple.store.consumers import hop_consumer_config

__all__ = [
    "delete_flow",
    "destinations",
    "ensure_consumers",
    "recheck_parallel",
    "recheck_sequence",
    "reconcile_flow",
    "reconcile_parallel",
    "reconcile_sequence",
]

RECHECK_SECONDS = 3.0
MODELS: dict[str, type[Sequence] | type[Parallel]] = {"Sequence": Sequence, "Parallel": Parallel}
REFERABLE: dict[str, type[Resource]] = {"Function": Function, "Sequence": Sequence, "Parallel": Parallel}


def destinations(resource: Sequence | Parallel) -> list[tuple[str, Destination]]:
    """Every destination the resource names, with its field path."""
    found: list[tuple[str, Destination | None]] = []
    if isinstance(resource, Sequence):
        for index, step in enumerate(resource.spec.steps):
            found += [(f"spec.steps[{index}]", step), (f"spec.steps[{index}].onError", step.on_error),
                      (f"spec.steps[{index}].delivery.deadLetterSink", step.delivery.dead_letter_sink)]
    else:
        for index, branch in enumerate(resource.spec.branches):
            found += [(f"spec.branches[{index}].subscriber", branch.subscriber),
                      (f"spec.branches[{index}].reply", branch.reply),
                      (f"spec.branches[{index}].delivery.deadLetterSink", branch.delivery.dead_letter_sink)]
    found.append(("spec.reply", resource.spec.reply))
    return [(path, dest) for path, dest in found if dest is not None]


async def ensure_consumers(store: EventStore, resource: Sequence | Parallel) -> Condition:
    """Create or update every hop's consumer (and a Parallel's entry); ConsumersReady says how it went."""
    try:
        for hop in flow_hops([resource]):
            await store.ensure_trigger_consumer(hop.trigger)
        if isinstance(resource, Parallel):
            entry = subjects.parallel_entry(resource.name)
            await store.ensure_consumer(resource.namespace, resource.spec.broker,
                                        hop_consumer_config(resource.namespace, resource.spec.broker, entry))
    except (StoreUnavailable, OSError, TimeoutError) as exc:
        return Condition("ConsumersReady", False, "ConsumerUnavailable", str(exc))
    except Exception as exc:  # a JetStream API error: the broker's stream may not exist yet
        return Condition("ConsumersReady", False, "ConsumerFailed", f"{type(exc).__name__}: {exc}")
    return Condition("ConsumersReady", True, "ConsumersReady")


async def reconcile_flow(kind: str, body: kopf.Body, status: kopf.Status, patch: kopf.Patch,
                         cfg: OperatorConfig) -> None:
    assert cfg.kube is not None and cfg.store is not None
    try:
        resource = parse(MODELS[kind], body)
    except InvalidSpec as exc:
        write_conditions(body, status, patch, [Condition("StepsResolved", False, "InvalidSpec", str(exc))])
        return
    missing = []
    for path, dest in destinations(resource):
        if dest.ref is not None:
            namespace, name = dest.ref.key(resource.namespace)
            if await cfg.kube.ripple_object(REFERABLE[dest.ref.kind], namespace, name) is None:
                missing.append(f"{path}: no {dest.ref.kind} '{namespace}/{name}'")
    resolved = (Condition("StepsResolved", False, "NotFound", "; ".join(missing)) if missing
                else Condition("StepsResolved", True, "Resolved"))
    broker = resource.spec.broker
    broker_ready = (Condition("BrokerReady", True, "BrokerReady")
                    if await cfg.kube.ripple_object(Broker, resource.namespace, broker) is not None
                    else Condition("BrokerReady", False, "BrokerNotFound",
                                   f"Broker {resource.namespace}/{broker} does not exist"))
    parts = [resolved, broker_ready]
    if resolved.status is True and broker_ready.status is True:
        parts.append(await ensure_consumers(cfg.store, resource))
    patch.status["address"] = {"url": flow_url(cfg.ingress_url, kind, resource.namespace, resource.name)}
    patch.status["steps" if kind == "Sequence" else "branches"] = [
        {"index": hop.index, "name": hop.label, "hop": hop.name}
        for hop in flow_hops([resource]) if hop.role in ("step", "branch")
    ]
    write_conditions(body, status, patch, parts)


@kopf.on.resume(*custom_object(Sequence))
@kopf.on.create(*custom_object(Sequence))
@kopf.on.update(*custom_object(Sequence), field="spec")
@reconciler("Sequence")
async def reconcile_sequence(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    await reconcile_flow("Sequence", body, status, patch, memo.config)


@kopf.on.resume(*custom_object(Parallel))
@kopf.on.create(*custom_object(Parallel))
@kopf.on.update(*custom_object(Parallel), field="spec")
@reconciler("Parallel")
async def reconcile_parallel(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    await reconcile_flow("Parallel", body, status, patch, memo.config)


@kopf.timer(*custom_object(Sequence), interval=RECHECK_SECONDS, when=lambda status, **_: not is_ready(status))
@reconciler("Sequence")
async def recheck_sequence(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    await reconcile_flow("Sequence", body, status, patch, memo.config)


@kopf.timer(*custom_object(Parallel), interval=RECHECK_SECONDS, when=lambda status, **_: not is_ready(status))
@reconciler("Parallel")
async def recheck_parallel(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    await reconcile_flow("Parallel", body, status, patch, memo.config)


@kopf.on.delete(*custom_object(Sequence))
@kopf.on.delete(*custom_object(Parallel))
@reconciler()  # of both kinds: counted under the body's
async def delete_flow(body: kopf.Body, memo: Any, **_: Any) -> None:
    """The hops' consumers live outside Kubernetes: delete them, then let the object go."""
    cfg: OperatorConfig = memo.config
    assert cfg.store is not None
    try:
        resource = parse(MODELS[body["kind"]], body)
    except InvalidSpec:
        return  # never valid, so never given consumers
    names = [hop.name for hop in flow_hops([resource])]
    if isinstance(resource, Parallel):
        names.append(subjects.parallel_entry(resource.name))
    for name in names:
        await cfg.store.delete_trigger_consumer(resource.namespace, resource.spec.broker, name)
