"""Trigger → its durable JetStream consumer, and status conditions that say what is missing.

A timer re-checks triggers that are not Ready, so a Trigger created before its Broker or Function becomes Ready
once they exist. The consumer lives outside Kubernetes, hence the finalizer (Kopf adds it for the delete
handler) that removes it before the Trigger goes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from ripple.api.models import Broker, Destination, Function, Parallel, Sequence, Trigger
from ripple.controller.config import OperatorConfig
from ripple.controller.observe import reconciler
from ripple.controller.resources.conditions import Condition
from ripple.controller.resources.trigger import trigger_status
from ripple.controller.status import write_conditions
from ripple.dispatch.fanout import fanout_refusals
from ripple.filters import FilterError, from_trigger_spec
from ripple.kube.conditions import is_ready
from ripple.kube.names import flow_url
from ripple.kube.objects import InvalidSpec, parse
from ripple.kube.resources import custom_object
from ripple.store import EventStore, StoreUnavailable

__all__ = [
    "admission_order",
    "delete_trigger",
    "ensure_consumer",
    "flow_addresses",
    "recheck_trigger",
    "reconcile",
    "reconcile_trigger",
    "validate_filters",
]

RESOURCE = custom_object(Trigger)
RECHECK_SECONDS = 3.0


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
@reconciler("Trigger")
async def reconcile_trigger(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    await reconcile(body, status, patch, memo.config)


@kopf.timer(*RESOURCE, interval=RECHECK_SECONDS, when=lambda status, **_: not is_ready(status))
@reconciler("Trigger")
async def recheck_trigger(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    await reconcile(body, status, patch, memo.config)


async def reconcile(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, cfg: OperatorConfig) -> None:
    kube, store = cfg.kube, cfg.store
    assert kube is not None and store is not None
    try:
        trigger = parse(Trigger, body)
    except InvalidSpec as exc:
        invalid = Condition("SpecValid", False, "InvalidSpec", str(exc))
        write_conditions(body, status, patch, [invalid])
        return
    namespace = trigger.namespace
    functions = {(namespace, f["metadata"]["name"]) for f in await kube.ripple_objects(Function, namespace)}
    referenced = {
        d.ref.key(namespace)
        for d in (trigger.spec.subscriber, trigger.spec.delivery.dead_letter_sink)
        if d is not None and d.ref is not None and d.ref.key(namespace)[0] != namespace
    }
    for other_namespace, name in referenced:
        if await kube.ripple_object(Function, other_namespace, name) is not None:
            functions.add((other_namespace, name))
    flows = await flow_addresses(cfg, namespace, [trigger.spec.subscriber, trigger.spec.delivery.dead_letter_sink])
    broker_exists = await kube.ripple_object(Broker, namespace, trigger.spec.broker) is not None
    try:
        trigger_filter = trigger.spec.compiled_filter
        filter_error = None
    except FilterError as exc:
        trigger_filter, filter_error = None, str(exc)
    fanout = None
    if broker_exists and trigger_filter is not None:
        others = await kube.ripple_objects(Trigger, namespace)
        fanout = fanout_refusals(admission_order(others, body), cfg.max_fanout).get(trigger.key)
    found = trigger_status(
        trigger, broker_exists=broker_exists, function_exists=lambda ns, n: (ns, n) in functions,
        filter_error=filter_error, address=lambda kind, ns, n: flows.get((kind, ns, n)), fanout_refusal=fanout,
    )
    parts = found.parts
    if found.ready and trigger_filter is not None:
        parts = [*parts, await ensure_consumer(store, trigger)]
    patch.status["subscriberUri"] = found.subscriber_uri
    patch.status["deadLetterSinkUri"] = found.dead_letter_sink_uri
    write_conditions(body, status, patch, parts)


def admission_order(objects: Iterable[Mapping[str, Any]], this: Mapping[str, Any]) -> list[Trigger]:
    """The namespace's valid Triggers (``this`` one as reconciled, whether or not the list had it yet), oldest
    first: the order they take their broker's fan-out in, so that a new trigger never unseats an older one."""
    def created(obj: Mapping[str, Any]) -> tuple[str, str]:
        metadata = obj.get("metadata") or {}
        # RFC 3339 in UTC, to the second, sorts as text; one not stamped yet (this one, just created) goes last.
        return str(metadata.get("creationTimestamp") or "~"), str(metadata.get("name") or "")

    name = (this.get("metadata") or {}).get("name")
    bodies = [obj for obj in objects if (obj.get("metadata") or {}).get("name") != name] + [this]
    found = []
    for obj in sorted(bodies, key=created):
        try:
            found.append(parse(Trigger, obj))
        except InvalidSpec:
            continue
    return found


async def flow_addresses(cfg: OperatorConfig, namespace: str,
                         destinations: Iterable[Destination | None]) -> dict[tuple[str, str, str], str]:
    """The addresses of the Sequences and Parallels ``destinations`` name that exist, by (kind, namespace, name)."""
    assert cfg.kube is not None
    found: dict[tuple[str, str, str], str] = {}
    for destination in destinations:
        ref = destination.ref if destination is not None else None
        if ref is None or ref.kind == "Function":
            continue
        ref_namespace, name = ref.key(namespace)
        model = Sequence if ref.kind == "Sequence" else Parallel
        if await cfg.kube.ripple_object(model, ref_namespace, name) is not None:
            found[(ref.kind, ref_namespace, name)] = flow_url(cfg.ingress_url, ref.kind, ref_namespace, name)
    return found


async def ensure_consumer(store: EventStore, trigger: Trigger) -> Condition:
    """Create or update the trigger's consumer; the ConsumerReady condition says how it went."""
    try:
        await store.ensure_trigger_consumer(trigger)
    except (StoreUnavailable, OSError, TimeoutError) as exc:
        return Condition("ConsumerReady", False, "ConsumerUnavailable", str(exc))
    except Exception as exc:  # a JetStream API error: the stream may not exist yet
        return Condition("ConsumerReady", False, "ConsumerFailed", f"{type(exc).__name__}: {exc}")
    return Condition("ConsumerReady", True, "ConsumerReady")


@kopf.on.delete(*RESOURCE)
@reconciler("Trigger")
async def delete_trigger(body: kopf.Body, memo: Any, **_: Any) -> None:
    cfg: OperatorConfig = memo.config
    assert cfg.store is not None
    spec = body.get("spec") or {}
    await cfg.store.delete_trigger_consumer(
        body["metadata"]["namespace"], spec.get("broker", "default"), body["metadata"]["name"]
    )


def validate_filters(spec: kopf.Spec, **_: Any) -> None:
    """Admission: a trigger whose filters do not compile never reaches the cluster. Registered by the operator
    only when it serves the webhook (Kopf refuses to start with admission handlers and no server)."""
    try:
        from_trigger_spec(dict(spec))
    except FilterError as exc:
        raise kopf.AdmissionError(f"spec.{exc}", code=422) from None
