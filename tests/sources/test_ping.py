"""Ping sources on a real JetStream: ticks with stable ids and their scheduled times, each stored once however many
adapters fire it, catch-up on request only, and a failing sink retried and then dead-lettered."""

from __future__ import annotations

from datetime import datetime

import aiohttp
from aiohttp import web

from ripple.local.sources import LocalSources
from ripple.sources.ping import PING_TYPE
from tests.sources.conftest import no_functions
from tests.support import eventually, subscriber


def manifest(schedule: str = "@every 1s", *, sink: str = "{ref: {kind: Broker, name: default}}", extra: str = "",
             delivery: str = "") -> str:
    return (
        "apiVersion: ripple.dev/v1alpha1\nkind: EventSource\nmetadata: {name: tick}\nspec:\n"
        f"  sink: {sink}\n{delivery}"
        f"  ping: {{schedule: '{schedule}', data: '{{\"hello\": 1}}'{extra}}}\n"
    )


async def test_every_second_delivers_ticks_with_distinct_ids_and_scheduled_times(serve_sources):
    async with serve_sources(manifest()) as served:
        events = await eventually(lambda: _at_least(served, 3), timeout=10)
    ids = [e.id for e in events]
    assert len(set(ids)) == len(ids)
    for stored in events:
        tick = datetime.fromisoformat(stored["time"])
        assert tick.microsecond == 0 and stored["id"] == stored["time"]  # whole seconds since the epoch
        assert stored["type"] == PING_TYPE and stored.data == b'{"hello": 1}'
        assert stored["source"] == "/apis/ripple.dev/v1alpha1/namespaces/default/eventsources/tick"


async def _at_least(served, count: int):  # type: ignore[no-untyped-def]
    events = await served.events()
    return events if len(events) >= count else None


async def test_two_adapters_on_one_schedule_store_each_tick_once(serve_sources, store):
    async with serve_sources(manifest()) as served, aiohttp.ClientSession() as session:
        second = LocalSources(served.manifests, store, session, no_functions, max_body=1024,
                              kubeconfig_available=False)
        second.start()
        try:
            await eventually(lambda: second.status()["default/tick"]["sent"] >= 3, timeout=10)
        finally:
            await second.close()
        first_sent = served.sources.status()["default/tick"]["sent"]
        events = await served.events()
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids))  # each tick stored once ...
    assert first_sent >= 3  # ... though both adapters sent it


async def test_missed_ticks_are_replayed_only_within_catch_up(serve_sources):
    async with serve_sources(manifest(extra=", catchUp: PT5S")) as served:
        events = await eventually(lambda: _at_least(served, 5), timeout=3)  # at once, not one per second
    assert len({e.id for e in events}) == len(events)


async def test_a_failing_sink_is_retried_and_then_dead_lettered(serve_sources):
    async with subscriber(lambda e, attempt: web.Response(status=500)) as sub:
        delivery = "  delivery: {retry: 2, backoffDelay: PT0.05S}\n"
        async with serve_sources(manifest("@every 1s", sink=f"{{uri: '{sub.url}'}}", delivery=delivery)) as served:
            letters = await eventually(lambda: _dead_letters(served), timeout=10)
            status = served.sources.status()["default/tick"]
        first = sub.received[0].event.id
        assert [r.event.id for r in sub.received].count(first) == 3  # the first attempt and 2 retries
        assert status["retried"] >= 2 and status["deadLettered"] >= 1 and "500" in status["lastError"]
        assert letters >= 1


async def _dead_letters(served) -> int:  # type: ignore[no-untyped-def]
    try:
        return await served.dead_letters()
    except Exception:
        return 0
