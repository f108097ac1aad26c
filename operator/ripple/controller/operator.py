"""``ripple operator``: run the Kopf operator with Ripple's handlers."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kopf
from aiohttp import web

from ripple.controller.certs import self_signed
from ripple.controller.config import (
    DEFAULT_RUNTIME_IMAGE,
    OperatorConfig,
    delivery_env,
    functions_nats_client,
    telemetry_env,
    token_exchange_url,
    workload_nats_client,
)
from ripple.controller.leader import OPERATOR_LEASE, run_when_leading
from ripple.controller.observe import admission
from ripple.controller.resources.function import DispatcherPods
from ripple.defaults import MAX_FANOUT, OPERATOR_METRICS_PORT, WEBHOOK_CONFIGURATION
from ripple.kube.client import load_kube_config
from ripple.kube.lease import KubeLease
from ripple.metrics import OPERATOR_LEADER, serve_metrics
from ripple.serving import start_site
from ripple.store.auth import NatsAuth

__all__ = ["OperatorOptions", "ServiceWebhookServer", "run_operator"]



class ServiceWebhookServer(kopf.WebhookServer):
    """Kopf's webhook server, registered by Service reference instead of URL.

    Many API servers cannot resolve cluster DNS names (kind, kubeadm), but all of them reach a Service they are
    pointed at; so in a cluster the webhook configuration names the operator's Service.
    """

    def __init__(self, *, service_namespace: str, service_name: str, service_port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = {"namespace": service_namespace, "name": service_name, "port": service_port}

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        async for config in super().__call__(fn):
            registered: dict[str, Any] = {"service": {**self.service, "path": urlsplit(config["url"]).path}}
            if "caBundle" in config:
                registered["caBundle"] = config["caBundle"]
            yield registered


@dataclass(frozen=True)
class OperatorOptions:
    nats_url: str
    ingress_url: str
    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    namespaces: tuple[str, ...] = ()
    webhook_host: str | None = None
    """Address the API server reaches the admission webhook at; None disables the webhook."""
    webhook_port: int = 9443
    webhook_cert: Path | None = None
    webhook_key: Path | None = None
    webhook_service: str | None = None
    """``namespace/name`` of the Service in front of the webhook: registered by reference, not by URL."""
    liveness: str | None = None
    """Kopf's liveness endpoint, e.g. http://0.0.0.0:8081/healthz."""
    broker_replicas: int = 1
    """Replicas of a Broker whose spec does not say."""
    leader_election: bool = False
    """Reconcile only while holding the Lease ``ripple-operator`` in the pod's namespace (``POD_NAMESPACE``),
    under the pod's name (``POD_NAME``): what lets the operator run more than one replica."""
    webhook_configuration: str = WEBHOOK_CONFIGURATION
    """The Validating- (and empty Mutating-) WebhookConfiguration Kopf writes the webhook into."""
    log_format: str = "text"
    """The operator's log format, passed on to the EventSource adapters it deploys."""
    metrics_port: int = OPERATOR_METRICS_PORT
    """Where ``GET /metrics`` is served from the start, standbys included (so leadership shows); 0: nowhere."""
    function_network_policy: DispatcherPods | None = None
    """Give each Function a NetworkPolicy admitting only these dispatcher pods and EventSource adapters."""
    webhook_ca: Path | None = None
    """The CA that signed ``webhook_cert`` (cert-manager's ``ca.crt``), registered as the webhooks' caBundle;
    None: the certificate itself (it is self-signed)."""
    max_fanout: int = MAX_FANOUT
    delivery_auth: str = "required"
    """What Functions do with delivery tokens: ``required``, ``optional`` or ``off`` (``ripple.signing``)."""
    delivery_keys_url: str | None = None
    """The dispatchers' JWKS (``http://<dispatcher Service>:8081/.well-known/jwks.json``); None: Functions check
    no tokens."""
    """Most triggers of one broker an event may reach: a Trigger past it is not Ready."""


