"""One EventSource's adapter, assembled: its delivery, its webhook endpoint or its long-running reader.

Local mode (``local/``) and the cluster's ``ripple source run`` build adapters the same way and differ only in
what they hand over: where secrets come from, which sink objects are (a broker in this process's JetStream, or
a URL), and whether a Kubernetes API client is at hand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client

from ripple.api.durations import seconds
from ripple.api.models import EventSource, SecretKeyRef
from ripple.dispatch.policy import DeliveryPolicy
from ripple.events.model import CloudEvent
from ripple.sources.delivery import DeadLetterKeeper, SourceDelivery, SourceStats
from ripple.sources.endpoint import WebhookEndpoint
from ripple.sources.kubernetes import run_kubernetes
from ripple.sources.nats import run_nats
from ripple.sources.ping import run_ping
from ripple.sources.postgres import PostgresStatus, run_postgres
from ripple.sources.signatures import Verifier
from ripple.sources.sink import Sink
from ripple.sources.storage import StorageStatus, notification_events, run_storage_poll
from ripple.store import EventStore

__all__ = [
    "DEAD_LETTER_NAME_PREFIX",
    "Adapter",
    "SecretLookup",
    "SecretMissing",
    "dead_letter_broker",
    "dead_letter_name",
    "endpoint_path",
    "stream_keeper",
]

log = logging.getLogger(__name__)

DEAD_LETTER_NAME_PREFIX = "_source-"
"""A source's dead letters are kept in a broker's dead-letter stream under ``_source-<name>``: no trigger can
have that name (Kubernetes names never start with ``_``), so ``ripple dlq`` tells the two apart."""
SecretLookup = Callable[[SecretKeyRef], bytes]
"""The value of a Secret key in the source's namespace; raises :class:`SecretMissing`."""
KubeApi = Callable[[], Awaitable[client.ApiClient]]


class SecretMissing(Exception):
    """A Secret or key the source names does not exist (the message names them, never a value)."""


def dead_letter_name(source: EventSource) -> str:
    return f"{DEAD_LETTER_NAME_PREFIX}{source.name}"


def dead_letter_broker(source: EventSource) -> tuple[str, str]:
    """The broker whose dead-letter stream keeps the source's dead letters: its sink broker, else the namespace's
    ``default`` broker."""
    ref = source.spec.sink.ref
    if ref is not None and ref.kind == "Broker":
        return ref.key(source.namespace)
    return source.namespace, "default"


def stream_keeper(source: EventSource, store: Callable[[], Awaitable[EventStore]]) -> DeadLetterKeeper:
    """Keeps the source's dead letters in :func:`dead_letter_broker`'s dead-letter stream."""
    namespace, broker = dead_letter_broker(source)

    async def keep(letter: CloudEvent) -> bool:
        try:
            await (await store()).store_dead_letter(namespace, broker, dead_letter_name(source), letter,
                                                    delivery_id=letter.id)
        except Exception as exc:  # the last stop of an event: the delivery keeps trying
            log.warning("source %s/%s: dead-letter stream unavailable: %s", source.namespace, source.name, exc)
            return False
        return True

    return keep


def endpoint_path(source: EventSource) -> str:
    """The path of a webhook's (or storage notifications') endpoint below the adapter's root."""
    return source.spec.webhook.path if source.spec.webhook is not None else "/"


