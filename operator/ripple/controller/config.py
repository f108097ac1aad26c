"""What the operator's handlers share: settings and connections, kept in Kopf's memo."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from ripple.api.models import Resource
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
    """Replicas of a Broker whose spec does not say."""
    store: EventStore | None = None
    kube: Kube | None = None
