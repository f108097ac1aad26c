"""The ingress on loopback against the real nats-server of the ``store`` fixture, and an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.store import EventStore
from tests.support import serve


def default_broker_only(namespace: str, broker: str) -> bool:
    return (namespace, broker) == ("default", "default")


@pytest.fixture
async def ingress(store: EventStore) -> AsyncIterator[str]:
    """The URL of the default broker on an ingress with a 64 KiB body limit."""
    settings = IngressSettings(brokers=default_broker_only, max_body=64 * 1024)
    async with serve(create_ingress_app(store, settings)) as url:
        yield url + "/default/default"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
