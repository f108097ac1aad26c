"""The NATS source: messages on a subject become events, at most once (core NATS) or at least once (JetStream).

* Core NATS (``spec.nats.subject``, optionally ``queueGroup``): what the server pushes while the adapter is
  connected. Core NATS itself keeps nothing, so a message published while the adapter is down is not seen; once
  received it is sent with the source's retries and dead letter like any other.
* JetStream (``stream`` + ``durable``): a durable pull consumer on the stream; a message is acked only after the
  sink accepted its event (or it was kept as a dead letter), so a killed adapter loses nothing: the consumer
  redelivers what was not acked, and the id (``Nats-Msg-Id``, else ``<stream>:<stream sequence>``) lets the
  broker store it once.

A message that already is a CloudEvent (``ce-`` headers, or a CloudEvents content type, or a structured JSON
event) is forwarded as it is; any other becomes ``dev.ripple.sources.nats.message`` with the NATS subject as
``subject`` and the payload as data.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Mapping

import nats
import nats.errors
import nats.js.api
import nats.js.errors
from nats.aio.client import Client, RawCredentials
from nats.aio.msg import Msg

from ripple.api.models import EventSource
from ripple.events.http import carries_cloudevents, decode_message
from ripple.events.model import CloudEvent, EventError, try_json
from ripple.sources.delivery import Sending, SourceDelivery
from ripple.sources.webhook import source_path

__all__ = ["ACK_WAIT", "MESSAGE_TYPE", "nats_event", "run_nats"]

log = logging.getLogger(__name__)

MESSAGE_TYPE = "dev.ripple.sources.nats.message"
ACK_WAIT = 30.0
"""Seconds JetStream waits for an ack before redelivering; a delivery still retrying reports progress sooner."""
PROGRESS_EVERY = ACK_WAIT / 3
FETCH_WAIT = 5.0
MSG_ID = "Nats-Msg-Id"


def nats_event(source: EventSource, subject: str, headers: Mapping[str, str] | None, data: bytes,
               *, fallback_id: str) -> CloudEvent:
    """The event a message carries, or the one made of it; :class:`EventError` for a broken CloudEvent."""
    headers = headers or {}
    event: CloudEvent | None = None
    try:
        if carries_cloudevents(headers):
            event = decode_message(headers, data)
        elif data[:1] == b"{" and b'"specversion"' in data:
            doc = try_json(data)
            if isinstance(doc, dict) and "specversion" in doc:
                event = decode_message({"Content-Type": "application/cloudevents+json"}, data)
    except EventError as exc:
        # Not a valid CloudEvent after all (or a batch): forwarded as a plain message rather than lost.
        log.info("source %s: message on %s is not a valid CloudEvent (%s); sent as a message", source.name,
                 subject, exc)
        event = None
    if event is None:
        attributes = {
            "specversion": "1.0",
            "id": headers.get(MSG_ID) or fallback_id,
            "source": source_path(source.namespace, source.name),
            "type": MESSAGE_TYPE,
            "subject": subject,
        }
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        if content_type:
            attributes["datacontenttype"] = content_type
        event = CloudEvent.create(attributes, data or None)
    overrides = source.spec.ce_overrides
    if overrides is not None and overrides.extensions:
        event = event.with_attributes(**overrides.extensions)
    return event


async def run_nats(source: EventSource, delivery: SourceDelivery, *, credentials: str | None = None) -> None:
    """Read messages until cancelled; a lost connection ends the run with an error (its supervisor restarts it)."""
    spec = source.spec.nats
    assert spec is not None, "run_nats runs a NATS source"
    lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def closed() -> None:
        if not lost.done():
            lost.set_result(None)

    nc = await nats.connect(spec.url, name=f"ripple-source-{source.namespace}-{source.name}", closed_cb=closed,
                            max_reconnect_attempts=-1, connect_timeout=5,
                            user_credentials=None if credentials is None else RawCredentials(credentials))
    try:
        reader = (_jetstream(nc, source, delivery) if spec.stream is not None else _core(nc, source, delivery))
        task: asyncio.Future[None] = asyncio.ensure_future(reader)
        await asyncio.wait([task, lost], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        else:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise ConnectionError("the NATS connection closed")
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 5)


async def _core(nc: Client, source: EventSource, delivery: SourceDelivery) -> None:
    spec = source.spec.nats
    assert spec is not None
    sending = Sending(source.spec.delivery.concurrency)
    subscription = await nc.subscribe(spec.subject, queue=spec.queue_group or "")

    async def send(msg: Msg) -> None:
        ident = msg.headers.get(MSG_ID) if msg.headers else None
        try:
            event = nats_event(source, msg.subject, msg.headers, msg.data, fallback_id=str(uuid.uuid4()))
        except EventError as exc:  # no event can be made of it (a subject too long for one): kept, not dropped
            await delivery.keep_undecodable(msg.data, str(exc), ident=ident or str(uuid.uuid4()))
            return
        await delivery.deliver(event)

    try:
        async for msg in subscription.messages:
            await sending.submit(functools.partial(send, msg))
    finally:
        await sending.close()
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()


async def _jetstream(nc: Client, source: EventSource, delivery: SourceDelivery) -> None:
    spec = source.spec.nats
    assert spec is not None and spec.stream is not None and spec.durable is not None
    js = nc.jetstream()
    config = nats.js.api.ConsumerConfig(
        durable_name=spec.durable, ack_policy=nats.js.api.AckPolicy.EXPLICIT, ack_wait=ACK_WAIT,
        filter_subject=spec.subject, max_ack_pending=max(source.spec.delivery.concurrency * 4, 64),
    )
    subscription = await js.pull_subscribe(spec.subject, durable=spec.durable, stream=spec.stream, config=config)
    batch = source.spec.delivery.concurrency
    while True:
        try:
            messages = await subscription.fetch(batch, timeout=FETCH_WAIT)
        except nats.errors.TimeoutError:
            continue
        await asyncio.gather(*(_settle(msg, source, delivery) for msg in messages))


async def _settle(msg: Msg, source: EventSource, delivery: SourceDelivery) -> None:
    """Send one stored message's event, then ack it: accepted and dead-lettered are both kept."""
    spec = source.spec.nats
    assert spec is not None
    sequence = msg.metadata.sequence.stream
    try:
        event = nats_event(source, msg.subject, msg.headers, msg.data, fallback_id=f"{spec.stream}:{sequence}")
    except EventError as exc:
        await delivery.keep_undecodable(msg.data, str(exc), ident=f"{spec.stream}:{sequence}")
        await msg.ack_sync(timeout=5)
        return
    progress = asyncio.create_task(_report_progress(msg))
    try:
        await delivery.deliver(event)
    finally:
        progress.cancel()
    await msg.ack_sync(timeout=5)


async def _report_progress(msg: Msg) -> None:
    """Tell JetStream the message is being worked on, so it is not redelivered while its retries last."""
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        with contextlib.suppress(nats.errors.Error):
            await msg.in_progress()
