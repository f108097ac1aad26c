"""EventSource: its sink is resolved now; the adapters that produce events are a later piece of work."""

from __future__ import annotations

from typing import Any

import kopf

from ripple.api.models import Broker, EventSource, Function, Resource
from ripple.controller.config import OperatorConfig
from ripple.controller.resources.conditions import Condition
from ripple.controller.status import write_conditions
from ripple.kube.names import broker_url, function_url
from ripple.kube.objects import InvalidSpec, parse
from ripple.kube.resources import custom_object

__all__ = ["reconcile_eventsource"]

RESOURCE = custom_object(EventSource)


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
async def reconcile_eventsource(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    cfg: OperatorConfig = memo.config
    assert cfg.kube is not None
    try:
        source = parse(EventSource, body)
    except InvalidSpec as exc:
        sink = Condition("SinkResolved", False, "InvalidSpec", str(exc))
    else:
        sink_spec = source.spec.sink
        if sink_spec.uri is not None:
            url: str | None = sink_spec.uri
        else:
            assert sink_spec.ref is not None
            namespace = sink_spec.ref.namespace or source.namespace
            kind: type[Resource] = Broker if sink_spec.ref.kind == "Broker" else Function
            found = await cfg.kube.ripple_object(kind, namespace, sink_spec.ref.name)
            url = None
            if found is not None:
                url = (broker_url(cfg.ingress_url, namespace, sink_spec.ref.name) if kind is Broker
                       else function_url(namespace, sink_spec.ref.name, cfg.cluster_domain))
        if url is None:
            sink = Condition("SinkResolved", False, "SinkNotFound", "the sink does not exist")
        else:
            sink = Condition("SinkResolved", True, "Resolved")
            patch.status["sinkUri"] = url
    adapter = Condition("Ready", None if sink.status else False,
                        "AdapterNotAvailable" if sink.status else sink.reason,
                        "EventSource adapters are not part of this release yet" if sink.status else sink.message)
    write_conditions(body, status, patch, [sink, adapter], ready=False)
