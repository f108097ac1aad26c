"""The one pull-fetch loop: a trigger's worker and a broker's router both read their consumer through it."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.msg import Msg

from ripple._aio import raise_if_cancelling
from ripple.store.jetstream import EventStore

__all__ = ["FETCH_WAIT", "fetch_forever"]

FETCH_WAIT = 1.0
"""Seconds one pull waits for messages before the loop asks again."""


async def fetch_forever(
    store: EventStore,
    stream: str,
    consumer: Callable[[], Awaitable[str]],
    take: Callable[[list[Msg]], Awaitable[None]],
    *,
    reserve: Callable[[], Awaitable[int]],
    release: Callable[[int], None] = lambda unused: None,
) -> None:
    """Fetch from ``stream``'s durable ``consumer()`` until cancelled or a fetch fails, handing batches to ``take``.

    ``consumer`` creates or updates the consumer and names it: it runs at every (re)start, since after a failure
    the consumer may be gone or the store's connection replaced, so the subscription is bound afresh. ``reserve``
    waits until there is room and says how many messages to fetch; ``release`` gives back what was not filled.
    Anything but a fetch that timed out ends the loop with its error, for the supervisor to restart it.
    """
    subscription = await store.js.pull_subscribe_bind(await consumer(), stream)
    try:
        while True:
            room = await reserve()
            try:
                messages = await subscription.fetch(batch=room, timeout=FETCH_WAIT)
            except (TimeoutError, nats.errors.TimeoutError):
                messages = []
            except BaseException:
                release(room)
                raise
            release(room - len(messages))
            raise_if_cancelling()  # a fetch may swallow the cancellation (see cancel_and_wait)
            if messages:
                await take(messages)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await subscription.unsubscribe()
