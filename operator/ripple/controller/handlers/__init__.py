"""Kopf handlers, one module per kind; importing this package registers them all."""

from ripple.controller.handlers import (
    broker,
    eventpolicy,
    eventsource,
    function,
    inventory,
    lifecycle,
    orchestration,
    trigger,
)

__all__ = ["broker", "eventpolicy", "eventsource", "function", "inventory", "lifecycle", "orchestration", "trigger"]
