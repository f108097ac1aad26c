"""A running dispatcher over the test store, with triggers added per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ripple.api.models import Destination
from ripple.dispatch import Dispatcher, Unresolvable
from ripple.store import EventStore

FUNCTION_URLS: dict[str, str] = {}


async def resolve(destination: Destination, namespace: str) -> str:
    if destination.uri is not None:
        return destination.uri
    assert destination.ref is not None
    if destination.ref.name not in FUNCTION_URLS:
        raise Unresolvable(destination.ref.name)
    return FUNCTION_URLS[destination.ref.name]


@pytest.fixture
async def dispatcher(store: EventStore) -> AsyncIterator[Dispatcher]:
    FUNCTION_URLS.clear()
    running = Dispatcher(store, resolve, ack_wait=5.0)
    try:
        yield running
    finally:
        await running.close()
