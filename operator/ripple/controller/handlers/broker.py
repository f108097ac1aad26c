"""Broker → its JetStream streams; ``status.address.url`` is the ingress URL for it."""

from __future__ import annotations

from typing import Any

import kopf

from ripple.api.models import Broker
from ripple.controller.config import OperatorConfig
from ripple.controller.observe import reconciler
from ripple.controller.resources.conditions import Condition
from ripple.controller.status import write_conditions
from ripple.kube.names import broker_url
from ripple.kube.objects import InvalidSpec, parse
from ripple.kube.resources import custom_object
from ripple.store import EventStore, StoreUnavailable, subjects

__all__ = ["delete_broker", "reconcile_broker", "stream_status"]

RESOURCE = custom_object(Broker)


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
@reconciler("Broker")
async def reconcile_broker(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    cfg: OperatorConfig = memo.config
    assert cfg.store is not None
    try:
        broker = parse(Broker, body)
    except InvalidSpec as exc:
        stream = Condition("StreamReady", False, "InvalidSpec", str(exc))
    else:
        try:
            await cfg.store.ensure_broker(broker.namespace, broker.name, broker.spec)
            stream = Condition("StreamReady", True, "StreamReady",
                               f"stream {subjects.stream_name(broker.namespace, broker.name)}")
            patch.status["stream"] = await stream_status(cfg.store, broker.namespace, broker.name)
        except (StoreUnavailable, OSError, TimeoutError) as exc:
            stream = Condition("StreamReady", False, "StreamUnavailable", str(exc))
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    patch.status["address"] = {"url": broker_url(cfg.ingress_url, namespace, name)}
    write_conditions(body, status, patch, [stream])
    if stream.status is not True and stream.reason == "StreamUnavailable":
        raise kopf.TemporaryError(stream.message, delay=5)


async def stream_status(store: EventStore, namespace: str, name: str) -> dict[str, Any]:
    """The stream's replicas as JetStream reports them: asked for, in step with the leader, and the leader."""
    info = await store.js.stream_info(subjects.stream_name(namespace, name))
    cluster = info.cluster
    if cluster is None:  # a single server: the one copy is the stream
        return {"replicas": info.config.num_replicas or 1, "currentReplicas": 1, "leader": None}
    followers = [r for r in cluster.replicas or [] if r.current]
    current = 1 + len(followers) if cluster.leader else 0
    return {"replicas": info.config.num_replicas or 1, "currentReplicas": current, "leader": cluster.leader}


@kopf.on.delete(*RESOURCE)
@reconciler("Broker")
async def delete_broker(body: kopf.Body, memo: Any, **_: Any) -> None:
    """The streams live outside Kubernetes: delete them, then let the Broker go."""
    cfg: OperatorConfig = memo.config
    assert cfg.store is not None
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    await cfg.store.delete_broker(namespace, name)
