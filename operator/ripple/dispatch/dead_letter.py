"""Dead letters: the original event, unchanged, plus extensions that say why it could not be delivered."""

from __future__ import annotations

import base64
import logging
import re

import aiohttp

from ripple.api.models import Destination, Trigger
from ripple.dispatch.client import DeliveryResult, authorization, deliver
from ripple.dispatch.policy import CONNECTION_ERROR, is_success
from ripple.dispatch.resolve import Resolver, Unresolvable
from ripple.events.extensions import ERROR_CODE, ERROR_DATA, ERROR_DEST, ERROR_REASON, ERROR_TRIGGER
from ripple.events.model import CloudEvent
from ripple.signing import DeliverySigner
from ripple.store import EventStore, StoreUnavailable

log = logging.getLogger(__name__)

MAX_ERROR_DATA = 512
"""Bytes of the response body (or error text) kept in ``rippleerrordata``; base64 keeps it under the limit of
an extension value, so a dead letter is itself a valid event a sink can receive."""
MAX_REASON = 256
MAX_DESTINATION = 1024
UNDECODABLE_TYPE = "dev.ripple.undecodable"
"""The type of a dead letter made from a stored message that is not a CloudEvent at all."""
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def printable(text: str, limit: int = MAX_REASON) -> str:
    """``text`` cut to ``limit`` characters, without the control characters an attribute may not hold."""
    return _UNPRINTABLE.sub("?", text[:limit])


def dead_letter_event(
    event: CloudEvent, result: DeliveryResult, *, destination: str, trigger: str, reason: str = ""
) -> CloudEvent:
    """The event with ``rippleerror*`` extensions: status (0 for no answer), URL, response body (≤ 512 bytes),
    trigger and the reason in words."""
    detail = result.body if result.body else result.error.encode(errors="replace")
    extensions: dict[str, str | int | None] = {
        ERROR_CODE: result.status,
        ERROR_DEST: printable(destination, MAX_DESTINATION) or None,
        ERROR_TRIGGER: trigger,
        ERROR_DATA: base64.b64encode(detail[:MAX_ERROR_DATA]).decode("ascii") if detail else None,
        ERROR_REASON: printable(reason or result.error) or None,
    }
    return event.with_attributes(**extensions)


def undecodable_event(payload: bytes, *, namespace: str, broker: str, sequence: int) -> CloudEvent:
    """A stored message that cannot be read as a CloudEvent, wrapped as one (its bytes as data) so that it is
    kept as a dead letter instead of being dropped."""
    attributes = {
        "specversion": "1.0",
        "id": f"{namespace}.{broker}.{sequence}",
        "source": f"/ripple/{namespace}/{broker}",
        "type": UNDECODABLE_TYPE,
        "datacontenttype": "application/octet-stream",
    }
    return CloudEvent(attributes, payload)


class DeadLetterSink:
    """Where one trigger keeps what it cannot deliver: its ``deadLetterSink``, else, or when the sink fails too,
    the broker's dead-letter stream."""

    def __init__(
        self, store: EventStore, session: aiohttp.ClientSession, resolve: Resolver, trigger: Trigger, *, timeout: float,
        signer: DeliverySigner | None = None,
    ) -> None:
        self.signer = signer
        self.store = store
        self.session = session
        self.resolve = resolve
        self.trigger = trigger
        self.name = f"{trigger.namespace}/{trigger.name}"
        self.timeout = timeout

    async def keep(self, event: CloudEvent, result: DeliveryResult, *, url: str, sequence: int, reason: str) -> bool:
        """Keep ``event`` with its error context; ``False`` only when neither the sink nor the stream took it."""
        letter = dead_letter_event(event, result, destination=url, trigger=self.name, reason=reason)
        sink = self.trigger.spec.delivery.dead_letter_sink
        if sink is not None and await self._to_sink(sink, letter):
            return True
        return await keep_in_stream(self.store, self.trigger.namespace, self.trigger.spec.broker,
                                    self.trigger.name, letter, sequence)


    async def _to_sink(self, sink: Destination, letter: CloudEvent) -> bool:
        # Whatever goes wrong here (a sink that cannot be woken, an event the client cannot encode), the
        # stream still takes the letter: this is the last stop of an event, so nothing may escape from it.
        try:
            sink_url = await self.resolve(sink, self.trigger.namespace)
            sent = await deliver(self.session, sink_url, letter, timeout=self.timeout,
                                 authorization=authorization(self.signer, sink, self.trigger.namespace,
                                                             self.trigger.name))
        except Unresolvable as exc:
            log.warning("trigger %s: dead-letter sink not resolvable (%s); using the stream", self.name, exc)
            return False
        except Exception as exc:
            log.warning("trigger %s: dead-letter sink failed (%s: %s); using the stream", self.name,
                        type(exc).__name__, exc)
            return False
        if not is_success(sent.status):
            log.warning("trigger %s: dead-letter sink answered %s; using the dead-letter stream", self.name,
                        sent.status or sent.error)
        return is_success(sent.status)


def read_stored(payload: bytes, *, namespace: str, broker: str, sequence: int) -> CloudEvent:
    """A stored message read back as its event, or wrapped as one when it is not a CloudEvent at all."""
    try:
        return CloudEvent.from_json_bytes(payload)
    except Exception:
        return undecodable_event(payload, namespace=namespace, broker=broker, sequence=sequence)


async def keep_message(
    store: EventStore, namespace: str, broker: str, trigger: str, payload: bytes, sequence: int, reason: str,
    event: CloudEvent | None = None,
) -> bool:
    """Keep a stored message that ``trigger`` (or the router) gave up on in the dead-letter stream."""
    if event is None:
        event = read_stored(payload, namespace=namespace, broker=broker, sequence=sequence)
    letter = dead_letter_event(event, DeliveryResult(CONNECTION_ERROR, error=reason), destination="",
                               trigger=f"{namespace}/{trigger}", reason=reason)
    return await keep_in_stream(store, namespace, broker, trigger, letter, sequence)


async def keep_in_stream(
    store: EventStore, namespace: str, broker: str, trigger: str, letter: CloudEvent, sequence: int
) -> bool:
    """Store a dead letter in the broker's dead-letter stream; ``False`` when JetStream did not take it."""
    try:
        await store.store_dead_letter(namespace, broker, trigger, letter, delivery_id=str(sequence))
    except StoreUnavailable as exc:
        log.warning("%s/%s: could not store dead letter of #%d, will retry: %s", namespace, trigger, sequence, exc)
        return False
    return True


__all__ = [
    "MAX_ERROR_DATA",
    "UNDECODABLE_TYPE",
    "DeadLetterSink",
    "dead_letter_event",
    "keep_in_stream",
    "keep_message",
    "printable",
    "read_stored",
    "undecodable_event",
]