def _webhook_server(options: OperatorOptions) -> kopf.WebhookServer:
    assert options.webhook_host is not None
    if options.webhook_cert is not None and options.webhook_key is not None:
        cert, key = options.webhook_cert, options.webhook_key
    else:
        directory = Path(tempfile.mkdtemp(prefix="ripple-webhook-"))
        cert_pem, key_pem = self_signed([options.webhook_host])
        cert, key = directory / "tls.crt", directory / "tls.key"
        cert.write_bytes(cert_pem)
        key.write_bytes(key_pem)
    common: dict[str, Any] = {
        "addr": "0.0.0.0" if options.webhook_host not in ("127.0.0.1", "localhost") else options.webhook_host,
        "port": options.webhook_port,
        "host": options.webhook_host,
        "certfile": cert,
        "pkeyfile": key,
        # Kopf re-reads all three when they change (a renewed Secret) and registers the webhooks again.
        "cafile": options.webhook_ca or cert,
    }
    if options.webhook_service:
        namespace, _, name = options.webhook_service.partition("/")
        return ServiceWebhookServer(service_namespace=namespace, service_name=name,
                                    service_port=options.webhook_port, **common)
    return kopf.WebhookServer(**common)


async def _serve_metrics(port: int) -> web.AppRunner | None:
    if not port:
        return None
    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    return await start_site(app, "0.0.0.0", port, name="operator-metrics")


async def run_operator(options: OperatorOptions, stop: asyncio.Event | None = None) -> None:
    metrics = await _serve_metrics(options.metrics_port)
    try:
        await _run(options, stop)
    finally:
        if metrics is not None:
            await metrics.cleanup()


async def _run(options: OperatorOptions, stop: asyncio.Event | None) -> None:
    config = OperatorConfig(nats_url=options.nats_url, ingress_url=options.ingress_url,
                            runtime_image=options.runtime_image, broker_replicas=options.broker_replicas,
                            log_format=options.log_format, function_network_policy=options.function_network_policy,
                            pod_env=telemetry_env(os.environ), max_fanout=options.max_fanout,
                            delivery_env=delivery_env(options.delivery_auth, options.delivery_keys_url),
                            token_exchange=token_exchange_url(options.delivery_auth, options.delivery_keys_url),
                            nats_client=await asyncio.to_thread(workload_nats_client, NatsAuth.from_env()),
                            functions_nats_client=await asyncio.to_thread(functions_nats_client, NatsAuth.from_env(),
                                                                          os.environ))
    from ripple.controller.handlers import trigger  # registers the handlers: only when the operator runs

    if options.webhook_host is not None:
        kopf.on.validate(*trigger.RESOURCE, id="filters")(admission("Trigger")(trigger.validate_filters))

        @kopf.on.startup(id="admission")
        async def configure_admission(settings: kopf.OperatorSettings, **_: Any) -> None:
            settings.admission.server = _webhook_server(options)
            settings.admission.managed = options.webhook_configuration

    async def reconcile(halt: asyncio.Event | None) -> None:
        await kopf.operator(
            clusterwide=not options.namespaces,
            namespaces=options.namespaces,
            memo=kopf.Memo(config=config),
            standalone=True,  # one reconciler at a time comes from the Lease, not from Kopf's peering CRDs
            stop_flag=halt,
            liveness_endpoint=options.liveness,
        )

    if not options.leader_election:
        OPERATOR_LEADER.set(1)  # the only one: it always leads
        try:
            await reconcile(stop)
        finally:
            OPERATOR_LEADER.set(0)
        return
    api = await load_kube_config()
    try:
        namespace = os.environ.get("POD_NAMESPACE") or "default"
        holder = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
        await run_when_leading(KubeLease(api, namespace, OPERATOR_LEASE, holder), reconcile, stop=stop,
                               liveness=options.liveness)
    finally:
        await api.close()
