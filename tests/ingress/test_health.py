"""Health endpoints tell the truth: 503 while the component cannot store or its background work is failing."""

from __future__ import annotations

import aiohttp

from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.store import EventStore
from ripple.supervision import Supervisor, SupervisorSettings
from tests.ingress.conftest import default_broker_only
from tests.support import eventually, serve


async def status_of(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status


async def test_ingress_health_follows_nats_and_its_supervised_tasks(nats_server):
    store = await EventStore.connect(nats_server.url)
    supervisor = Supervisor(SupervisorSettings(initial_backoff=0.01, max_backoff=0.01, unhealthy_after=3))
    settings = IngressSettings(brokers=default_broker_only, healthy=supervisor.healthy)
    async with serve(create_ingress_app(store, settings)) as url:
        assert await status_of(url + "/-/health") == 200

        async def broken() -> None:
            raise RuntimeError("watch cannot work")

        supervisor.start("watch brokers", broken, kind="test-watch")
        await eventually(lambda: not supervisor.healthy())
        assert await status_of(url + "/-/health") == 503
        await supervisor.close()
        assert await status_of(url + "/-/health") == 200
        await store.close()
        assert await status_of(url + "/-/health") == 503
