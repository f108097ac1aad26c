"""Webhook requests to events: CloudEvents kept as they are, GitHub and Stripe deliveries typed and identified by
the sender's own ids, anything else with a stable id, overrides added."""

from __future__ import annotations

import hashlib
import json

import pytest
from multidict import CIMultiDict

from ripple.api.models import CeOverrides, WebhookSource
from ripple.events.model import EventError
from ripple.sources.webhook import source_path, webhook_events

SIGNED_STRIPE = WebhookSource.model_validate(
    {"signature": {"scheme": "stripe", "secretRef": {"name": "s", "key": "k"}}})


def h(**values: str) -> CIMultiDict[str]:
    return CIMultiDict({k.replace("_", "-"): v for k, v in values.items()})


def test_a_cloudevent_keeps_its_attributes():
    (event,) = webhook_events(WebhookSource(), "shop", "hooks",
                              h(ce_specversion="1.0", ce_id="e1", ce_source="/s", ce_type="t.x",
                                Content_Type="text/plain"), b"hi")
    assert (event.id, event.type, event.source, event.data) == ("e1", "t.x", "/s", b"hi")


def test_a_github_push_delivery():
    body = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "acme/shop"}}).encode()
    (event,) = webhook_events(WebhookSource(), "ci", "github", h(
        X_GitHub_Event="push", X_GitHub_Delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958",
        Content_Type="application/json"), body)
    assert event.type == "com.github.push" and event.id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert event["subject"] == "acme/shop" and event.source == source_path("ci", "github")
    assert event.data == body and event.datacontenttype == "application/json"


def test_a_github_delivery_without_its_id_is_refused():
    with pytest.raises(EventError, match="X-GitHub-Delivery"):
        webhook_events(WebhookSource(), "ci", "github", h(X_GitHub_Event="push"), b"{}")


def test_a_stripe_event():
    body = json.dumps({"id": "evt_1Nq", "type": "checkout.session.completed", "data": {}}).encode()
    (event,) = webhook_events(SIGNED_STRIPE, "shop", "stripe", h(Content_Type="application/json"), body)
    assert (event.type, event.id) == ("com.stripe.checkout.session.completed", "evt_1Nq")
    with pytest.raises(EventError, match="Stripe event"):
        webhook_events(SIGNED_STRIPE, "shop", "stripe", h(Content_Type="application/json"), b'{"id": 1}')


def test_anything_else_gets_a_stable_id():
    spec = WebhookSource(event_type="com.example.order")
    first = webhook_events(spec, "shop", "orders", h(Content_Type="application/json"), b'{"n":1}')[0]
    again = webhook_events(spec, "shop", "orders", h(Content_Type="application/json"), b'{"n":1}')[0]
    assert first.id == again.id == hashlib.sha256(b'{"n":1}').hexdigest() and first.type == "com.example.order"
    keyed = webhook_events(spec, "shop", "orders", h(Idempotency_Key="order-7"), b'{"n":1}')[0]
    assert keyed.id == "order-7" and keyed.datacontenttype is None


def test_overrides_are_added_to_every_event():
    (event,) = webhook_events(WebhookSource(), "shop", "hooks", h(), b"x",
                              CeOverrides(extensions={"tenant": "acme"}))
    assert event["tenant"] == "acme"
