"""The limits on one request at a real ingress (served by ``ripple.serving.start_site``, as in production) against
a real nats-server: each is answered with its own 4xx whose message names the limit, and a request at the limit is
stored. Batch size: 413 naming the count and the limit. An attribute over its size: 400 naming the attribute (and,
in a batch, the event). Header count and header size: aiohttp's parser answers them before Ripple sees the
request, with 400 and a plain-text reason (its parser hard-codes 400; no public hook turns it into 431)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import http_parser

from ripple.defaults import MAX_BATCH
from ripple.events.model import MAX_EXTENSION_BYTES, MAX_SOURCE_BYTES
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.serving import DEFAULT_LIMITS, start_site
from ripple.store import EventStore
from tests.ingress.conftest import default_broker_only
from tests.ingress.rawhttp import raw_post
from tests.ingress.test_ingress import BATCH, BINARY, post, stored

C_PARSER = http_parser.HttpRequestParser is not http_parser.HttpRequestParserPy
"""aiohttp's C parser takes ``max_headers`` header fields; its pure-Python one counts the request line and the blank
line too."""
MAX_FIELDS = DEFAULT_LIMITS.max_headers if C_PARSER else DEFAULT_LIMITS.max_headers - 2


@pytest.fixture
async def url(store: EventStore) -> AsyncIterator[str]:
    """The default broker on an ingress served with Ripple's default HTTP limits and batch limit."""
    runner = await start_site(create_ingress_app(store, IngressSettings(brokers=default_broker_only)),
                              "127.0.0.1", 0, name="request-limits")
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/default/default"
    finally:
        await runner.cleanup()


def batch(count: int, **extra: str) -> str:
    return json.dumps([{"specversion": "1.0", "id": f"e{i}", "source": "/src", "type": "t", **extra}
                       for i in range(count)])


# --- events per batch -------------------------------------------------------------------------------------------


async def test_a_batch_at_the_limit_is_stored_whole(url, http, store):
    assert (await post(http, url, batch(MAX_BATCH), **{"Content-Type": BATCH}))[0] == 202
    assert len(await stored(store)) == MAX_BATCH == 1000


async def test_a_batch_over_the_limit_is_413_naming_the_count_and_the_limit(url, http, store):
    status, body = await post(http, url, batch(MAX_BATCH + 1), **{"Content-Type": BATCH})
    assert status == 413
    assert body["error"] == "the batch holds 1001 events, over the limit of 1000 events per request"
    assert await stored(store) == []


async def test_a_batch_over_the_limit_is_413_before_its_events_are_validated(url, http, store):
    status, body = await post(http, url, json.dumps([{}] * (MAX_BATCH + 1)), **{"Content-Type": BATCH})
    assert status == 413 and "1001 events" in body["error"]


# --- attribute sizes --------------------------------------------------------------------------------------------


async def test_an_extension_at_its_size_limit_is_stored(url, http, store):
    assert (await post(http, url, **{**BINARY, "ce-tenant": "t" * MAX_EXTENSION_BYTES}))[0] == 202
    (event,) = await stored(store)
    assert len(event["tenant"]) == MAX_EXTENSION_BYTES


async def test_an_extension_over_its_size_limit_is_400_naming_it(url, http, store):
    status, body = await post(http, url, **{**BINARY, "ce-tenant": "t" * (MAX_EXTENSION_BYTES + 1)})
    assert status == 400
    assert body["error"] == "attribute 'tenant' is 1025 bytes long, over the limit of 1024 bytes (UTF-8)"
    assert await stored(store) == []


async def test_an_attribute_over_its_size_limit_in_a_batch_names_the_event_and_the_attribute(url, http, store):
    events = json.loads(batch(3))
    events[1]["source"] = "/" + "s" * MAX_SOURCE_BYTES
    status, body = await post(http, url, json.dumps(events), **{"Content-Type": BATCH})
    assert status == 400
    assert body["error"] == "event[1]: attribute 'source' is 1025 bytes long, over the limit of 1024 bytes (UTF-8)"
    assert await stored(store) == []


# --- headers: answered by aiohttp's parser ----------------------------------------------------------------------


def padded(fields: int) -> list[tuple[str, str]]:
    """The event's headers and enough others for ``fields`` header fields in all (raw_post adds Host, Connection
    and Content-Length)."""
    headers = list(BINARY.items())
    return headers + [(f"X-Pad-{i}", "v") for i in range(fields - len(headers) - 3)]


async def test_a_request_with_as_many_headers_as_allowed_is_stored(url, store):
    answer = await raw_post(url, padded(MAX_FIELDS))
    assert answer.status == 202, answer.error
    assert len(await stored(store)) == 1


async def test_one_header_too_many_is_400_saying_so(url, store):
    answer = await raw_post(url, padded(MAX_FIELDS + 1))
    assert (answer.status, answer.error) == (400, "Too many headers received")
    assert await stored(store) == []


async def test_a_header_at_the_size_limit_is_stored(url, store):
    # "X-Long: " and the value: the field as aiohttp measures it, at most max_field_size bytes.
    answer = await raw_post(url, [*BINARY.items(), ("X-Long", "v" * (DEFAULT_LIMITS.max_field_size - 8))])
    assert answer.status == 202, answer.error


async def test_a_header_over_the_size_limit_is_400_naming_the_limit(url, store):
    answer = await raw_post(url, [*BINARY.items(), ("X-Long", "v" * (DEFAULT_LIMITS.max_field_size + 1))])
    assert answer.status == 400
    assert answer.error.startswith(f"Got more than {DEFAULT_LIMITS.max_field_size} bytes when reading: ")
    assert await stored(store) == []
