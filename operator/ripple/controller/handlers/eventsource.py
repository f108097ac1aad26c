"""EventSource → its adapter: sink resolved, Secrets checked, ServiceAccount and RBAC, Deployment, webhook Service.

Conditions: ``SinkResolved`` (``SinkNotFound``), ``Deployed`` (``SecretNotFound``, ``KindNotFound``,
``AdapterStarting`` until a replica is ready)
and ``Ready``. Children in the source's namespace carry an owner reference and go with it; the Roles a
Kubernetes source needs in other namespaces, and the ClusterRole of a cluster-scoped kind, cannot, so the delete
handler removes them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import psycopg2
from kubernetes_asyncio.client.exceptions import ApiException

from ripple.api.models import Broker, EventSource, Function, Resource
from ripple.controller.config import OperatorConfig
from ripple.controller.observe import reconciler
from ripple.controller.resources import eventsource as build
from ripple.controller.resources import natsclient
from ripple.controller.resources.conditions import Condition
from ripple.controller.status import write_conditions
from ripple.kube.client import Kube
from ripple.kube.names import broker_url, function_url
from ripple.kube.objects import InvalidSpec, parse
from ripple.kube.resources import custom_object
from ripple.sources.kubernetes import KindNotFound, discover
from ripple.sources.postgres import drop_slot

__all__ = ["delete_eventsource", "reconcile_eventsource"]

RESOURCE = custom_object(EventSource)
NOT_READY_RECHECK = 5.0
RECHECKED = frozenset({"AdapterStarting", "SecretNotFound", "SinkNotFound", "DeadLetterSinkNotFound"})


async def _resolve(cfg: OperatorConfig, kube: Kube, source: EventSource) -> str | None:
    sink = source.spec.sink
    if sink.uri is not None:
        return sink.uri
    assert sink.ref is not None
    namespace = sink.ref.namespace or source.namespace
    kind: type[Resource] = Broker if sink.ref.kind == "Broker" else Function
    if await kube.ripple_object(kind, namespace, sink.ref.name) is None:
        return None
    if kind is Broker:
        return broker_url(cfg.ingress_url, namespace, sink.ref.name)
    return function_url(namespace, sink.ref.name, cfg.cluster_domain)


async def _dead_letter_url(cfg: OperatorConfig, kube: Kube, source: EventSource) -> str | None:
    dead = source.spec.delivery.dead_letter_sink
    if dead is None:
        return None
    if dead.uri is not None:
        return dead.uri
    assert dead.ref is not None
    namespace, name = dead.ref.key(source.namespace)
    if await kube.ripple_object(Function, namespace, name) is None:
        return None
    return function_url(namespace, name, cfg.cluster_domain)


async def _grants(kube: Kube, source: EventSource) -> list[build.Grant]:
    spec = source.spec.kubernetes
    if spec is None:
        return []
    grants: list[build.Grant] = []
    for selector in spec.resources:
        kind = await discover(kube.api_client, selector)
        group = selector.api_version.rpartition("/")[0]
        namespaces: list[str | None] = list(spec.namespaces or [source.namespace]) if kind.namespaced else [None]
        grants.extend(build.Grant(group, kind.plural, namespace) for namespace in namespaces)
    return grants


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
@reconciler("EventSource")
async def reconcile_eventsource(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    cfg: OperatorConfig = memo.config
    kube = cfg.kube
    assert kube is not None
    try:
        source = parse(EventSource, body)
    except InvalidSpec as exc:
        invalid = Condition("SinkResolved", False, "InvalidSpec", str(exc))
        write_conditions(body, status, patch, [invalid, Condition("Deployed", False, "InvalidSpec", str(exc))])
        return
    kind = source.spec.kind
    patch.status["sourceKind"] = kind
    if source.spec.webhook is not None:
        patch.status["verification"] = (source.spec.webhook.signature.scheme
                                        if source.spec.webhook.signature is not None else "none")
    url = await _resolve(cfg, kube, source)
    if url is None:
        sink = Condition("SinkResolved", False, "SinkNotFound", "the sink does not exist")
    else:
        sink = Condition("SinkResolved", True, "Resolved")
        patch.status["sinkUri"] = url
    deployed = await _deploy(cfg, kube, body, patch, source, kind, url)
    conditions = [sink, deployed]
    if source.spec.webhook is not None and source.spec.webhook.signature is None:
        conditions.append(Condition("Verified", True, "Open",
                                    "no spec.webhook.signature: the endpoint accepts unsigned requests"))
    write_conditions(body, status, patch, conditions)
    if deployed.reason in RECHECKED:
        # Nothing here watches Secrets, sinks or the Deployment: look again until they are there.
        raise kopf.TemporaryError(deployed.message, delay=NOT_READY_RECHECK)


async def _deploy(cfg: OperatorConfig, kube: Kube, body: kopf.Body, patch: kopf.Patch, source: EventSource,
                  kind: str, sink_url: str | None) -> Condition:
    for _, ref in source.spec.secret_refs():
        if not await kube.secret_exists(source.namespace, ref.name):
            return Condition("Deployed", False, "SecretNotFound",
                             f"no Secret '{ref.name}' in namespace {source.namespace}")
    if sink_url is None:
        return Condition("Deployed", False, "SinkNotFound", "waiting for the sink")
    try:
        grants = await _grants(kube, source)
    except KindNotFound as exc:
        return Condition("Deployed", False, "KindNotFound", str(exc))
    dead_letter = await _dead_letter_url(cfg, kube, source)
    if source.spec.delivery.dead_letter_sink is not None and dead_letter is None:
        return Condition("Deployed", False, "DeadLetterSinkNotFound", "the dead-letter sink does not exist")
    owned = [build.service_account(source)]
    for obj in build.rbac(source, grants):
        if obj["metadata"].get("namespace") == source.namespace:
            owned.append(obj)
        else:
            await kube.apply(obj)  # another namespace or cluster-wide: removed by the delete handler
    if source.spec.webhook is not None or (source.spec.storage is not None
                                           and source.spec.storage.mode == "notifications"):
        owned.append(build.service(source))
        patch_url = build.webhook_url(source, cfg.cluster_domain)
    else:
        patch_url = None
    owned.append(build.deployment(source, image=cfg.runtime_image, sink_url=sink_url, dead_letter_url=dead_letter,
                                  nats_url=cfg.nats_url, log_format=cfg.log_format, pod_env=cfg.pod_env,
                                  token_exchange=cfg.token_exchange, nats_client=cfg.nats_client))
    if cfg.nats_url and cfg.nats_client.needed:
        owned.append(natsclient.client_secret(source.namespace, build.adapter_name(source.name),
                                              build.adapter_labels(source), cfg.nats_client))
    for obj in owned:
        kopf.adopt(obj, owner=body)
        try:
            await kube.apply(obj)
        except ApiException as exc:
            if exc.status == 403:
                return Condition("Deployed", False, "RBACNotPermitted",
                                 f"the operator may not create {obj['kind']} {obj['metadata']['name']}: {exc.reason}")
            raise
    if patch_url is not None:
        patch.status["address"] = {"url": patch_url}
    replicas = await kube.deployment_replicas(source.namespace, build.adapter_name(source.name)) or (0, 0)
    if replicas[1] < 1:
        return Condition("Deployed", None, "AdapterStarting", "the adapter has no ready replica yet")
    return Condition("Deployed", True, "Deployed", f"adapter {build.adapter_name(source.name)} ready")


@kopf.on.delete(*RESOURCE)
@reconciler("EventSource")
async def delete_eventsource(body: kopf.Body, memo: Any, logger: Any, **_: Any) -> None:
    """Remove what no owner reference can reach: RBAC in other namespaces or cluster-wide, and a PostgreSQL
    source's replication slot, which would otherwise keep WAL on the server for ever."""
    cfg: OperatorConfig = memo.config
    assert cfg.kube is not None
    try:
        source = parse(EventSource, body)
    except InvalidSpec:
        return
    if source.spec.postgres is not None:
        await _drop_slot(cfg.kube, source, logger)
    spec = source.spec.kubernetes
    if spec is None:
        return
    name = f"ripple-source-{source.namespace}-{source.name}"
    for namespace in spec.namespaces:
        if namespace != source.namespace:
            await cfg.kube.delete_rbac("RoleBinding", name[:253], namespace)
            await cfg.kube.delete_rbac("Role", name[:253], namespace)
    await cfg.kube.delete_rbac("ClusterRoleBinding", name)
    await cfg.kube.delete_rbac("ClusterRole", name)


async def _drop_slot(kube: Kube, source: EventSource, logger: Any) -> None:
    spec = source.spec.postgres
    assert spec is not None
    ref = spec.connection_secret_ref
    dsn = await kube.secret_value(source.namespace, ref.name, ref.key)
    if dsn is None:
        logger.warning("cannot drop the replication slot of %s/%s: Secret %s has no key %s", source.namespace,
                       source.name, ref.name, ref.key)
        return
    try:
        dropped = await asyncio.to_thread(drop_slot, dsn.decode().strip(), source)
    except psycopg2.Error as exc:
        # Unreachable or refused: retried by Kopf (the finalizer holds the object) until it works.
        raise kopf.TemporaryError(f"dropping the replication slot failed: {type(exc).__name__}", delay=10) from None
    if dropped:
        logger.info("dropped the replication slot of %s/%s", source.namespace, source.name)
