"""What the operator's handlers share: settings and connections, kept in Kopf's memo."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from ripple.api.models import Resource
from ripple.controller.resources.function import DispatcherPods
from ripple.kube.client import Kube
from ripple.store import EventStore

__all__ = ["DEFAULT_RUNTIME_IMAGE", "OperatorConfig"]

R = TypeVar("R", bound=Resource)
DEFAULT_RUNTIME_IMAGE = "ghcr.io/ripple-dev/ripple:0.1.0"


@dataclass
class OperatorConfig:
    nats_url: str
    ingress_url: str
    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    cluster_domain: str = "cluster.local"
    broker_replicas: int = 1
    log_format: str = "text"
    """The log format of the EventSource adapters the operator deploys: its own (``--log-format``)."""
    function_network_policy: DispatcherPods | None = None
    """Give each Function a NetworkPolicy admitting these dispatcher pods (and EventSource adapters); None: give
    none, and remove those given before (``--function-network-policy``)."""
    store: EventStore | None = None
    kube: Kube | None = None
