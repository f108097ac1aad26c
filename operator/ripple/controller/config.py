"""What the operator's handlers share: settings and connections, kept in Kopf's memo."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from ripple.api.loading import format_validation_error
from ripple.api.models import Resource
from ripple.controller.kube import Kube
from ripple.store import EventStore

R = TypeVar("R", bound=Resource)
DEFAULT_RUNTIME_IMAGE = "ghcr.io/ripple-dev/ripple:0.1.0"


@dataclass
class OperatorConfig:
    nats_url: str
    ingress_url: str
    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    cluster_domain: str = "cluster.local"
    store: EventStore | None = None
    kube: Kube | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class InvalidSpec(ValueError):
    """A resource the schema let through but the models refuse (a rule the CRD cannot express)."""


def parse(model: type[R], body: Mapping[str, Any]) -> R:
    metadata = body.get("metadata") or {}
    doc = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace") or "default"},
        "spec": dict(body.get("spec") or {}),
    }
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise InvalidSpec(format_validation_error(exc)) from None
