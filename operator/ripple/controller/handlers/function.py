"""Function → a Deployment running the Ripple runtime, its Service, a ConfigMap for inline code, and (with
``--function-network-policy``) a NetworkPolicy that admits only the dispatcher and EventSource adapters.

Children carry owner references, so deleting the Function garbage-collects them; no finalizer is needed. The
Deployment's replica count is set once, at creation (``minScale``); afterwards it belongs to the autoscaler.
Without the option, a NetworkPolicy this Function owns (from a run with it) is removed, so switching the option
off opens the Function's pods again.
"""

from __future__ import annotations

from typing import Any

import kopf

from ripple.api.models import Function
from ripple.controller.config import OperatorConfig
from ripple.controller.observe import reconciler
from ripple.controller.resources import function as build
from ripple.controller.resources import natsclient
from ripple.controller.resources.conditions import Condition
from ripple.controller.status import write_conditions
from ripple.kube.names import code_configmap_name, function_labels, function_url
from ripple.kube.objects import InvalidSpec, parse
from ripple.kube.resources import custom_object

__all__ = ["reconcile_function"]

RESOURCE = custom_object(Function)


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
@reconciler("Function")
async def reconcile_function(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    cfg: OperatorConfig = memo.config
    kube = cfg.kube
    assert kube is not None
    try:
        fn = parse(Function, body)
    except InvalidSpec as exc:
        deployed = Condition("Deployed", False, "InvalidSpec", str(exc))
    else:
        configmap = build.code_configmap(fn)
        if configmap is not None:
            kopf.adopt(configmap, owner=body)
            await kube.apply(configmap)
        else:
            await kube.delete_configmap(fn.namespace, code_configmap_name(fn.name))
        service = build.service(fn)
        kopf.adopt(service, owner=body)
        await kube.apply(service)
        if cfg.function_network_policy is not None:
            policy = build.network_policy(fn, cfg.function_network_policy)
            kopf.adopt(policy, owner=body)
            await kube.apply(policy)  # before the Deployment: no pod of it runs unprotected
        else:
            await kube.delete_owned_network_policy(fn.namespace, build.network_policy_name(fn.name),
                                                   body["metadata"]["uid"])
        if cfg.nats_url and cfg.functions_nats_client.needed:
            secret = natsclient.client_secret(fn.namespace, fn.name, function_labels(fn.name),
                                              cfg.functions_nats_client)
            kopf.adopt(secret, owner=body)
            await kube.apply(secret)
        # Created once with minScale replicas; then always applied without them, so the count stays the
        # autoscaler's and a restarted operator's apply is identical to the last one (a no-op).
        initial = build.deployment(fn, runtime_image=cfg.runtime_image, replicas=fn.spec.scale.min_scale,
                                   nats_url=cfg.nats_url, log_format=cfg.log_format, pod_env=cfg.pod_env,
                                   delivery_env=cfg.delivery_env, nats_client=cfg.functions_nats_client)
        kopf.adopt(initial, owner=body)
        await kube.create_deployment(initial)
        desired = build.deployment(fn, runtime_image=cfg.runtime_image, replicas=None, nats_url=cfg.nats_url,
                                   log_format=cfg.log_format, pod_env=cfg.pod_env, delivery_env=cfg.delivery_env,
                                   nats_client=cfg.functions_nats_client)
        kopf.adopt(desired, owner=body)
        await kube.apply(desired)
        replicas = await kube.deployment_replicas(fn.namespace, fn.name) or (0, 0)
        patch.status["replicas"], patch.status["readyReplicas"] = replicas
        deployed = Condition("Deployed", True, "Deployed", f"{replicas[1]}/{replicas[0]} replicas ready")
        patch.status["address"] = {"url": function_url(fn.namespace, fn.name, cfg.cluster_domain)}
    write_conditions(body, status, patch, [deployed])
