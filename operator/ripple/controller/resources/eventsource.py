"""An EventSource's desired children: its adapter's Deployment (``ripple source run``), ServiceAccount, the RBAC
a Kubernetes source needs and nothing more, and a webhook's Service.

The adapter gets the EventSource itself as JSON in its environment (a change of the spec rolls the Deployment),
the resolved sink URL, and each Secret it names mounted as files, only the keys it names. Its ServiceAccount's
token is mounted only for a Kubernetes source: the others never talk to the API server.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ripple.api.models import GROUP, EventSource
from ripple.controller.resources.natsclient import NatsClient, client_env, client_volume
from ripple.kube.names import PART_OF, RUNTIME_PORT, RUNTIME_PORT_NAME, adapter_name
from ripple.signing import function_audience
from ripple.sources.adapter import endpoint_path
from ripple.sources.sink import DEAD_LETTER_EXCHANGE_ENV, DEAD_LETTER_TOKEN_ENV, SINK_TOKEN_ENV, TOKEN_EXCHANGE_ENV

__all__ = [
    "ADAPTERS",
    "ADAPTER_LABEL",
    "DEAD_LETTER_TOKEN_MOUNT",
    "SECRETS_MOUNT",
    "SINK_TOKEN_MOUNT",
    "SINK_TOKEN_SECONDS",
    "Grant",
    "adapter_labels",
    "adapter_name",
    "deployment",
    "rbac",
    "reports_progress",
    "service",
    "service_account",
    "talks_to_api",
    "webhook_url",
]

ADAPTER_LABEL = "ripple.dev/eventsource"
ADAPTERS = {"app.kubernetes.io/component": "eventsource", **PART_OF}
"""Labels every adapter's pods carry, whatever their source: what a Function's NetworkPolicy admits."""
SECRETS_MOUNT = "/var/run/ripple/secrets"
SINK_TOKEN_MOUNT = "/var/run/ripple/sink-token"
DEAD_LETTER_TOKEN_MOUNT = "/var/run/ripple/dead-letter-token"
SINK_TOKEN_SECONDS = 3600
"""The projected token's life; the kubelet renews it at 80% of that."""
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
RESOURCES = {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
WATCH_VERBS = ["get", "list", "watch"]


@dataclass(frozen=True)
class Grant:
    """What a Kubernetes source may read: one kind (API group and plural) in one namespace (``None``: a
    cluster-scoped kind)."""

    group: str
    plural: str
    namespace: str | None


def adapter_labels(source: EventSource) -> dict[str, str]:
    return {"app.kubernetes.io/name": adapter_name(source.name), **ADAPTERS, ADAPTER_LABEL: source.name}


def _meta(source: EventSource, name: str | None = None, namespace: str | None = None) -> dict[str, Any]:
    return {"name": name or adapter_name(source.name), "namespace": namespace or source.namespace,
            "labels": adapter_labels(source)}


def talks_to_api(source: EventSource) -> bool:
    """A Kubernetes source reads the API; PostgreSQL and storage sources report their progress to their own
    status. Webhooks, pings and NATS never talk to the API server, and get no token."""
    spec = source.spec
    return spec.kubernetes is not None or spec.postgres is not None or spec.storage is not None


def reports_progress(source: EventSource) -> bool:
    return source.spec.postgres is not None or source.spec.storage is not None


def service_account(source: EventSource) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(source),
            "automountServiceAccountToken": talks_to_api(source)}


