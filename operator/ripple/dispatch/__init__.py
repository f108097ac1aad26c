"""The dispatcher: durable consumers per trigger, filtering, HTTP delivery, retries, dead letters, replies."""

from ripple.dispatch.dispatcher import Dispatcher
from ripple.dispatch.resolve import Resolver, Unresolvable
from ripple.dispatch.worker import TriggerWorker

__all__ = ["Dispatcher", "Resolver", "TriggerWorker", "Unresolvable"]
