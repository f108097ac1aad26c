"""The ping source: an event per tick of ``spec.ping.schedule``, identified by the tick's instant.

Every replica (and a restarted adapter) computes the same ticks (``api/schedules.py``), and a tick's id is its
instant, so the broker's dedup window stores each tick once however many adapters fire it. Ticks missed while
the adapter was down are not replayed unless ``spec.ping.catchUp`` says how far back. Ticks are sent
concurrently (up to ``spec.delivery.concurrency``) so that one tick's retries do not delay the next; when that
many are still being sent, the schedule waits, and the late ticks fire at once with their scheduled ``time``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from ripple.api.durations import seconds
from ripple.api.models import EventSource, PingSource
from ripple.api.schedules import Schedule, tick_id
from ripple.events.model import CloudEvent
from ripple.sources.delivery import Sending, SourceDelivery
from ripple.sources.webhook import source_path

__all__ = ["MAX_SLEEP", "PING_TYPE", "ping_event", "run_ping"]

PING_TYPE = "dev.ripple.sources.ping"
MAX_SLEEP = 30.0
"""Longest single sleep towards the next tick: the wall clock is read again after it, so a clock step is followed."""
Clock = Callable[[], datetime]


def ping_event(spec: PingSource, namespace: str, name: str, tick: datetime,
               extensions: dict[str, str] | None = None) -> CloudEvent:
    attributes: dict[str, str] = {
        "specversion": "1.0",
        "id": tick_id(tick),
        "source": source_path(namespace, name),
        "type": PING_TYPE,
        "time": tick_id(tick),
        **(extensions or {}),
    }
    if spec.data:
        attributes["datacontenttype"] = spec.content_type
    return CloudEvent.create(attributes, spec.data.encode() if spec.data else None)


def _now() -> datetime:
    return datetime.now(UTC)


async def run_ping(source: EventSource, delivery: SourceDelivery, *, clock: Clock = _now,
                   sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Fire ticks until cancelled."""
    spec = source.spec.ping
    assert spec is not None, "run_ping runs a ping source"
    schedule = Schedule(spec.schedule, spec.timezone)
    extensions = source.spec.ce_overrides.extensions if source.spec.ce_overrides is not None else {}
    sending = Sending(source.spec.delivery.concurrency)

    async def fire(tick: datetime) -> None:
        event = ping_event(spec, source.namespace, source.name, tick, extensions)
        await sending.submit(lambda: delivery.deliver(event), name=f"ping {delivery.name} {event.id}")

    try:
        now = clock()
        catch_up = None if spec.catch_up is None else timedelta(seconds=seconds(spec.catch_up))
        for tick in schedule.first_due(now, catch_up):
            await fire(tick)
        last = now
        while True:
            tick = schedule.next_after(last)
            while (wait := (tick - clock()).total_seconds()) > 0:
                await sleep(min(wait, MAX_SLEEP))
            await fire(tick)
            last = tick
    finally:
        await sending.close()  # a catch-up or another replica firing those ticks again is absorbed by dedup