def rbac(source: EventSource, grants: Sequence[Grant]) -> list[dict[str, Any]]:
    """Roles and bindings giving the adapter's ServiceAccount get/list/watch on exactly ``grants``."""
    subject = {"kind": "ServiceAccount", "name": adapter_name(source.name), "namespace": source.namespace}
    by_namespace: dict[str | None, dict[str, set[str]]] = {}
    for grant in grants:
        by_namespace.setdefault(grant.namespace, {}).setdefault(grant.group, set()).add(grant.plural)
    objects: list[dict[str, Any]] = []
    if reports_progress(source):
        by_namespace.setdefault(source.namespace, {})
    for namespace, groups in sorted(by_namespace.items(), key=lambda item: item[0] or ""):
        rules = [{"apiGroups": [group], "resources": sorted(plurals), "verbs": WATCH_VERBS}
                 for group, plurals in sorted(groups.items())]
        if namespace == source.namespace and reports_progress(source):
            # Its own status only (slot lag, last checkpoint): one object, by name.
            rules.append({"apiGroups": [GROUP], "resources": ["eventsources/status"],
                          "resourceNames": [source.name], "verbs": ["get", "patch"]})
        if namespace is None:
            name = f"ripple-source-{source.namespace}-{source.name}"
            meta = {"name": name, "labels": adapter_labels(source)}
            objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta,
                            "rules": rules})
            objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                            "metadata": meta, "subjects": [subject],
                            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}})
            continue
        name = adapter_name(source.name) if namespace == source.namespace \
            else f"ripple-source-{source.namespace}-{source.name}"[:253]
        meta = _meta(source, name, namespace)
        objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
                        "rules": rules})
        objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
                        "subjects": [subject],
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}})
    return objects


def _manifest(source: EventSource) -> str:
    """The EventSource as the adapter reads it: kind, name, namespace and spec (no status, no managed fields)."""
    return json.dumps({
        "apiVersion": source.api_version, "kind": source.kind,
        "metadata": {"name": source.name, "namespace": source.namespace},
        "spec": source.spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }, separators=(",", ":"), sort_keys=True)


