"""A delivery that takes longer than ack_wait is kept alive by the worker's one keep-alive loop: JetStream does
not redeliver it meanwhile, and the loop forgets each message once it is settled."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ripple.dispatch import Dispatcher
from ripple.events.extensions import stamp_arrival
from ripple.store import EventStore
from tests.support import event, subscriber, trigger


async def test_a_slow_delivery_is_not_redelivered(store: EventStore):
    async def slow(ev, attempt):
        await asyncio.sleep(3.0)  # three times ack_wait
        return web.Response(status=200)

    dispatcher = Dispatcher(store, lambda destination, namespace: _uri(destination), ack_wait=1.0)
    try:
        async with subscriber(slow) as sub:
            await dispatcher.apply([trigger("t", subscriber=sub.url)])
            for i in range(3):
                await store.publish_event("default", "default", stamp_arrival(event(f"slow-{i}")))
            await sub.wait_for(3)
            worker = dispatcher.workers[("default", "t")]
            for _ in range(100):
                if worker.stats.delivered == 3:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.5)  # a redelivery would have come by now
            assert sorted(sub.ids()) == ["slow-0", "slow-1", "slow-2"]
            assert worker.stats.delivered == 3
            assert worker._in_flight == {}
    finally:
        await dispatcher.close()


async def _uri(destination) -> str:
    assert destination.uri is not None
    return destination.uri
