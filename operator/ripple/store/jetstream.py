"""The event store: brokers' streams, trigger consumers and dead letters in NATS JetStream.

An event counts as accepted only once JetStream has acknowledged storing it; every failure to store surfaces as
:class:`StoreUnavailable` so that callers answer "try again" (HTTP 503) instead of losing the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    PubAck,
    StorageType,
    StreamConfig,
)

from ripple.api.durations import seconds
from ripple.api.models import BrokerSpec
from ripple.events.model import CloudEvent
from ripple.store import subjects

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
TRIGGER_HEADER = "Ripple-Trigger"
NATS_ERRORS: tuple[type[BaseException], ...] = (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError, OSError)


class StoreUnavailable(Exception):
    """JetStream could not confirm that it stored an event; the caller should retry later."""


def dedup_id(event: CloudEvent) -> str:
    """The JetStream message id of an event: (source, id) identifies a CloudEvent, so it is the dedup key."""
    return hashlib.sha256(f"{event.source}\x00{event.id}".encode()).hexdigest()


class EventStore:
    """A JetStream connection with the operations Ripple needs, named in Ripple's terms."""

    def __init__(self, nc: NATS, publish_timeout: float = 5.0) -> None:
        self.nc = nc
        self.closing = False
        self.js: JetStreamContext = nc.jetstream(timeout=publish_timeout)
        self.publish_timeout = publish_timeout

    @classmethod
    async def connect(cls, url: str, *, name: str = "ripple", publish_timeout: float = 5.0) -> EventStore:
        store: EventStore | None = None

        async def on_error(exc: Exception) -> None:
            log.debug("nats: %s", exc)

        async def on_disconnect() -> None:
            if store is None or not store.closing:
                log.warning("nats: disconnected from %s", url)

        async def on_reconnect() -> None:
            log.info("nats: reconnected to %s", url)

        nc = await nats.connect(
            url,
            name=name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            connect_timeout=5,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
        )
        store = cls(nc, publish_timeout=publish_timeout)
        return store

    async def close(self) -> None:
        self.closing = True
        if self.nc.is_closed:
            return
        if self.nc.is_connected:
            with contextlib.suppress(*NATS_ERRORS):
                await self.nc.flush(timeout=2)
        await self.nc.close()

    # --- streams --------------------------------------------------------------------------------------------
    async def ensure_broker(self, namespace: str, broker: str, spec: BrokerSpec) -> None:
        """Create or update the broker's event stream and its dead-letter stream."""
        retention = spec.retention
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
            )
        )
        await self._ensure_stream(
            StreamConfig(
                name=subjects.dead_letter_stream_name(namespace, broker),
                subjects=subjects.dead_letter_subjects(namespace, broker),
                storage=StorageType.FILE,
                discard=DiscardPolicy.NEW,
                description=f"Ripple dead letters of broker {namespace}/{broker}",
            )
        )

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
            async with asyncio.timeout(self.publish_timeout):
                futures = [
                    await self.js.publish_async(subject, payload, wait_stall=self.publish_timeout, headers=headers)
                    for subject, payload, headers in messages
                ]
                return list(await asyncio.gather(*futures))
        except NATS_ERRORS as exc:
            raise StoreUnavailable(f"JetStream did not store the event: {type(exc).__name__}: {exc}") from exc

    async def publish_event(self, namespace: str, broker: str, event: CloudEvent) -> PubAck:
        return await self.publish(subjects.event_subject(namespace, broker, event.type), event)

    async def publish_events(self, namespace: str, broker: str, events: Sequence[CloudEvent]) -> list[PubAck]:
        """Store several events; raise :class:`StoreUnavailable` unless every one was stored."""
        return await self.publish_many(
            [
                (subjects.event_subject(namespace, broker, e.type), e.to_json_bytes(), {MSG_ID_HEADER: dedup_id(e)})
                for e in events
            ]
        )

    # --- consumers ------------------------------------------------------------------------------------------
    async def ensure_trigger_consumer(
        self,
        namespace: str,
        broker: str,
        trigger: str,
        *,
        types: frozenset[str] | None,
        ack_wait: float,
        max_ack_pending: int = 1000,
    ) -> str:
        """Create or update the trigger's durable pull consumer; return its name.

        A new trigger sees events stored from now on, as a Knative trigger does.
        """
        name = subjects.consumer_name(trigger)
        config = ConsumerConfig(
            durable_name=name,
            description=f"Ripple trigger {namespace}/{trigger}",
            deliver_policy=DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=-1,
            max_ack_pending=max_ack_pending,
            filter_subjects=subjects.trigger_subjects(namespace, broker, trigger, types),
        )
        await self.js.add_consumer(subjects.stream_name(namespace, broker), config)
        return name

    async def ensure_router_consumer(self, namespace: str, broker: str, *, ack_wait: float) -> str:
        """The broker's router consumer: every event once, for the triggers the log cannot select by type."""
        config = ConsumerConfig(
            durable_name=subjects.ROUTER_CONSUMER,
            description=f"Ripple router of broker {namespace}/{broker}",
            deliver_policy=DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=-1,
            max_ack_pending=10_000,
            filter_subject=subjects.all_events_subject(namespace, broker),
        )
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
