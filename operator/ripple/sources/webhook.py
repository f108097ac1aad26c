"""What a webhook request becomes: the CloudEvents it carries, or one event made from it.

A request that is a CloudEvent already (binary, structured or batched) keeps its attributes. Anything else becomes
one event whose data is the body, with the request's Content-Type, and whose ``id`` comes from the sender's own
identity for the request, so that a retried delivery is stored once (the broker's dedup window):

* GitHub (``X-GitHub-Event`` present): type ``com.github.<event>``, id ``X-GitHub-Delivery``, subject the
  repository's ``full_name`` when the payload names one;
* Stripe (the ``stripe`` scheme): type ``com.stripe.<event type>``, id the Stripe event's ``id``;
* anything else: type ``spec.webhook.eventType``, id the ``Idempotency-Key`` header when given, else the SHA-256
  of the body (the same body sent twice within the dedup window is one event).

``spec.ceOverrides.extensions`` are added to every event; the source is the EventSource's own path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from ripple.api.models import API_VERSION, CeOverrides, WebhookSource
from ripple.events.http import carries_cloudevents, decode_request
from ripple.events.model import CloudEvent, EventError, is_json_media_type, try_json

__all__ = ["IDEMPOTENCY_HEADER", "source_path", "webhook_events"]

IDEMPOTENCY_HEADER = "Idempotency-Key"


def source_path(namespace: str, name: str) -> str:
    """The ``source`` attribute of an EventSource's events."""
    return f"/apis/{API_VERSION}/namespaces/{namespace}/eventsources/{name}"


def webhook_events(spec: WebhookSource, namespace: str, name: str, headers: Mapping[str, str], body: bytes,
                   overrides: CeOverrides | None = None) -> list[CloudEvent]:
    """The events of one (already verified) request; :class:`EventError` names what makes it unusable.

    ``headers`` must look names up case-insensitively (aiohttp's request headers do).
    """
    if carries_cloudevents(headers):
        events = decode_request(headers.items(), body)
    else:
        events = [_made_event(spec, namespace, name, headers, body)]
    extensions = overrides.extensions if overrides is not None else {}
    if not extensions:
        return events
    return [CloudEvent.create({**e.attributes, **extensions}, e.data) for e in events]


def _made_event(spec: WebhookSource, namespace: str, name: str, headers: Mapping[str, str],
                body: bytes) -> CloudEvent:
    content_type = headers.get("Content-Type")
    payload = _json(body, content_type)
    attributes: dict[str, Any] = {"specversion": "1.0", "source": source_path(namespace, name)}
    github_event = headers.get("X-GitHub-Event")
    scheme = spec.signature.scheme if spec.signature is not None else None
    if github_event is not None:
        delivery = headers.get("X-GitHub-Delivery")
        if not delivery:
            raise EventError("a GitHub delivery must carry X-GitHub-Delivery (the event's id)")
        attributes.update(type=f"com.github.{github_event}", id=delivery)
        repository = payload.get("repository") if isinstance(payload, dict) else None
        if isinstance(repository, dict) and isinstance(repository.get("full_name"), str):
            attributes["subject"] = repository["full_name"]
    elif scheme == "stripe":
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str) \
                or not isinstance(payload.get("type"), str):
            raise EventError("a Stripe event must be a JSON object with string 'id' and 'type'")
        attributes.update(type=f"com.stripe.{payload['type']}", id=payload["id"])
    else:
        key = headers.get(IDEMPOTENCY_HEADER)
        attributes.update(type=spec.event_type, id=key if key else hashlib.sha256(body).hexdigest())
    if content_type:
        attributes["datacontenttype"] = content_type
    return CloudEvent.create(attributes, body or None)


def _json(body: bytes, content_type: str | None) -> Any:
    if not body or (content_type is not None and not is_json_media_type(content_type)):
        return None
    return try_json(body)
