"""Kopf handlers, one module per kind; importing this package registers them all."""

from ripple.controller.handlers import broker, eventsource, function, inventory, lifecycle, orchestration, trigger

__all__ = ["broker", "eventsource", "function", "inventory", "lifecycle", "orchestration", "trigger"]
