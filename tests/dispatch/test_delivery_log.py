"""The delivery log: a retried or dead-lettered delivery is logged at INFO, a successful one at DEBUG (shown by
``ripple dev`` and ``ripple dispatcher --log-deliveries``, not by a busy dispatcher)."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from ripple.cli.logs import configure_logging
from ripple.events.extensions import stamp_arrival
from ripple.store import EventStore
from tests.support import event, eventually, subscriber, trigger


async def test_successes_at_debug_retries_at_info(store: EventStore, dispatcher, caplog: pytest.LogCaptureFixture):
    def respond(ev, attempt):
        return web.Response(status=503 if ev.id == "flaky" and attempt == 1 else 202)

    caplog.set_level(logging.DEBUG, logger="ripple.delivery")
    async with subscriber(respond) as sub:
        await dispatcher.apply([trigger("t", subscriber=sub.url, delivery={"backoffDelay": "PT0.1S"})])
        for name in ("fine", "flaky"):
            await store.publish_event("default", "default", stamp_arrival(event(name)))
        await eventually(lambda: dispatcher.workers[("default", "t")].stats.delivered == 2)
    lines = {(r.levelno, r.getMessage().split(" latency=")[0]) for r in caplog.records if r.name == "ripple.delivery"}
    assert (logging.DEBUG, "default/t id=fine status=202 attempt=1") in lines
    assert (logging.INFO, "default/t id=flaky status=503 attempt=1") in lines
    assert (logging.DEBUG, "default/t id=flaky status=202 attempt=2") in lines


@pytest.mark.parametrize(("every_delivery", "level"), [(False, logging.INFO), (True, logging.DEBUG)])
def test_configure_logging_shows_successes_only_when_asked(every_delivery: bool, level: int):
    logger = logging.getLogger("ripple.delivery")
    saved = logger.level, logger.handlers[:], logger.propagate
    try:
        configure_logging(every_delivery=every_delivery)
        assert logger.level == level
    finally:
        logger.setLevel(saved[0])
        logger.handlers[:] = saved[1]
        logger.propagate = saved[2]
