"""Property-based fuzzing of the real ingress, served on loopback, storing in the real nats-server.

Hostile requests in binary, structured and batch mode (see :mod:`tests.events.strategies`) are sent over a raw
socket, so that nothing a client library checks stands in the way. The invariants:

* the answer is never 5xx, except a 503 carrying ``Retry-After``;
* a 202 means every event of the request is in JetStream, and every stored message reads back with
  :meth:`CloudEvent.from_json_bytes`, re-encodes (storage form, binary, structured) and has JSON data that
  :meth:`CloudEvent.json_data` decodes without an exception;
* the NATS connection is never lost to a request (nats-server closes it on a protocol violation).

Hypothesis drives a sync test function in a worker thread; each example is posted on the event loop that runs
the server (``run_coroutine_threadsafe``), since async fixtures cannot be used with ``@given`` directly.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from ripple.events.http import decode_request, encode_binary, encode_structured
from ripple.events.model import CloudEvent
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.store import EventStore, subjects
from tests.events.strategies import VALID_CODINGS, Request, requests
from tests.ingress.conftest import default_broker_only
from tests.ingress.rawhttp import raw_post
from tests.support import serve

MAX_BODY = 32 * 1024
DEEPER = os.environ.get("RIPPLE_FUZZ_EXAMPLES")
"""Set to fuzz longer, with fresh random examples each run (CI runs the fixed, derandomized 300)."""
FUZZ = settings(
    max_examples=int(DEEPER) if DEEPER else 300,
    deadline=None,
    derandomize=not DEEPER,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no explain phase: it writes patch files
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Stream:
    """What the default broker's stream holds, read incrementally; each message checked as it is read."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.name = subjects.stream_name("default", "default")
        self.last_seq = 0
        self.keys: set[tuple[str, str]] = set()

    async def read_new(self) -> None:
        info = await self.store.js.stream_info(self.name)
        for seq in range(self.last_seq + 1, info.state.last_seq + 1):
            message = await self.store.js.get_msg(self.name, seq)
            event = CloudEvent.from_json_bytes(message.data or b"")
            assert CloudEvent.from_json_bytes(event.to_json_bytes()) == event
            encode_binary(event)
            encode_structured(event)
            event.json_data()
            self.keys.add((event.source, event.id))
        self.last_seq = info.state.last_seq


@pytest.fixture
async def fuzz_url(store: EventStore) -> AsyncIterator[str]:
    app = create_ingress_app(store, IngressSettings(brokers=default_broker_only, max_body=MAX_BODY))
    async with serve(app) as url:
        yield url + "/default/default"


async def test_hostile_requests_never_get_a_500_and_every_202_is_stored_and_readable(fuzz_url, store):
    loop = asyncio.get_running_loop()
    stream = Stream(store)
    statuses: dict[int, int] = {}

    async def check(request: Request) -> None:
        response = await raw_post(fuzz_url, request.headers, request.body, chunked=request.chunked)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        assert response.status < 500 or (response.status == 503 and "retry-after" in response.headers), (
            response.status,
            response.body[:500],
        )
        if response.status != 202:
            return
        # An empty body is empty in any coding (aiohttp accepted it too): anything else must be validly coded.
        assert request.coding in VALID_CODINGS or request.body == b"", "accepted a body not valid in its coding"
        expected = {(e.source, e.id) for e in decode_request(request.server_view(), request.plain)}
        await stream.read_new()
        assert expected <= stream.keys, "a 202 whose events are not all in JetStream"

    @FUZZ
    @given(requests())
    def example(request: Request) -> None:
        asyncio.run_coroutine_threadsafe(check(request), loop).result(timeout=60)

    await asyncio.to_thread(example)
    assert store.connected and store.connections == 1, "a request made nats-server close the connection"
    # The strategies reach every kind of answer, accepted ones included.
    assert statuses.get(202, 0) >= 5 and statuses.get(400, 0) >= 5, statuses
    assert {413, 415} <= statuses.keys(), statuses