def deployment(source: EventSource, *, image: str, sink_url: str, dead_letter_url: str | None,
               nats_url: str | None, log_format: str = "text",
               pod_env: tuple[tuple[str, str], ...] = (), token_exchange: str | None = None,
               nats_client: NatsClient | None = None) -> dict[str, Any]:
    """The adapter's Deployment. ``token_exchange`` is where a dispatcher swaps the adapter's own token for a
    delivery token (Functions check them): given, a source whose sink is a Function gets one from there."""
    args = ["source", "run", "--sink", sink_url, "--host", "0.0.0.0", "--port", str(RUNTIME_PORT),
            "--secrets-dir", SECRETS_MOUNT, "--log-format", log_format]
    if dead_letter_url is not None:
        args += ["--dead-letter-sink", dead_letter_url]
    tls = _webhook_tls(source)
    if tls is not None:  # mounted with the source's other Secret keys, below; reloaded when it is renewed
        args += ["--tls-cert", f"{SECRETS_MOUNT}/{tls}/tls.crt", "--tls-key", f"{SECRETS_MOUNT}/{tls}/tls.key"]
    if nats_url is not None:
        args += ["--nats", nats_url]
    if reports_progress(source):
        args.append("--report-progress")
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    keys: dict[str, set[str]] = {}
    for _, ref in source.spec.secret_refs():
        keys.setdefault(ref.name, set()).add(ref.key)
    for index, (secret, secret_keys) in enumerate(sorted(keys.items())):
        volume = f"secret-{index}"
        items = [{"key": key, "path": key} for key in sorted(secret_keys)]
        volumes.append({"name": volume, "secret": {"secretName": secret, "items": items, "defaultMode": 0o400}})
        mounts.append({"name": volume, "mountPath": f"{SECRETS_MOUNT}/{secret}", "readOnly": True})
    token_env = []
    if nats_url is not None and nats_client is not None and nats_client.needed:
        nats_volume, nats_mount = client_volume(adapter_name(source.name))
        volumes.append(nats_volume)
        mounts.append(nats_mount)
        token_env += client_env(nats_client)
    sink = source.spec.sink.ref
    audience = None
    if sink is not None and sink.kind == "Broker":
        # The source sends as itself: its ServiceAccount's token for the broker's audience, renewed by the kubelet.
        sink_namespace, broker = sink.key(source.namespace)
        audience = f"ripple/{sink_namespace}/{broker}"
    elif sink is not None and sink.kind == "Function" and token_exchange is not None:
        function_namespace, function = sink.key(source.namespace)
        audience = function_audience(function_namespace, function)
        query = urllib.parse.urlencode({"function": f"{function_namespace}/{function}"})
        token_env.append({"name": TOKEN_EXCHANGE_ENV, "value": f"{token_exchange}?{query}"})
    if audience is not None:
        volumes.append({"name": "sink-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": audience, "expirationSeconds": SINK_TOKEN_SECONDS, "path": "token"}}]}})
        mounts.append({"name": "sink-token", "mountPath": SINK_TOKEN_MOUNT, "readOnly": True})
        token_env.append({"name": SINK_TOKEN_ENV, "value": f"{SINK_TOKEN_MOUNT}/token"})
    dead = source.spec.delivery.dead_letter_sink
    if dead is not None and dead.ref is not None and dead.ref.kind == "Function" and token_exchange is not None:
        dead_namespace, dead_function = dead.ref.key(source.namespace)
        query = urllib.parse.urlencode({"function": f"{dead_namespace}/{dead_function}"})
        volumes.append({"name": "dead-letter-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": function_audience(dead_namespace, dead_function), "expirationSeconds": SINK_TOKEN_SECONDS,
            "path": "token"}}]}})
        mounts.append({"name": "dead-letter-token", "mountPath": DEAD_LETTER_TOKEN_MOUNT, "readOnly": True})
        token_env += [{"name": DEAD_LETTER_TOKEN_ENV, "value": f"{DEAD_LETTER_TOKEN_MOUNT}/token"},
                      {"name": DEAD_LETTER_EXCHANGE_ENV, "value": f"{token_exchange}?{query}"}]
    probe = {"httpGet": {"path": "/-/health", "port": RUNTIME_PORT_NAME, **({"scheme": "HTTPS"} if tls else {})},
             "periodSeconds": 5, "timeoutSeconds": 2}
    container = {
        "name": "adapter",
        "image": image,
        "args": args,
        "env": [{"name": "RIPPLE_EVENTSOURCE", "value": _manifest(source)},
                *({"name": k, "value": v} for k, v in pod_env), *token_env],
        "ports": [{"name": RUNTIME_PORT_NAME, "containerPort": RUNTIME_PORT, "protocol": "TCP"}],
        "readinessProbe": {**probe, "failureThreshold": 1},
        "livenessProbe": {**probe, "failureThreshold": 6, "initialDelaySeconds": 10},
        "resources": RESOURCES,
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
    }
    labels = adapter_labels(source)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(source),
        "spec": {
            # One replica: webhooks could take more, but ping and watch sources would each send every event
            # twice (stored once by the broker's dedup window, at twice the work).
            "replicas": 1,
            "selector": {"matchLabels": {ADAPTER_LABEL: source.name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": adapter_name(source.name),
                    "automountServiceAccountToken": talks_to_api(source),
                    "containers": [container],
                    "volumes": volumes,
                    "securityContext": POD_SECURITY,
                    "enableServiceLinks": False,
                },
            },
        },
    }


def _webhook_tls(source: EventSource) -> str | None:
    """The Secret a webhook serves HTTPS with (``spec.webhook.tls``), if any."""
    webhook = source.spec.webhook
    return webhook.tls.secret_name if webhook is not None and webhook.tls is not None else None


def service(source: EventSource) -> dict[str, Any]:
    """A webhook's Service: port 80 to the adapter, 443 when it serves HTTPS."""
    port = 443 if _webhook_tls(source) else 80
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(source),
        "spec": {"selector": {ADAPTER_LABEL: source.name},
                 "ports": [{"name": RUNTIME_PORT_NAME, "port": port, "targetPort": RUNTIME_PORT_NAME,
                            "protocol": "TCP"}]},
    }


def webhook_url(source: EventSource, cluster_domain: str = "cluster.local") -> str:
    """The address of a webhook (or of a storage source's notification endpoint)."""
    path = endpoint_path(source)
    path = "" if path == "/" else path
    scheme = "https" if _webhook_tls(source) else "http"
    return f"{scheme}://{adapter_name(source.name)}.{source.namespace}.svc.{cluster_domain}{path}"
