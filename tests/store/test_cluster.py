"""A broker with three replicas on a real three-server JetStream cluster: the stream leader killed with SIGKILL
while a producer sends 20,000 events at a steady rate, and replicas changed on a live broker."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from ripple.api.models import BrokerSpec
from ripple.dispatch import Dispatcher
from ripple.events.extensions import stamp_arrival
from ripple.events.http import encode_binary
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.local.nats_server import NatsCluster
from ripple.store import EventStore, subjects
from tests.dispatch.conftest import resolve
from tests.support import event, eventually, serve, subscriber, trigger

pytestmark = pytest.mark.e2e

TOTAL = 20_000
RATE = 400.0
IN_FLIGHT = 64
PUBLISH_TIMEOUT = 2.0
STREAM = subjects.stream_name("default", "default")


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    nodes = NatsCluster(tmp_path / "cluster", 3)
    await nodes.start()
    try:
        yield nodes
    finally:
        await nodes.stop()


async def _leader(store: EventStore) -> str:
    info = await store.js.stream_info(STREAM)
    assert info.cluster is not None and info.cluster.leader
    return str(info.cluster.leader)


async def test_killing_the_stream_leader_loses_no_acknowledged_event(cluster: NatsCluster, tmp_path: Path):
    store = await EventStore.connect(cluster.url, publish_timeout=PUBLISH_TIMEOUT)
    await store.ensure_broker("default", "default", BrokerSpec(replicas=3))
    settings = IngressSettings(brokers=lambda ns, b: (ns, b) == ("default", "default"))
    dispatcher = Dispatcher(store, resolve, ack_wait=5.0)
    answers: dict[str, int] = {}
    slowest = 0.0
    try:
        async with subscriber() as sub, serve(create_ingress_app(store, settings)) as url:
            await dispatcher.apply([trigger("all", subscriber=sub.url, delivery={"concurrency": 64})])
            killed = ""
            async with aiohttp.ClientSession() as http:
                room = asyncio.Semaphore(IN_FLIGHT)

                async def post(i: int) -> None:
                    nonlocal slowest
                    headers, body = encode_binary(event(f"ev-{i}", data={"i": i}))
                    started = time.monotonic()
                    try:
                        async with http.post(url + "/default/default", data=body, headers=headers,
                                             timeout=aiohttp.ClientTimeout(total=30)) as response:
                            answers[f"ev-{i}"] = response.status
                    except (aiohttp.ClientError, TimeoutError):
                        answers[f"ev-{i}"] = 0
                    finally:
                        slowest = max(slowest, time.monotonic() - started)
                        room.release()

                tasks, start = [], time.monotonic()
                for i in range(TOTAL):
                    await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
                    if i == TOTAL // 4:
                        killed = await _leader(store)
                        process = cluster.server(killed).process
                        assert process is not None
                        process.kill()  # SIGKILL: no goodbye to the cluster
                    await room.acquire()
                    tasks.append(asyncio.create_task(post(i)))
                await asyncio.gather(*tasks)
                sending = time.monotonic() - start
            accepted = {i for i, status in answers.items() if status == 202}
            await eventually(lambda: set(sub.ids()) >= accepted, timeout=180, interval=0.5)
            draining = time.monotonic() - start - sending
            assert await _leader(store) != killed  # a new leader took over
    finally:
        await dispatcher.close()
        await store.close()
    statuses = Counter(answers.values())
    delivered = Counter(sub.ids())
    report = {"sent": TOTAL, "killed": killed, "answers": dict(statuses), "accepted": len(accepted),
              "delivered": len(set(delivered) & accepted), "duplicates": sum(n - 1 for n in delivered.values()),
              "lost": len(accepted - set(delivered)), "slowest_answer_s": round(slowest, 3),
              "sending_s": round(sending, 1), "delivered_after_s": round(draining, 1)}
    print(json.dumps(report))
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert set(statuses) <= {202, 503}, report  # never a 500, never a connection left without an answer
    assert report["lost"] == 0
    assert slowest < PUBLISH_TIMEOUT + 5.0, report  # no answer waits much past the publish timeout
    assert statuses[202] > TOTAL // 2, report


async def test_replicas_change_on_a_live_broker_and_its_events_stay(cluster: NatsCluster):
    store = await EventStore.connect(cluster.url)
    try:
        await store.ensure_broker("default", "default", BrokerSpec(replicas=1))
        for i in range(100):
            await store.publish_event("default", "default", stamp_arrival(event(f"e{i}")))
        await store.ensure_broker("default", "default", BrokerSpec(replicas=3))

        async def replicated() -> bool:
            info = await store.js.stream_info(STREAM)
            current = [r for r in (info.cluster.replicas or []) if r.current] if info.cluster else []
            return info.config.num_replicas == 3 and len(current) == 2 and info.state.messages == 100

        await eventually(replicated, timeout=30, interval=0.2)
        dead = await store.js.stream_info(subjects.dead_letter_stream_name("default", "default"))
        assert dead.config.num_replicas == 3
        assert store.own_replicas() == 3
    finally:
        await store.close()
