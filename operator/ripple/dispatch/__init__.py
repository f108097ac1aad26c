"""The dispatcher: durable consumers per trigger, filtering, HTTP delivery, retries, dead letters, replies."""

from ripple.dispatch.dispatcher import Dispatcher
from ripple.dispatch.worker import Resolver, TriggerWorker, Unresolvable

__all__ = ["Dispatcher", "Resolver", "TriggerWorker", "Unresolvable"]
