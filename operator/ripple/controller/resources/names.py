"""Names, labels and addresses shared by the operator, the data plane and the Helm chart."""

from __future__ import annotations

from ripple.scaling.kubernetes import FUNCTION_LABEL, RUNTIME_PORT, RUNTIME_PORT_NAME, deployment_name

PART_OF = {"app.kubernetes.io/part-of": "ripple"}
CODE_MOUNT = "/code"

__all__ = ["CODE_MOUNT", "FUNCTION_LABEL", "PART_OF", "RUNTIME_PORT", "RUNTIME_PORT_NAME", "deployment_name"]


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