@dataclass
class Adapter:
    """A source with its way to the sink; :meth:`run` reads its upstream, :meth:`endpoint` serves a webhook."""

    source: EventSource
    sink: Sink
    dead_letter_sink: Sink | None = None
    keep: DeadLetterKeeper | None = None
    secrets: SecretLookup | None = None
    kube_api: KubeApi | None = None
    stats: SourceStats = field(default_factory=SourceStats)
    postgres: PostgresStatus = field(default_factory=PostgresStatus)
    storage: StorageStatus = field(default_factory=StorageStatus)
    checkpoints: Callable[[], Awaitable[Any]] | None = None
    """The storage source's checkpoint bucket (JetStream KV)."""
    started: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.name = f"{self.source.namespace}/{self.source.name}"
        self.kind = self.source.spec.kind
        self.delivery = SourceDelivery(self.name, self.sink, DeliveryPolicy.from_spec(self.source.spec.delivery),
                                       dead_letter_sink=self.dead_letter_sink, keep=self.keep, stats=self.stats)

    def _secret(self, ref: SecretKeyRef) -> bytes:
        if self.secrets is None:
            raise SecretMissing(f"no Secrets are available to read '{ref.name}'")
        return self.secrets(ref)

    @property
    def serves_http(self) -> bool:
        """A webhook, or a storage source fed by the server's notifications."""
        storage = self.source.spec.storage
        return self.kind == "webhook" or (storage is not None and storage.mode == "notifications")

    def endpoint(self, max_body: int) -> WebhookEndpoint:
        spec = self.source.spec
        assert self.serves_http, "only webhooks and storage notifications have an endpoint"
        signature = (spec.webhook.signature if spec.webhook is not None
                     else spec.storage.signature if spec.storage is not None else None)
        verifier = None
        if signature is not None:
            verifier = Verifier(signature.scheme, self._secret(signature.secret_ref), signature.header,
                                seconds(signature.tolerance))
        decode = None
        if spec.storage is not None:
            source = self.source

            def decode(headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
                return notification_events(source, headers, body)

        return WebhookEndpoint(self.source, self.delivery, verifier, max_body, decode=decode)

    def _s3_client(self) -> Any:
        storage = self.source.spec.storage
        assert storage is not None
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        access = secret = None
        if storage.credentials_secret_ref is not None:
            access, _, secret = self._secret(storage.credentials_secret_ref).decode().strip().partition(":")
        config = AioConfig(connect_timeout=10, read_timeout=30, retries={"max_attempts": 3})
        return get_session().create_client("s3", endpoint_url=storage.endpoint, region_name=storage.region,
                                           aws_access_key_id=access, aws_secret_access_key=secret, config=config)

    async def run(self) -> None:
        """Read the upstream until cancelled (webhooks and storage notifications are served instead)."""
        spec = self.source.spec
        if spec.ping is not None:
            await run_ping(self.source, self.delivery)
        elif spec.nats is not None:
            ref = spec.nats.credentials_secret_ref
            credentials = None if ref is None else self._secret(ref).decode()
            await run_nats(self.source, self.delivery, credentials=credentials)
        elif spec.postgres is not None:
            dsn = self._secret(spec.postgres.connection_secret_ref).decode().strip()
            await run_postgres(self.source, self.delivery, dsn, self.postgres)
        elif spec.storage is not None and spec.storage.mode == "poll":
            if self.checkpoints is None:
                raise SecretMissing("a polling storage source needs NATS for its checkpoint")
            await run_storage_poll(self.source, self.delivery, self._s3_client, self.checkpoints, self.storage)
        elif spec.kubernetes is not None:
            if self.kube_api is None:
                raise SecretMissing("a Kubernetes source needs a Kubernetes API (a kubeconfig or a ServiceAccount)")
            api = await self.kube_api()
            try:
                await run_kubernetes(self.source, self.delivery, api)
            finally:
                await api.close()
        else:
            raise NotImplementedError(f"{self.kind} sources have no adapter in this release")

    def status(self) -> dict[str, Any]:
        """What ``ripple status`` shows of the source."""
        webhook = self.source.spec.webhook
        verification = None
        if webhook is not None:
            verification = webhook.signature.scheme if webhook.signature is not None else "none"
        extra: dict[str, Any] = {}
        if self.kind == "postgres":
            extra = {"slot": self.postgres.slot, "confirmedLsn": self.postgres.confirmed_lsn,
                     "lagBytes": self.postgres.lag_bytes}
        elif self.kind == "storage":
            extra = {"objects": self.storage.objects, "lastCheckpoint": self.storage.last_checkpoint}
        return {
            **extra,
            "kind": self.kind,
            "verification": verification,
            "sink": self.sink.name,
            "sent": self.stats.sent,
            "retried": self.stats.retried,
            "deadLettered": self.stats.dead_lettered,
            "refused": self.stats.refused,
            "lastError": self.stats.last_error,
        }
