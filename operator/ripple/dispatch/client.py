"""HTTP delivery of one event to one subscriber."""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from ripple.api.models import Destination
from ripple.dispatch.policy import CONNECTION_ERROR
from ripple.events.http import encode_binary, encode_structured
from ripple.events.model import CloudEvent
from ripple.signing import DeliverySigner, flow_audience, function_audience, trigger_subject

__all__ = ["MAX_RESPONSE_BODY", "NO_AUTO_CONTENT_TYPE", "DeliveryResult", "authorization", "deliver"]

MAX_RESPONSE_BODY = 1024 * 1024
NO_AUTO_CONTENT_TYPE = ("Content-Type",)
"""aiohttp labels a bytes body ``application/octet-stream`` unless told not to; binary mode maps Content-Type to
``datacontenttype``, so an event without one must go out without the header, or every receiver sees an
attribute the producer never set."""


@dataclass(frozen=True)
class DeliveryResult:
    status: int
    """HTTP status, or ``CONNECTION_ERROR`` (0) when no answer came back."""
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=CIMultiDict)
    """The answer's headers, read-only and case-insensitive (aiohttp's own, not copied)."""
    error: str = ""
    latency: float = 0.0
    refused: bool = False
    """No connection could be made: nothing was sent, so trying another replica at once is safe."""
    oversized: bool = False
    """The answer's body was longer than :data:`MAX_RESPONSE_BODY`: ``body`` holds only its start, so it is never
    read as a reply."""


async def deliver(
    session: aiohttp.ClientSession, url: str, event: CloudEvent, *, timeout: float, structured: bool = False,
    traceparent: str | None = None, authorization: str | None = None,
) -> DeliveryResult:
    """POST the event (binary mode unless ``structured``) and read the answer, all within ``timeout``.

    ``traceparent`` is the delivery's own W3C context (the HTTP header; the event's extension is its own);
    ``authorization`` the ``Authorization`` header (a Function's delivery token, :func:`authorization`)."""
    headers, body = encode_structured(event) if structured else encode_binary(event)
    headers["Prefer"] = "reply"
    if traceparent is not None:
        headers["traceparent"] = traceparent
    if authorization is not None:
        headers["Authorization"] = authorization
    started = time.monotonic()
    try:
        async with session.post(_parsed(url), data=body, headers=headers, allow_redirects=False,
                                skip_auto_headers=NO_AUTO_CONTENT_TYPE, timeout=_timeout(timeout)) as response:
            content = await _read_body(response.content)
            return DeliveryResult(response.status, content[:MAX_RESPONSE_BODY], response.headers,
                                  latency=time.monotonic() - started, oversized=len(content) > MAX_RESPONSE_BODY)
    except TimeoutError:
        error, refused = f"timed out after {timeout:g}s", False
    except aiohttp.ClientConnectorError as exc:
        error, refused = f"{type(exc).__name__}: {exc}", True
    except aiohttp.ClientError as exc:
        error, refused = f"{type(exc).__name__}: {exc}", False
    return DeliveryResult(CONNECTION_ERROR, error=error, latency=time.monotonic() - started, refused=refused)


def authorization(signer: DeliverySigner | None, destination: Destination, namespace: str,
                  trigger: str) -> str | None:
    """The ``Authorization`` of a delivery from ``trigger`` (in ``namespace``) to ``destination``: a delivery token
    for a Function, or for a Sequence's or Parallel's address (the ingress lets Ripple's own hops in); nothing
    for a URI (whose owner has no way to check Ripple's tokens) or when not signing. Only within the trigger's
    own namespace: a trigger naming another namespace's Function or flow gets no token, so a tenant cannot invoke
    what another tenant guards (nor enter its flows past its broker's policies) by pointing a trigger at it."""
    ref = destination.ref
    if signer is None or ref is None or ref.kind not in ("Function", "Sequence", "Parallel"):
        return None
    ref_namespace, name = ref.key(namespace)
    if ref_namespace != namespace:
        return None
    audience = function_audience(ref_namespace, name) if ref.kind == "Function" else \
        flow_audience(ref.kind, ref_namespace, name)
    return "Bearer " + signer.token(audience, trigger_subject(namespace, trigger))


async def _read_body(content: aiohttp.StreamReader) -> bytes:
    """The answer's body up to one byte past the limit (``read(n)`` returns what has arrived, maybe one chunk)."""
    chunks, size = [], 0
    async for chunk in content.iter_any():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESPONSE_BODY:
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# Parsed once per subscriber URL and per timeout: aiohttp would parse the URL of every request (profiled), and
# one timer (aiohttp's, covering the answer's body too) replaces an asyncio.timeout around it.
@functools.lru_cache(maxsize=1024)
def _parsed(url: str) -> URL:
    return URL(url)


@functools.lru_cache(maxsize=64)
def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)
