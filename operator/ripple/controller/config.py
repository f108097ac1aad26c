"""What the operator's handlers share: settings and connections, kept in Kopf's memo."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ripple.api.models import Resource
from ripple.controller.resources.function import DispatcherPods
from ripple.controller.resources.natsclient import NatsClient
from ripple.defaults import MAX_FANOUT
from ripple.kube.client import Kube
from ripple.signing import AUTH_ENV, EXCHANGE_PATH, JWKS_PATH, KEYS_ENV
from ripple.store import EventStore
from ripple.store.auth import NatsAuth

__all__ = [
    "DEFAULT_RUNTIME_IMAGE",
    "OperatorConfig",
    "delivery_env",
    "functions_nats_client",
    "telemetry_env",
    "token_exchange_url",
    "workload_nats_client",
]

R = TypeVar("R", bound=Resource)
DEFAULT_RUNTIME_IMAGE = "ghcr.io/ripple-dev/ripple:0.1.0"


def telemetry_env(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The ``OTEL_*`` variables to hand on, sorted; a service's own name and resource are each component's."""
    own = {"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"}
    return tuple(sorted((k, v) for k, v in environ.items() if k.startswith("OTEL_") and k not in own))


def delivery_env(mode: str, keys_url: str | None) -> tuple[tuple[str, str], ...]:
    """What tells each Function's runtime to check delivery tokens (``ripple.signing``); nothing when ``off`` or
    with no JWKS to check them against."""
    if mode == "off" or not keys_url:
        return ()
    return ((KEYS_ENV, keys_url), (AUTH_ENV, mode))


FUNCTIONS_USER_ENV = "RIPPLE_FUNCTIONS_NATS_USER"
FUNCTIONS_PASSWORD_ENV = "RIPPLE_FUNCTIONS_NATS_PASSWORD_FILE"


def workload_nats_client(auth: NatsAuth) -> NatsClient:
    """What the operator's adapters need of its own NATS settings: the CA and a user's password (reads the CA
    file). A ``.creds`` file, an NKEY or a token is the operator's alone: not handed on."""
    return NatsClient(ca=auth.ca.read_bytes() if auth.ca is not None else None, user=auth.user,
                      password=auth.password)


def functions_nats_client(auth: NatsAuth, environ: Mapping[str, str]) -> NatsClient:
    """What Functions connect as: the user :data:`FUNCTIONS_USER_ENV` names (the chart's ``functions``, allowed the
    idempotency ledger only) when the operator is given one, else what the adapters get. Reads files."""
    adapters = workload_nats_client(auth)
    user, password_file = environ.get(FUNCTIONS_USER_ENV), environ.get(FUNCTIONS_PASSWORD_ENV)
    if not user or not password_file:
        return adapters
    try:
        password = Path(password_file).read_text().strip()
    except OSError as exc:
        raise ValueError(f"{FUNCTIONS_PASSWORD_ENV}: {exc}") from None
    return NatsClient(ca=adapters.ca, user=user, password=password)


def token_exchange_url(mode: str, keys_url: str | None) -> str | None:
    """The dispatchers' token exchange, beside their JWKS (the same Service and port)."""
    if mode == "off" or not keys_url:
        return None
    return keys_url.removesuffix(JWKS_PATH) + EXCHANGE_PATH


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
    delivery_env: tuple[tuple[str, str], ...] = ()
    """``RIPPLE_DELIVERY_KEYS`` and ``RIPPLE_DELIVERY_AUTH`` for every Function (:func:`delivery_env`): where the
    dispatchers' JWKS is and whether a request needs a delivery token; empty: Functions check none."""
    nats_client: NatsClient = field(default_factory=NatsClient)
    """What NATS requires of clients (the operator's own ``RIPPLE_NATS_*``): each adapter gets it in a Secret of
    its own."""
    functions_nats_client: NatsClient = field(default_factory=NatsClient)
    """The same for Functions, as the user limited to their idempotency ledger when there is one."""
    token_exchange: str | None = None
    """Where a dispatcher gives an EventSource adapter a delivery token for its Function sink
    (``ripple.cluster.exchange``); None while Functions check no tokens."""
    function_network_policy: DispatcherPods | None = None
    """Give each Function a NetworkPolicy admitting these dispatcher pods (and EventSource adapters); None: give
    none, and remove those given before (``--function-network-policy``)."""
    max_fanout: int = MAX_FANOUT
    """Most triggers of one broker an event may reach: a Trigger past it is not Ready (``--max-fanout``)."""
    store: EventStore | None = None
    kube: Kube | None = None
