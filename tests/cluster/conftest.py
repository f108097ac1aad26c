"""What the cluster data plane's tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client


@pytest.fixture
async def api() -> AsyncIterator[client.ApiClient]:
    """A client for no server at all: nothing here may reach one (the console cannot list Deployments,
    and says so with nothing)."""
    api_client = client.ApiClient(client.Configuration(host="http://127.0.0.1:9"))
    try:
        yield api_client
    finally:
        await api_client.close()
