"""A Function's desired children: the Deployment running the Ripple runtime, its Service, its inline code, and
(when the operator is told to) the NetworkPolicy that lets only Ripple reach its pods."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ripple.api.durations import seconds
from ripple.api.models import Function
from ripple.controller.resources.eventsource import ADAPTERS
from ripple.controller.resources.natsclient import NatsClient, client_env, client_volume
from ripple.kube.names import (
    CODE_MOUNT,
    NAMESPACE_NAME_LABEL,
    RUNTIME_PORT,
    RUNTIME_PORT_NAME,
    code_configmap_name,
    deployment_name,
    function_labels,
    function_selector,
)
from ripple.runtime.idempotency import NATS_URL_ENV

__all__ = [
    "DispatcherPods",
    "code_configmap",
    "container",
    "deployment",
    "module_path",
    "network_policy",
    "network_policy_name",
    "service",
]

CODE_KEY = "handler.py"
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
DEFAULT_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


def code_configmap(fn: Function) -> dict[str, Any] | None:
    """``source.inline`` as a ConfigMap mounted at /code; ``None`` when the code is in the image."""
    source = fn.spec.source
    if source is None or not source.inline:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": code_configmap_name(fn.name), "namespace": fn.namespace,
                     "labels": function_labels(fn.name)},
        "data": {CODE_KEY: source.inline},
    }


def module_path(fn: Function) -> str:
    """Where the handler's module must sit below /code for ``module:function`` to import it."""
    return fn.spec.handler.partition(":")[0].replace(".", "/") + ".py"


def container(fn: Function, runtime_image: str, nats_url: str | None = None, *, log_format: str = "text",
              pod_env: tuple[tuple[str, str], ...] = (), delivery_env: tuple[tuple[str, str], ...] = (),
              nats_client: NatsClient | None = None) -> dict[str, Any]:
    """The Function's container. ``pod_env`` (the release's tracing) comes first, so a Function may override it;
    ``delivery_env`` (the delivery-token check) comes last and a Function's own variables of those names are
    dropped: whether only deliveries may invoke Functions is the platform's decision, not each Function's."""
    guarded = {name for name, _ in delivery_env}
    inline = code_configmap(fn) is not None
    args = ["function", "serve", "--handler", fn.spec.handler, "--host", "0.0.0.0", "--port", str(RUNTIME_PORT),
            "--timeout", f"{seconds(fn.spec.timeout):g}", "--log-format", log_format]
    if inline:
        args += ["--path", CODE_MOUNT]
    probe = {"httpGet": {"path": "/health", "port": RUNTIME_PORT_NAME}, "periodSeconds": 2, "timeoutSeconds": 1}
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    if inline:
        mounts.append({"name": "code", "mountPath": CODE_MOUNT, "readOnly": True})
    secured = nats_url is not None and nats_client is not None and nats_client.needed
    if secured:
        mounts.append(client_volume(fn.name)[1])
    return {
        "name": "function",
        "image": fn.spec.image or runtime_image,
        "args": args,
        "env": [{"name": k, "value": v} for k, v in pod_env if k not in {e.name for e in fn.spec.env}]
        + [{"name": v.name, "value": v.value} for v in fn.spec.env if v.name not in guarded]
        + [{"name": "RIPPLE_FUNCTION", "value": f"{fn.namespace}/{fn.name}"}]
        + ([{"name": NATS_URL_ENV, "value": nats_url}] if nats_url else [])
        + (client_env(nats_client) if secured and nats_client is not None else [])
        + [{"name": k, "value": v} for k, v in delivery_env],
        "ports": [{"name": RUNTIME_PORT_NAME, "containerPort": RUNTIME_PORT, "protocol": "TCP"}],
        "readinessProbe": {**probe, "failureThreshold": 1},
        "livenessProbe": {**probe, "failureThreshold": 5, "initialDelaySeconds": 5},
        "resources": DEFAULT_RESOURCES,
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }


def deployment(fn: Function, *, runtime_image: str, replicas: int | None,
               nats_url: str | None = None, log_format: str = "text",
               pod_env: tuple[tuple[str, str], ...] = (), delivery_env: tuple[tuple[str, str], ...] = (),
               nats_client: NatsClient | None = None) -> dict[str, Any]:
    """The Deployment; ``replicas`` only when creating it (afterwards the autoscaler owns the figure).
    ``nats_client``: what NATS requires of clients (its Secret is :func:`natsclient.client_secret`)."""
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if nats_url is not None and nats_client is not None and nats_client.needed:
        volumes.append(client_volume(fn.name)[0])
    if code_configmap(fn) is not None:
        items = [{"key": CODE_KEY, "path": module_path(fn)}]
        volumes.append({"name": "code", "configMap": {"name": code_configmap_name(fn.name), "items": items}})
    spec: dict[str, Any] = {
        "selector": {"matchLabels": function_selector(fn.name)},
        "template": {
            "metadata": {"labels": function_labels(fn.name)},
            "spec": {
                "containers": [container(fn, runtime_image, nats_url, log_format=log_format, pod_env=pod_env,
                                         delivery_env=delivery_env, nats_client=nats_client)],
                "volumes": volumes,
                "securityContext": POD_SECURITY,
                "enableServiceLinks": False,
                # A handler has no business with the API server: no token of the namespace's default account.
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 30,
            },
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment_name(fn.name), "namespace": fn.namespace, "labels": function_labels(fn.name)},
        "spec": spec,
    }


def service(fn: Function) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": deployment_name(fn.name), "namespace": fn.namespace, "labels": function_labels(fn.name)},
        "spec": {
            "selector": function_selector(fn.name),
            "ports": [{"name": RUNTIME_PORT_NAME, "port": 80, "targetPort": RUNTIME_PORT_NAME, "protocol": "TCP"}],
        },
    }


@dataclass(frozen=True)
class DispatcherPods:
    """Where the dispatcher runs: its namespace, and labels its pods carry (the chart's selector labels)."""

    namespace: str
    labels: Mapping[str, str]


def network_policy_name(name: str) -> str:
    """The Function's NetworkPolicy carries its name, like its Deployment and Service."""
    return deployment_name(name)


def network_policy(fn: Function, dispatcher: DispatcherPods) -> dict[str, Any]:
    """Ingress to the Function's pods on the runtime port from the dispatcher's pods (which deliver Triggers',
    Sequences' and Parallels' events) and from EventSource adapters in any namespace (a source's sink or
    dead-letter sink may be a Function, in another namespace too); from nothing else. The port is a number,
    not the port's name: some policy engines do not resolve named ports."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": network_policy_name(fn.name), "namespace": fn.namespace,
                     "labels": function_labels(fn.name)},
        "spec": {
            "podSelector": {"matchLabels": function_selector(fn.name)},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [
                    {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: dispatcher.namespace}},
                     "podSelector": {"matchLabels": dict(dispatcher.labels)}},
                    {"namespaceSelector": {}, "podSelector": {"matchLabels": dict(ADAPTERS)}},
                ],
                "ports": [{"port": RUNTIME_PORT, "protocol": "TCP"}],
            }],
        },
    }
