"""Ripple's custom objects as the API server hands them over: parsed into the models (or refused, logged and
skipped), and kept as a set that follows watch events and says when it really changed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client

from ripple.api.models import API_VERSION, Broker, Function, Resource, Trigger
from ripple.kube.conditions import is_ready
from ripple.kube.objects import InvalidSpec, RippleObjects, as_resource, parse


def obj(kind: str, name: str, namespace: str | None = "default", spec: dict[str, Any] | None = None,
        **extra: Any) -> dict[str, Any]:
    """An object as a watch serializes it: server-set metadata and status included."""
    metadata: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "resourceVersion": "1", "generation": 1,
                                "labels": {"team": "shop"}, "creationTimestamp": "2024-01-01T00:00:00Z"}
    if namespace is not None:
        metadata["namespace"] = namespace
    body = {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, **extra}
    if spec is not None:
        body["spec"] = spec
    return body


def trigger(name: str = "ship", namespace: str = "default", uri: str = "http://ship.shop.svc/", **extra: Any):
    return obj("Trigger", name, namespace, {"broker": "default", "subscriber": {"uri": uri}}, **extra)


def ready(status: str = "True") -> dict[str, Any]:
    return {"status": {"conditions": [{"type": "Ready", "status": status}]}}


# -- parse and as_resource --------------------------------------------------------------------------------------


def test_parse_keeps_what_the_models_know_and_drops_what_the_server_added():
    parsed = parse(Trigger, trigger(**ready()))
    assert isinstance(parsed, Trigger)
    assert parsed.key == ("default", "ship")
    assert parsed.spec.subscriber.uri == "http://ship.shop.svc/"
    assert parsed.spec.delivery.retry == 3  # the models' defaults fill what the object leaves out
    assert parsed.metadata.labels == {}  # only name and namespace are carried over


def test_parse_defaults_the_namespace_and_the_broker_spec():
    broker = parse(Broker, obj("Broker", "orders", namespace=None))
    assert broker.key == ("default", "orders")
    assert broker.spec.retention.max_age == "P7D"


@pytest.mark.parametrize(
    ("model", "body", "where"),
    [
        (Trigger, trigger() | {"spec": {"subscriber": {"uri": "http://x/"}, "delivery": {"retry": -1}}},
         "spec.delivery.retry"),
        (Trigger, obj("Trigger", "t", spec={"broker": "default"}), "spec.subscriber"),
        (Function, obj("Function", "f", spec={"handler": "not a handler"}), "spec.handler"),
        (Trigger, obj("Broker", "b", spec={}), "kind"),
        (Broker, obj("Broker", "Not_A_Name"), "metadata.name"),
        (Broker, obj("Broker", "b", spec={"retention": {"maxAge": "a week"}}), "spec.retention"),
    ],
)
def test_parse_refuses_what_the_models_refuse_naming_the_field(model: type[Resource], body, where):
    with pytest.raises(InvalidSpec, match=where.replace(".", r"\.")):
        parse(model, body)


def test_as_resource_returns_the_model_or_logs_and_skips(caplog: pytest.LogCaptureFixture):
    assert as_resource(Trigger, trigger()) == parse(Trigger, trigger())
    assert caplog.records == []

    bad = obj("Trigger", "broken", "shop", {"broker": "default"})
    with caplog.at_level(logging.WARNING, logger="ripple.kube.objects"):
        assert as_resource(Trigger, bad) is None
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "Trigger shop/broken" in record.getMessage() and "spec.subscriber" in record.getMessage()


# -- RippleObjects ----------------------------------------------------------------------------------------------


@pytest.fixture
async def api() -> AsyncIterator[client.ApiClient]:
    """A client for no server at all: nothing here may reach one."""
    configuration = client.Configuration(host="http://127.0.0.1:9")
    api_client = client.ApiClient(configuration)
    try:
        yield api_client
    finally:
        await api_client.close()


class Changes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def test_added_modified_deleted(api):
    changes = Changes()
    triggers = RippleObjects(api, Trigger, changes)

    await triggers._event("ADDED", trigger())
    assert changes.count == 1 and triggers.items == {("default", "ship"): parse(Trigger, trigger())}

    await triggers._event("ADDED", trigger("ship", "shop"))  # same name, another namespace: another object
    assert changes.count == 2 and set(triggers.items) == {("default", "ship"), ("shop", "ship")}

    await triggers._event("MODIFIED", trigger(uri="http://ship-v2.shop.svc/"))
    assert changes.count == 3
    assert triggers.items["default", "ship"].spec.subscriber.uri == "http://ship-v2.shop.svc/"

    await triggers._event("DELETED", trigger(uri="http://ship-v2.shop.svc/"))
    assert changes.count == 4 and set(triggers.items) == {("shop", "ship")}


async def test_events_that_change_nothing_the_models_see_are_not_changes(api):
    changes = Changes()
    triggers = RippleObjects(api, Trigger, changes)
    await triggers._event("ADDED", trigger())
    assert changes.count == 1

    # The watch's initial list repeats objects; status, labels and resourceVersion are no part of the model.
    await triggers._event("ADDED", trigger())
    modified = trigger(**ready())
    modified["metadata"] |= {"resourceVersion": "2", "labels": {"team": "billing"}}
    await triggers._event("MODIFIED", modified)
    await triggers._event("DELETED", trigger("never-seen"))
    assert changes.count == 1 and list(triggers.items) == [("default", "ship")]


async def test_invalid_objects_are_skipped_without_a_change(api, caplog: pytest.LogCaptureFixture):
    changes = Changes()
    triggers = RippleObjects(api, Trigger, changes)
    with caplog.at_level(logging.WARNING, logger="ripple.kube.objects"):
        await triggers._event("ADDED", obj("Trigger", "broken", spec={"broker": "default"}))
    assert triggers.items == {} and changes.count == 0
    assert "default/broken" in caplog.text


async def test_unwanted_objects_are_left_out_and_dropped_when_they_become_unwanted(api):
    changes = Changes()
    triggers = RippleObjects(api, Trigger, changes, wanted=lambda o: is_ready(o.get("status")))

    await triggers._event("ADDED", trigger())
    assert triggers.items == {} and changes.count == 0

    await triggers._event("MODIFIED", trigger(**ready()))
    assert list(triggers.items) == [("default", "ship")] and changes.count == 1

    await triggers._event("MODIFIED", trigger(**ready("False")))
    assert triggers.items == {} and changes.count == 2

    await triggers._event("MODIFIED", trigger(**ready("False")))  # still unwanted: nothing to drop
    assert changes.count == 2


async def test_each_set_holds_its_own_kind(api):
    brokers = RippleObjects(api, Broker)
    functions = RippleObjects(api, Function)
    await brokers._event("ADDED", obj("Broker", "orders", "shop"))
    function = obj("Function", "ship", "shop", {"handler": "ship:handle", "image": "registry.example/ship:1"})
    await functions._event("ADDED", function)
    assert isinstance(brokers.items["shop", "orders"], Broker)
    assert isinstance(functions.items["shop", "ship"], Function)
    await brokers._event("ADDED", function)  # a Function is no Broker
    assert list(brokers.items) == [("shop", "orders")]
