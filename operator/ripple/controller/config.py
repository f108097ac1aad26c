"""What the operator's handlers share: settings and connections, kept in Kopf's memo."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from ripple.api.models import Resource
from ripple.controller.resources.function import DispatcherPods
from ripple.kube.client import Kube
from ripple.store import EventStore

__all__ = ["DEFAULT_RUNTIME_IMAGE", "OperatorConfig", "telemetry_env"]

R = TypeVar("R", bound=Resource)
DEFAULT_RUNTIME_IMAGE = "ghcr.io/ripple-dev/ripple:0.1.0"


def telemetry_env(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The ``OTEL_*`` variables to hand on, sorted; a service's own name and resource are each component's."""
    own = {"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"}
    return tuple(sorted((k, v) for k, v in environ.items() if k.startswith("OTEL_") and k not in own))


@dataclass
class OperatorConfig:
    nats_url: str
    ingress_url: str
    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    cluster_domain: str = "cluster.local"
    broker_replicas: int = 1
    log_format: str = "text"
    """The log format of the Functions and EventSource adapters the operator deploys: its own (``--log-format``)."""
    pod_env: tuple[tuple[str, str], ...] = ()
    """The operator's own ``OTEL_*`` variables (:func:`telemetry_env`), handed to the Functions and EventSource
    adapters it deploys: tracing is configured once, for the whole release."""
    function_network_policy: DispatcherPods | None = None
    """Give each Function a NetworkPolicy admitting these dispatcher pods (and EventSource adapters); None: give
    none, and remove those given before (``--function-network-policy``)."""
    store: EventStore | None = None
    kube: Kube | None = None
