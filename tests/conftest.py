"""Fixtures that start real servers: nats-server with JetStream, the ingress, subscribers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ripple.api.models import BrokerSpec
from ripple.local.nats_server import NatsServer
from ripple.store import EventStore


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def store(nats_server: NatsServer) -> AsyncIterator[EventStore]:
    """A connected store with the default broker of the default namespace."""
    event_store = await EventStore.connect(nats_server.url, publish_timeout=2.0)
    await event_store.ensure_broker("default", "default", BrokerSpec())
    try:
        yield event_store
    finally:
        await event_store.close()
