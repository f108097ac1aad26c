"""A Trigger's status from what the operator found: its broker, subscriber, dead-letter sink and filter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ripple.api.models import Destination, Trigger
from ripple.controller.resources.conditions import Condition, ready_from
from ripple.kube.names import function_url

__all__ = ["AddressLookup", "Resolution", "TriggerStatus", "resolve", "trigger_status"]

FunctionExists = Callable[[str, str], bool]
AddressLookup = Callable[[str, str, str], str | None]
"""(kind, namespace, name) of a Sequence or Parallel → its address, ``None`` when there is none."""


@dataclass(frozen=True)
class Resolution:
    url: str | None
    reason: str
    message: str = ""


def resolve(destination: Destination, namespace: str, function_exists: FunctionExists,
            address: AddressLookup = lambda kind, namespace, name: None) -> Resolution:
    """A destination's URL: a URI as given, a Function's Service address when the Function exists, a Sequence's
    or Parallel's address (``address``) when it exists."""
    key = destination.target(namespace)
    if isinstance(key, str):
        return Resolution(key, "Resolved")
    assert destination.ref is not None
    kind = destination.ref.kind
    if kind != "Function":
        url = address(kind, *key)
        if url is None:
            return Resolution(None, f"{kind}NotFound", f"{kind} {key[0]}/{key[1]} does not exist")
        return Resolution(url, "Resolved")
    if not function_exists(*key):
        return Resolution(None, "FunctionNotFound", f"Function {key[0]}/{key[1]} does not exist")
    return Resolution(function_url(*key), "Resolved")


@dataclass(frozen=True)
class TriggerStatus:
    parts: list[Condition]
    """Every condition but Ready, which sums them up."""
    subscriber_uri: str | None
    dead_letter_sink_uri: str | None

    @property
    def conditions(self) -> list[Condition]:
        return [*self.parts, ready_from(self.parts)]

    @property
    def ready(self) -> bool:
        return all(part.status is True for part in self.parts)


def trigger_status(
    trigger: Trigger, *, broker_exists: bool, function_exists: FunctionExists, filter_error: str | None,
    address: AddressLookup = lambda kind, namespace, name: None, fanout_refusal: str | None = None,
) -> TriggerStatus:
    """``fanout_refusal``: why the trigger is over its broker's fan-out cap
    (:func:`ripple.dispatch.fanout.fanout_refusals`), ``None`` when it is within it."""
    namespace, spec = trigger.namespace, trigger.spec
    broker = (
        Condition("BrokerReady", True, "BrokerReady")
        if broker_exists
        else Condition("BrokerReady", False, "BrokerNotFound", f"Broker {namespace}/{spec.broker} does not exist")
    )
    subscriber = resolve(spec.subscriber, namespace, function_exists, address)
    subscriber_condition = Condition("SubscriberResolved", subscriber.url is not None, subscriber.reason,
                                     subscriber.message)
    sink = spec.delivery.dead_letter_sink
    if sink is None:
        dead_letter = Resolution(None, "DeadLetterSinkNotConfigured", "events that fail go to the broker's stream")
        sink_condition = Condition("DeadLetterSinkResolved", True, dead_letter.reason, dead_letter.message)
    else:
        dead_letter = resolve(sink, namespace, function_exists, address)
        sink_condition = Condition("DeadLetterSinkResolved", dead_letter.url is not None, dead_letter.reason,
                                   dead_letter.message)
    filter_condition = (
        Condition("FilterValid", True, "FilterValid")
        if filter_error is None
        else Condition("FilterValid", False, "FilterInvalid", filter_error)
    )
    fanout_condition = (
        Condition("FanoutWithinCap", True, "FanoutWithinCap")
        if fanout_refusal is None
        else Condition("FanoutWithinCap", False, "FanoutCapExceeded", fanout_refusal)
    )
    return TriggerStatus([broker, subscriber_condition, sink_condition, filter_condition, fanout_condition],
                         subscriber.url, dead_letter.url)
