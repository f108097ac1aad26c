"""Where a source's events go: a broker's log, or an HTTP endpoint (a broker's ingress, a Function, a URI).

Every sink answers one event with a :class:`~ripple.dispatch.client.DeliveryResult`, the same value a trigger's
delivery settles on, so the source's retries follow the trigger's rules (``dispatch/policy.py``): ``2xx``
accepted, connection errors, ``408``, ``429`` and ``5xx`` retryable, other answers refused for good. Accepted
means stored: a broker answers ``202`` only once JetStream has the event, and :class:`StoreSink` returns only
after JetStream's acknowledgement.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import aiohttp

from ripple.dispatch.client import DeliveryResult, deliver
from ripple.dispatch.policy import CONNECTION_ERROR
from ripple.dispatch.resolve import Unresolvable
from ripple.events.extensions import stamp_arrival
from ripple.events.model import CloudEvent, EventError
from ripple.store import EventStore, EventTooLarge, StoreUnavailable

__all__ = [
    "ACCEPTED",
    "DEAD_LETTER_EXCHANGE_ENV",
    "DEAD_LETTER_TOKEN_ENV",
    "SINK_TOKEN_ENV",
    "TOKEN_EXCHANGE_ENV",
    "Authorization",
    "ExchangedToken",
    "HttpSink",
    "Sink",
    "StoreSink",
    "TokenFile",
    "UrlLookup",
    "sink_authorization",
]

log = logging.getLogger(__name__)
ACCEPTED = 202
SINK_TOKEN_ENV = "RIPPLE_SINK_TOKEN_FILE"
"""A file holding the adapter's ServiceAccount token for its sink broker's audience (a projected volume the
kubelet renews): sent as a bearer token, so that the ingress knows which source is sending."""
TOKEN_EXCHANGE_ENV = "RIPPLE_SINK_TOKEN_EXCHANGE"
"""Where a dispatcher gives a delivery token for a Function sink in exchange for the adapter's own token
(``ripple.cluster.exchange``): set when the sink is a Function."""
DEAD_LETTER_TOKEN_ENV = "RIPPLE_DEAD_LETTER_TOKEN_FILE"
DEAD_LETTER_EXCHANGE_ENV = "RIPPLE_DEAD_LETTER_TOKEN_EXCHANGE"
"""The same two, for a dead-letter sink that is a Function."""
TOKEN_REREAD = 60.0
EXCHANGE_TIMEOUT = 5.0
Authorization = Callable[[], Awaitable[str | None]]
"""The ``Authorization`` header of the next request, ``None`` for none."""


async def _no_authorization() -> str | None:
    return None


class TokenFile:
    """A bearer token read from a file, read again every :data:`TOKEN_REREAD` seconds (the kubelet replaces a
    projected token well before it expires); an unreadable file sends no token (the sink answers 401 and the
    event is retried)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._value: str | None = None
        self._read_at = float("-inf")

    async def __call__(self) -> str | None:
        if time.monotonic() - self._read_at >= TOKEN_REREAD:
            try:
                self._value = "Bearer " + (await asyncio.to_thread(self.path.read_text)).strip()
            except OSError as exc:
                log.warning("cannot read the sink token %s: %s", self.path, exc)
                self._value = None
            self._read_at = time.monotonic()
        return self._value


class ExchangedToken:
    """A Function sink's delivery token, got from a dispatcher for the adapter's ServiceAccount token and reused
    for half its life; while none can be got, nothing is sent (the Function answers 401 and the event is retried)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, account: Authorization) -> None:
        self.session = session
        self.url = url
        self.account = account
        self._value: str | None = None
        self._renew_at = float("-inf")
        self._expires = float("-inf")

    async def __call__(self) -> str | None:
        now = time.monotonic()
        if now < self._renew_at:
            return self._value
        account = await self.account()
        if account is not None:
            try:
                async with self.session.post(self.url, headers={"Authorization": account},
                                             timeout=aiohttp.ClientTimeout(total=EXCHANGE_TIMEOUT)) as answer:
                    found = await answer.json(content_type=None) if answer.status == 200 else None
                    if found is None:
                        log.warning("no delivery token from %s: %s %s", self.url, answer.status,
                                    (await answer.text())[:200])
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("no delivery token from %s: %s: %s", self.url, type(exc).__name__, exc)
                found = None
            life = found.get("expiresIn") if isinstance(found, dict) else None
            if isinstance(found, dict) and isinstance(found.get("token"), str) and \
                    isinstance(life, int | float) and not isinstance(life, bool) and life > 0:
                self._value, self._renew_at, self._expires = f"Bearer {found['token']}", now + life / 2, now + life
                return self._value
        self._renew_at = now + 5  # asked again in a few seconds, not for every event
        return self._value if now < self._expires else None


def sink_authorization(session: aiohttp.ClientSession, token_file: str | None,
                       exchange: str | None) -> Authorization | None:
    """What an adapter sends a sink as its ``Authorization``, from the environment the operator gave it: its
    projected token itself (a broker), or a delivery token got for it (``exchange``: a Function); ``None``."""
    if not token_file:
        return None
    account = TokenFile(Path(token_file))
    return ExchangedToken(session, exchange, account) if exchange else account


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
                 structured: bool = False, name: str | None = None,
                 authorization: Authorization = _no_authorization) -> None:
        self.session = session
        self.authorization = authorization
        """The ``Authorization`` of each request (a Function's delivery token)."""
        self._url = url
        self.timeout = timeout
        self.structured = structured
        self.name = name or (url if isinstance(url, str) else "sink")

    async def send(self, event: CloudEvent) -> DeliveryResult:
        try:
            url = self._url if isinstance(self._url, str) else await self._url()
        except Unresolvable as exc:
            return DeliveryResult(CONNECTION_ERROR, error=f"sink not resolvable: {exc}")
        return await deliver(self.session, url, event, timeout=self.timeout, structured=self.structured,
                             authorization=await self.authorization())
