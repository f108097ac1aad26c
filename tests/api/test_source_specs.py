"""spec.webhook.signature and spec.ping in local mode: the same refusals as the API server, naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ripple.api.durations import seconds
from ripple.api.models import EventSource

SINK = {"ref": {"kind": "Broker", "name": "default"}}


def source(webhook: dict[str, Any]) -> EventSource:
    return EventSource.model_validate({"apiVersion": "ripple.dev/v1alpha1", "kind": "EventSource",
                                       "metadata": {"name": "hooks", "namespace": "shop"},
                                       "spec": {"sink": SINK, "webhook": webhook}})


def test_a_signature_with_its_defaults():
    webhook = source({"signature": {"scheme": "stripe", "secretRef": {"name": "stripe", "key": "whsec"}}}).spec.webhook
    assert webhook is not None and webhook.signature is not None
    assert webhook.signature.scheme == "stripe" and webhook.signature.header is None
    assert seconds(webhook.signature.tolerance) == 300


def test_without_a_signature_the_webhook_is_open():
    webhook = source({}).spec.webhook
    assert webhook is not None and webhook.signature is None


@pytest.mark.parametrize(("signature", "field"), [
    ({"scheme": "md5", "secretRef": {"name": "s", "key": "k"}}, "scheme"),
    ({"scheme": "github"}, "secretRef"),
    ({"scheme": "token", "secretRef": {"name": "s", "key": "k"}, "header": "Bad Header"}, "header"),
    ({"scheme": "stripe", "secretRef": {"name": "s", "key": "k"}, "tolerance": "5 minutes"}, "tolerance"),
])
def test_invalid_signatures_are_refused_naming_the_field(signature: dict[str, Any], field: str):
    with pytest.raises(ValidationError) as caught:
        source({"signature": signature})
    assert any(field in ".".join(map(str, error["loc"])) or field in str(error["loc"])
               for error in caught.value.errors())


@pytest.mark.parametrize(("ping", "message"), [
    ({"schedule": "61 * * * *"}, "invalid cron schedule"),
    ({"schedule": "@hourly", "timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"schedule": "@every 5x"}, "@every takes a duration"),
])
def test_invalid_ping_schedules_are_refused_in_local_mode(ping: dict[str, Any], message: str):
    with pytest.raises(ValidationError, match=message):
        EventSource.model_validate({"apiVersion": "ripple.dev/v1alpha1", "kind": "EventSource",
                                    "metadata": {"name": "tick", "namespace": "shop"},
                                    "spec": {"sink": SINK, "ping": ping}})


def test_a_ping_catch_up_window():
    ping = EventSource.model_validate({"apiVersion": "ripple.dev/v1alpha1", "kind": "EventSource",
                                       "metadata": {"name": "tick", "namespace": "shop"},
                                       "spec": {"sink": SINK, "ping": {"schedule": "@every 1m",
                                                                       "catchUp": "PT1H"}}}).spec.ping
    assert ping is not None and seconds(ping.catch_up or "PT0S") == 3600
