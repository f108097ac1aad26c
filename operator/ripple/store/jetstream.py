"""The event store: brokers' streams, trigger consumers and dead letters in NATS JetStream.

An event counts as accepted only once JetStream has acknowledged storing it; every failure to store surfaces as
:class:`StoreUnavailable` so that callers answer "try again" (HTTP 503) instead of losing the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DiscardPolicy,
    Placement,
    PubAck,
    StorageType,
    StreamConfig,
)

from ripple._aio import cancel_and_wait
from ripple.api.durations import seconds
from ripple.api.models import Broker, BrokerSpec, Trigger
from ripple.events.model import CloudEvent
from ripple.store import subjects
from ripple.store.auth import NatsAuth
from ripple.store.consumers import ACK_WAIT, backstop_consumer_config, router_consumer_config, trigger_consumer_config
from ripple.store.publisher import Publisher

__all__ = [
    "DEAD_LETTER_ROOM",
    "MSG_ID_HEADER",
    "EventStore",
    "EventTooLarge",
    "StoreUnavailable",
    "dedup_id",
    "server_urls",
    "until_stored",
]

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
TRIGGER_HEADER = "Ripple-Trigger"
NATS_ERRORS: tuple[type[BaseException], ...] = (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError, OSError)




DEAD_LETTER_ROOM = 4096
"""Bytes kept free under the server's ``max_payload`` for what a dead letter adds to an event (its context and
headers), so that every event the store accepted can also be kept as a dead letter."""


class EventTooLarge(Exception):
    """The event's stored form is over what the store takes in one message (the server's ``max_payload``)."""


class StoreUnavailable(Exception):
    """JetStream could not confirm that it stored an event; the caller should retry later."""


def dedup_id(event: CloudEvent) -> str:
    """The JetStream message id of an event: (source, id) identifies a CloudEvent, so it is the dedup key.

    Both parts are length-prefixed, so no choice of characters can make two different pairs hash alike.
    """
    source, event_id = event.source.encode(), event.id.encode()
    return hashlib.sha256(b"%d:%s%d:%s" % (len(source), source, len(event_id), event_id)).hexdigest()


ADVISORY_RETENTION = 7 * 24 * 3600.0
RECONNECT_DELAY = 0.25
RECONNECT_DELAY_MAX = 5.0


STORE_RETRY_DELAY = 0.5
STORE_RETRY_DELAY_MAX = 10.0


async def until_stored(store_once: Callable[[], Awaitable[bool]], keep_alive: Callable[[], Awaitable[None]]) -> None:
    """Repeat ``store_once`` until it stores, with a backoff, calling ``keep_alive`` between tries.

    A message whose event could not be stored yet (its reply, routed copies or dead letter) is held this way
    rather than handed back to JetStream: a redelivery would repeat the delivery and use up one of the
    consumer's ``max_deliver``, so an outage of the store would end in the backstop instead of in patience.
    """
    delay = STORE_RETRY_DELAY
    while not await store_once():
        with contextlib.suppress(*NATS_ERRORS):
            await keep_alive()
        await asyncio.sleep(delay)
        delay = min(delay * 2, STORE_RETRY_DELAY_MAX)


def server_urls(urls: str) -> list[str]:
    """The servers of a ``--nats`` value: one URL, or several separated by commas (a cluster's, any of which the
    client may use; it learns the others from the servers too and fails over between them)."""
    found = [url.strip() for url in urls.split(",") if url.strip()]
    if not found:
        raise ValueError("no NATS URL given")
    return found


class EventStore:
    """A JetStream connection with the operations Ripple needs, named in Ripple's terms.

    nats-py closes a connection for good on any protocol error the server reports (``-ERR``), not only on an
    outage it can reconnect from; the store then opens a new one, so ``nc`` and ``js`` may change over its
    life: read them through the store each time, and rebuild subscriptions when a fetch says the old one closed.
    """

    def __init__(self, url: str, *, name: str = "ripple", publish_timeout: float = 5.0,
                 auth: NatsAuth | None = None) -> None:
        self.url = url
        self.auth = NatsAuth() if auth is None else auth
        """TLS and credentials for NATS (:mod:`ripple.store.auth`)."""
        self.name = name
        self.publish_timeout = publish_timeout
        self.closing = False
        self.connections = 0
        """Connections opened so far: 1 after :meth:`connect`, one more each time a closed one was replaced."""
        self.nc: NATS = NATS()
        self.js: JetStreamContext = self.nc.jetstream(timeout=publish_timeout)
        self.publisher = Publisher(self.nc, publish_timeout)
        self._replacing: asyncio.Task[None] | None = None
        self.default_replicas = 1
        """Replicas of a broker whose spec does not say (the operator's ``--broker-replicas``)."""
        self.internal_replicas = 1
        """Replicas of Ripple's own streams (advisories, records): the most any broker of this store asked for."""

    @classmethod
    async def connect(cls, url: str, *, name: str = "ripple", publish_timeout: float = 5.0,
                      auth: NatsAuth | None = None) -> EventStore:
        """A connected store; ``auth`` defaults to the ``RIPPLE_NATS_*`` variables (an unusable one exits the
        process naming it: no component can do anything without its store)."""
        if auth is None:
            try:
                auth = NatsAuth.from_env()
            except ValueError as exc:
                raise SystemExit(f"ripple: {exc}") from None
        store = cls(url, name=name, publish_timeout=publish_timeout, auth=auth)
        await store._open()
        return store

    @property
    def connected(self) -> bool:
        return not self.closing and self.nc.is_connected

    async def _open(self) -> None:
        url = self.url

        async def on_error(exc: Exception) -> None:
            log.debug("nats: %s", exc)

        async def on_disconnect() -> None:
            if not self.closing:
                log.warning("nats: disconnected from %s", url)

        async def on_reconnect() -> None:
            log.info("nats: reconnected to %s", url)

        secured = await asyncio.to_thread(self.auth.connect_options)
        nc = await nats.connect(
            **secured,
            servers=server_urls(url),
            name=self.name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=RECONNECT_DELAY,
            connect_timeout=5,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            closed_cb=self._on_closed,
            skip_subject_validation=True,  # every subject is built by store.subjects from encoded tokens
        )
        publisher = Publisher(nc, self.publish_timeout)
        await publisher.start()
        replaced, self.publisher = self.publisher, publisher
        self.nc, self.js = nc, nc.jetstream(timeout=self.publish_timeout)
        await replaced.close()
        self.connections += 1

    async def _on_closed(self) -> None:
        if self.closing or (self._replacing is not None and not self._replacing.done()):
            return
        log.error("nats: connection to %s closed (%s); opening a new one", self.url, self.nc.last_error)
        self._replacing = asyncio.create_task(self._replace(), name="nats reconnect")

    async def _replace(self) -> None:
        delay = RECONNECT_DELAY
        while not self.closing:
            try:
                await self._open()
            except NATS_ERRORS as exc:
                log.warning("nats: cannot connect to %s yet: %s", self.url, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_DELAY_MAX)
                continue
            log.info("nats: connection %d to %s open", self.connections, self.url)
            return

    async def close(self) -> None:
        self.closing = True
        if self._replacing is not None:
            await cancel_and_wait([self._replacing])
        if self.nc.is_closed or not (self.nc.is_connected or self.nc.is_reconnecting):
            await self.publisher.close()
            return
        if self.nc.is_connected:
            with contextlib.suppress(*NATS_ERRORS):
                await self.nc.flush(timeout=2)
        await self.publisher.close()
        await self.nc.close()

    # --- streams --------------------------------------------------------------------------------------------
    async def ensure_broker(self, namespace: str, broker: str, spec: BrokerSpec) -> None:
        """Create or update the broker's event stream and its dead-letter stream, with the broker's replicas
        (JetStream moves a live stream to a new replica count; its consumers follow it)."""
        retention = spec.retention
        placement = Placement(tags=list(spec.placement.tags)) if spec.placement is not None else None
        replicas = spec.replicas or self.default_replicas
        await self._ensure_stream(
            StreamConfig(
                name=subjects.stream_name(namespace, broker),
                subjects=subjects.broker_subjects(namespace, broker),
                storage=StorageType.FILE,
                max_age=seconds(retention.max_age),
                max_bytes=retention.max_bytes,
                discard=DiscardPolicy.OLD,
                duplicate_window=seconds(spec.duplicate_window),
                description=f"Ripple broker {namespace}/{broker}",
                num_replicas=replicas,
                placement=placement,
            )
        )
        await self._ensure_stream(
            StreamConfig(
                name=subjects.dead_letter_stream_name(namespace, broker),
                subjects=subjects.dead_letter_subjects(namespace, broker),
                storage=StorageType.FILE,
                discard=DiscardPolicy.NEW,
                description=f"Ripple dead letters of broker {namespace}/{broker}",
                num_replicas=replicas,
                placement=placement,
            )
        )
        self.internal_replicas = max(self.internal_replicas, replicas)

    async def ensure_brokers(self, brokers: Mapping[tuple[str, str], Broker]) -> None:
        """Create or update the streams of every ``(namespace, name) → Broker``."""
        for (namespace, name), broker in brokers.items():
            await self.ensure_broker(namespace, name, broker.spec)

    def own_replicas(self) -> int:
        """Replicas of Ripple's own streams (advisories, records): as many as the largest broker's, and up to 3
        when the client knows of that many servers (a cluster), so that losing one server loses none of them."""
        known = len({(u.hostname, u.port) for u in self.nc.servers}) if self.nc.is_connected else 1
        return max(self.internal_replicas, min(3, known))

    async def ensure_advisory_stream(self) -> str:
        """The stream of max-deliveries advisories and the dispatchers' consumer of it; return the consumer."""
        await self._ensure_stream(
            StreamConfig(
                name=subjects.ADVISORY_STREAM,
                subjects=[subjects.MAX_DELIVERIES_ADVISORIES],
                storage=StorageType.FILE,
                max_age=ADVISORY_RETENTION,
                discard=DiscardPolicy.OLD,
                description="Ripple: messages JetStream stopped redelivering, to keep as dead letters",
                num_replicas=self.own_replicas(),
            )
        )
        await self.js.add_consumer(subjects.ADVISORY_STREAM, backstop_consumer_config())
        return subjects.BACKSTOP_CONSUMER

    async def delete_broker(self, namespace: str, broker: str) -> None:
        """Remove the broker's streams (its events, consumers and dead letters with them)."""
        for name in (subjects.stream_name(namespace, broker), subjects.dead_letter_stream_name(namespace, broker)):
            try:
                await self.js.delete_stream(name)
            except nats.js.errors.NotFoundError:
                pass

    async def _ensure_stream(self, config: StreamConfig) -> None:
        try:
            await self.js.stream_info(config.name or "")
        except nats.js.errors.NotFoundError:
            await self.js.add_stream(config)
            return
        await self.js.update_stream(config)

    # --- publishing -----------------------------------------------------------------------------------------
    async def publish(
        self, subject: str, event: CloudEvent, *, msg_id: str | None = None, headers: dict[str, str] | None = None
    ) -> PubAck:
        """Store one event; return only once JetStream confirmed it, else raise :class:`StoreUnavailable`."""
        all_headers = {MSG_ID_HEADER: msg_id or dedup_id(event), **(headers or {})}
        return await self.publish_stored(subject, event.to_json_bytes(), all_headers)

    async def publish_stored(self, subject: str, payload: bytes, headers: dict[str, str]) -> PubAck:
        """Store an event already in its stored form (the router's copies); errors as for :meth:`publish`."""
        return (await self.publish_many([(subject, payload, headers)]))[0]

    async def publish_many(self, messages: Sequence[tuple[str, bytes, dict[str, str]]]) -> list[PubAck]:
        """Store messages pipelined (sent back to back, acknowledgements awaited together); all or an error."""
        if not self.nc.is_connected:
            raise StoreUnavailable("not connected to NATS")
        try:
            return await self.publisher.publish_all(messages)
        except NATS_ERRORS as exc:
            raise StoreUnavailable(f"JetStream did not store the event: {type(exc).__name__}: {exc}") from exc

    @property
    def max_event_bytes(self) -> int:
        """The largest stored form of an event the store accepts: the server's limit less room for a dead letter."""
        return self.nc.max_payload - DEAD_LETTER_ROOM

    def check_size(self, stored: bytes) -> None:
        """Raise :class:`EventTooLarge` unless an event stored as ``stored`` can be kept, and dead-lettered."""
        if len(stored) > self.max_event_bytes:
            raise EventTooLarge(f"the event takes {len(stored)} bytes in the store (its data in base64), over the "
                                f"limit of {self.max_event_bytes} bytes (the NATS server's max_payload, less room "
                                f"for a dead letter)")

    async def publish_event(
        self, namespace: str, broker: str, event: CloudEvent, *, stored: bytes | None = None
    ) -> PubAck:
        """Store one new event (a reply), given its stored form if the caller has it already;
        :class:`EventTooLarge` when it is over :attr:`max_event_bytes`."""
        stored = event.to_json_bytes() if stored is None else stored
        self.check_size(stored)
        subject = subjects.event_subject(namespace, broker, event.type)
        return await self.publish_stored(subject, stored, {MSG_ID_HEADER: dedup_id(event)})

    async def publish_events(self, namespace: str, broker: str, events: Sequence[CloudEvent]) -> list[PubAck]:
        """Store several events; raise :class:`StoreUnavailable` unless every one was stored, and
        :class:`EventTooLarge`, before storing any, when one is over :attr:`max_event_bytes`."""
        messages = [
            (subjects.event_subject(namespace, broker, e.type), e.to_json_bytes(), {MSG_ID_HEADER: dedup_id(e)})
            for e in events
        ]
        for _, stored, _ in messages:
            self.check_size(stored)
        return await self.publish_many(messages)

    # --- consumers ------------------------------------------------------------------------------------------
    async def ensure_trigger_consumer(self, trigger: Trigger, *, ack_wait: float = ACK_WAIT) -> str:
        """Create or update the trigger's durable pull consumer (:func:`trigger_consumer_config`); return its name."""
        config = trigger_consumer_config(trigger, ack_wait=ack_wait)
        await self.js.add_consumer(subjects.stream_name(trigger.namespace, trigger.spec.broker), config)
        return config.durable_name or ""

    async def ensure_consumer(self, namespace: str, broker: str, config: ConsumerConfig) -> str:
        """Create or update a consumer of the broker's stream; return its name."""
        await self.js.add_consumer(subjects.stream_name(namespace, broker), config)
        return config.durable_name or ""

    async def ensure_router_consumer(self, namespace: str, broker: str, *, ack_wait: float = ACK_WAIT) -> str:
        """Create or update the broker's router consumer; return its name."""
        config = router_consumer_config(namespace, broker, ack_wait=ack_wait)
        await self.js.add_consumer(subjects.stream_name(namespace, broker), config)
        return subjects.ROUTER_CONSUMER

    async def delete_trigger_consumer(self, namespace: str, broker: str, trigger: str) -> None:
        try:
            await self.js.delete_consumer(subjects.stream_name(namespace, broker), subjects.consumer_name(trigger))
        except nats.js.errors.NotFoundError:
            pass

    # --- dead letters ---------------------------------------------------------------------------------------
    async def store_dead_letter(
        self, namespace: str, broker: str, trigger: str, event: CloudEvent, *, delivery_id: str
    ) -> PubAck:
        """Keep an undeliverable event in the broker's dead-letter stream (dedup on the delivery that failed)."""
        return await self.publish(
            subjects.dead_letter_subject(namespace, broker, trigger),
            event,
            msg_id=f"dlq:{trigger}:{delivery_id}",
            headers={TRIGGER_HEADER: f"{namespace}/{trigger}"},
        )
