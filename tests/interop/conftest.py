"""Ripple's real components for the interop tests: the ingress and a dispatcher over a real nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ripple.api.models import Destination
from ripple.dispatch import Dispatcher
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.store import EventStore
from tests.support import serve


@pytest.fixture
async def ingress(store: EventStore) -> AsyncIterator[str]:
    """The ingress app on a free loopback port; yields the default broker's URL."""
    settings = IngressSettings(brokers=lambda ns, b: (ns, b) == ("default", "default"))
    async with serve(create_ingress_app(store, settings)) as url:
        yield url + "/default/default"


async def _resolve(destination: Destination, namespace: str) -> str:
    assert destination.uri is not None, "interop triggers name their subscriber by URI"
    return destination.uri


@pytest.fixture
async def dispatcher(store: EventStore) -> AsyncIterator[Dispatcher]:
    running = Dispatcher(store, _resolve, ack_wait=5.0)
    try:
        yield running
    finally:
        await running.close()
