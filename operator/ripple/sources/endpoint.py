"""A webhook source's HTTP endpoint: verify, decode, send to the sink, and only then answer the sender.

The answers follow the ingress's (``ingress/app.py``), since senders treat the two alike: ``202`` once every
event of the request was accepted by the sink (stored, for a broker), ``401`` for a missing or wrong signature
(nothing is stored), ``400``/``413``/``415`` for a request that cannot be used, ``405`` for another method and
``503`` with ``Retry-After`` when the sink did not accept, so that GitHub, Stripe or any sender delivers again.
A redelivery carries the same id (``sources/webhook.py``), so the broker stores it once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from ripple.api.models import EventSource
from ripple.dispatch.policy import is_retryable, is_success
from ripple.events import EventError, UnsupportedFormat
from ripple.events.model import CloudEvent
from ripple.ingress.app import error, handshake
from ripple.ingress.body import BodyRefused, read_body
from ripple.sources.delivery import SourceDelivery
from ripple.sources.signatures import SignatureRefused, Verifier
from ripple.sources.webhook import webhook_events

__all__ = ["ALLOWED", "Decoder", "WebhookEndpoint"]

log = logging.getLogger(__name__)

ALLOWED = "POST, OPTIONS"
Decoder = Callable[[Mapping[str, str], bytes], list[CloudEvent]]
"""A verified request's events; raises :class:`EventError` (400) or :class:`UnsupportedFormat` (415)."""


@dataclass
class WebhookEndpoint:
    source: EventSource
    delivery: SourceDelivery
    verifier: Verifier | None
    max_body: int
    retry_after: int = 1
    """Seconds the sender is told to wait when the sink did not accept."""

    decode: Decoder | None = None
    """What a request's events are; by default a webhook's (``sources/webhook.py``)."""

    def __post_init__(self) -> None:
        if self.decode is None:
            webhook = self.source.spec.webhook
            assert webhook is not None, "a webhook endpoint without a decoder serves a webhook source"
            overrides = self.source.spec.ce_overrides

            def decode(headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
                return webhook_events(webhook, self.source.namespace, self.source.name, headers, body, overrides)

            self.decode = decode

    async def handle(self, request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            return await handshake(request)
        if request.method != "POST":
            return error(405, "Method Not Allowed", Allow=ALLOWED)
        try:
            body = await read_body(request, self.max_body)
        except BodyRefused as exc:
            return self._rejected(exc.status, str(exc), close=True)
        except web.HTTPException as exc:  # the body timeout (408), set on the payload by the server
            return self._rejected(exc.status, exc.text or exc.reason, close=True)
        if self.verifier is not None:
            try:
                self.verifier.verify(request.headers, body)
            except SignatureRefused as exc:
                self.delivery.count("refused")
                self.delivery.stats.refused += 1
                log.info("source %s: request refused: %s", self.delivery.name, exc)
                return error(401, str(exc))
        try:
            assert self.decode is not None
            events = self.decode(request.headers, body)
        except EventError as exc:
            return self._rejected(400, str(exc))
        except UnsupportedFormat as exc:
            return self._rejected(415, str(exc))
        for event in events:
            result = await self.delivery.send_once(event)
            if is_success(result.status):
                continue
            if result.status and not is_retryable(result.status):
                # The sink refuses the event itself (too large, invalid): a redelivery would be refused too.
                return self._rejected(result.status, f"the sink refused the event: status {result.status}")
            log.warning("source %s: sink %s did not accept event %s (%s); the sender is told to retry",
                        self.delivery.name, self.delivery.sink.name, event.id, result.error or result.status)
            retry = {"Retry-After": str(self.retry_after)}
            return error(503, "the sink did not accept the event, retry later", **retry)
        return web.json_response({"accepted": len(events)}, status=202)

    def _rejected(self, status: int, message: str, *, close: bool = False) -> web.Response:
        self.delivery.count("rejected")
        response = error(status, message)
        if close:
            response.force_close()  # what is left of the body is not read: do not reuse the connection
        return response
