"""Where a source's events go: a broker's log, or an HTTP endpoint (a broker's ingress, a Function, a URI).

Every sink answers one event with a :class:`~ripple.dispatch.client.DeliveryResult`, the same value a trigger's
delivery settles on, so the source's retries follow the trigger's rules (``dispatch/policy.py``): ``2xx``
accepted, connection errors, ``408``, ``429`` and ``5xx`` retryable, other answers refused for good. Accepted
means stored: a broker answers ``202`` only once JetStream has the event, and :class:`StoreSink` returns only
after JetStream's acknowledgement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import aiohttp

from ripple.dispatch.client import DeliveryResult, deliver
from ripple.dispatch.policy import CONNECTION_ERROR
from ripple.dispatch.resolve import Unresolvable
from ripple.events.extensions import stamp_arrival
from ripple.events.model import CloudEvent, EventError
from ripple.store import EventStore, EventTooLarge, StoreUnavailable

__all__ = ["ACCEPTED", "HttpSink", "Sink", "StoreSink", "UrlLookup"]

ACCEPTED = 202
UrlLookup = Callable[[], Awaitable[str]]
"""The sink's current URL (a Function's ready replica may change between events); raises :class:`Unresolvable`."""


class Sink(Protocol):
    @property
    def name(self) -> str:
        """What the sink is, for logs and status (a URL or ``broker ns/name``): never a credential."""
        ...

    async def send(self, event: CloudEvent) -> DeliveryResult:
        """One attempt to hand ``event`` over; never raises for a failure the result can describe."""
        ...


class StoreSink:
    """A broker in this process's JetStream (local mode): stored, stamped with its arrival, as the ingress does."""

    def __init__(self, store: EventStore, namespace: str, broker: str) -> None:
        self.store = store
        self.namespace = namespace
        self.broker = broker
        self.name = f"broker {namespace}/{broker}"

    async def send(self, event: CloudEvent) -> DeliveryResult:
        try:
            await self.store.publish_events(self.namespace, self.broker, [stamp_arrival(event)])
        except (EventError, EventTooLarge) as exc:
            return DeliveryResult(400 if isinstance(exc, EventError) else 413, error=str(exc))
        except StoreUnavailable as exc:
            return DeliveryResult(503, error=str(exc))
        return DeliveryResult(ACCEPTED)


class HttpSink:
    """An HTTP endpoint that accepts CloudEvents (binary mode, or structured with ``structured``)."""

    def __init__(self, session: aiohttp.ClientSession, url: str | UrlLookup, *, timeout: float,
                 structured: bool = False, name: str | None = None) -> None:
        self.session = session
        self._url = url
        self.timeout = timeout
        self.structured = structured
        self.name = name or (url if isinstance(url, str) else "sink")

    async def send(self, event: CloudEvent) -> DeliveryResult:
        try:
            url = self._url if isinstance(self._url, str) else await self._url()
        except Unresolvable as exc:
            return DeliveryResult(CONNECTION_ERROR, error=f"sink not resolvable: {exc}")
        return await deliver(self.session, url, event, timeout=self.timeout, structured=self.structured)
