"""Names, labels and addresses shared by the operator, the data plane and the Helm chart."""

from __future__ import annotations

import hashlib

__all__ = [
    "CODE_MOUNT",
    "FUNCTION_LABEL",
    "NAMESPACE_NAME_LABEL",
    "PART_OF",
    "RUNTIME_PORT",
    "RUNTIME_PORT_NAME",
    "SERVICE_NAME_LABEL",
    "adapter_name",
    "broker_url",
    "code_configmap_name",
    "deployment_name",
    "flow_url",
    "function_labels",
    "function_selector",
    "function_url",
]

FUNCTION_LABEL = "ripple.dev/function"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""The label the API server puts on every namespace, its name: how a NetworkPolicy selects one namespace."""
RUNTIME_PORT = 8080
RUNTIME_PORT_NAME = "http"
PART_OF = {"app.kubernetes.io/part-of": "ripple"}
CODE_MOUNT = "/code"


def deployment_name(function: str) -> str:
    """The Deployment (and Service) the operator creates for a Function carries the Function's name."""
    return function


def function_labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "function", **PART_OF,
            FUNCTION_LABEL: name}


def function_selector(name: str) -> dict[str, str]:
    return {FUNCTION_LABEL: name}


def code_configmap_name(name: str) -> str:
    return f"{name}-code"


def function_url(namespace: str, name: str, cluster_domain: str = "cluster.local") -> str:
    """The Function's Service address, as its Addressable ``status.address.url``."""
    return f"http://{name}.{namespace}.svc.{cluster_domain}"


def broker_url(ingress_url: str, namespace: str, name: str) -> str:
    return f"{ingress_url.rstrip('/')}/{namespace}/{name}"


def flow_url(ingress_url: str, kind: str, namespace: str, name: str) -> str:
    """A Sequence's or Parallel's address on the ingress: ``/<namespace>/sequences/<name>``."""
    return f"{ingress_url.rstrip('/')}/{namespace}/{kind.lower()}s/{name}"


def adapter_name(source: str) -> str:
    """The name of an EventSource's adapter Deployment, Service and ServiceAccount: ``<source>-source``, shortened
    with a hash when that would not be a DNS label."""
    name = f"{source}-source"
    if len(name) <= 63:
        return name
    return f"{source[:48]}-{hashlib.sha256(source.encode()).hexdigest()[:6]}-source"
