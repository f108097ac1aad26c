"""A broker with three replicas on a real three-server JetStream cluster while a producer sends 20,000 events at a
steady rate: the stream leader killed with SIGKILL, the leader partitioned from its peers (network namespaces), every
server restarted in turn; and replicas changed on a live broker."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import nats.errors
import pytest

from ripple.api.models import BrokerSpec
from ripple.dispatch import Dispatcher
from ripple.events.extensions import stamp_arrival
from ripple.events.http import encode_binary
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.local.nats_server import NatsCluster
from ripple.store import EventStore, subjects
from tests.dispatch.conftest import resolve
from tests.netns import Namespaces, namespaces
from tests.support import event, eventually, serve, subscriber, trigger

pytestmark = pytest.mark.e2e

TOTAL = 20_000
RATE = 400.0
IN_FLIGHT = 64
PUBLISH_TIMEOUT = 2.0
PARTITION_SECONDS = 10.0
STREAM = subjects.stream_name("default", "default")


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    nodes = NatsCluster(tmp_path / "cluster", 3)
    await nodes.start()
    try:
        yield nodes
    finally:
        await nodes.stop()


@pytest.fixture
async def partitionable(tmp_path: Path) -> AsyncIterator[tuple[NatsCluster, Namespaces]]:
    """Three servers, each in its own network namespace."""
    with namespaces(3) as spaces:
        nodes = NatsCluster(tmp_path / "cluster", hosts=spaces.addresses,
                            command_prefixes=[spaces.prefix(i) for i in range(3)])
        await nodes.start()
        try:
            yield nodes, spaces
        finally:
            await nodes.stop()


async def _leader(store: EventStore) -> str:
    info = await store.js.stream_info(STREAM)
    assert info.cluster is not None and info.cluster.leader
    return str(info.cluster.leader)


async def _all_current(store: EventStore) -> bool:
    """Every replica of the broker's stream is caught up with its leader."""
    try:
        info = await store.js.stream_info(STREAM)
    except nats.errors.Error:
        return False
    replicas = info.cluster.replicas or [] if info.cluster else []
    return bool(info.cluster and info.cluster.leader) and len(replicas) == 2 and all(r.current for r in replicas)


async def _lead_from_clients_server(store: EventStore, cluster: NatsCluster) -> str:
    """Move the stream's leadership to the server the ingress and dispatcher are connected to, so that cutting
    that leader off leaves them talking to a stale leader: the case where a split brain would show."""
    url = store.nc.connected_url
    assert url is not None
    ours = next(server.name for server in cluster.servers if (server.host, server.port) == (url.hostname, url.port))
    for _ in range(20):
        if await _leader(store) == ours:
            return ours
        await store.nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{STREAM}", b"", timeout=5)
        await eventually(lambda: _all_current(store), timeout=30, interval=0.2)
    raise AssertionError(f"the stream's leadership never moved to {ours}")


Fault = Callable[[EventStore], Awaitable[dict[str, object]]]


async def under_load(cluster: NatsCluster, fault: Fault, tmp_path: Path) -> dict[str, object]:
    """Send ``TOTAL`` events at ``RATE`` through a real ingress to an R3 broker, inject ``fault`` a quarter of the
    way in, and wait for every 202-acknowledged event to reach the subscriber; the report counts what was sent,
    acknowledged, delivered, duplicated and lost."""
    store = await EventStore.connect(cluster.url, publish_timeout=PUBLISH_TIMEOUT)
    await store.ensure_broker("default", "default", BrokerSpec(replicas=3))
    settings = IngressSettings(brokers=lambda ns, b: (ns, b) == ("default", "default"))
    dispatcher = Dispatcher(store, resolve, ack_wait=5.0)
    answers: dict[str, int] = {}
    sent_at: dict[str, float] = {}
    slowest = 0.0
    injected: dict[str, object] = {}
    try:
        async with subscriber() as sub, serve(create_ingress_app(store, settings)) as url:
            await dispatcher.apply([trigger("all", subscriber=sub.url, delivery={"concurrency": 64})])
            async with aiohttp.ClientSession() as http:
                room = asyncio.Semaphore(IN_FLIGHT)

                async def post(i: int) -> None:
                    nonlocal slowest
                    headers, body = encode_binary(event(f"ev-{i}", data={"i": i}))
                    started = sent_at[f"ev-{i}"] = time.monotonic()
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
                faulting: asyncio.Task[dict[str, object]] | None = None
                for i in range(TOTAL):
                    await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
                    if i == TOTAL // 4:
                        faulting = asyncio.create_task(fault(store))
                    await room.acquire()
                    tasks.append(asyncio.create_task(post(i)))
                await asyncio.gather(*tasks)
                assert faulting is not None
                injected = await faulting
                sending = time.monotonic() - start
            accepted = {i for i, status in answers.items() if status == 202}
            await eventually(lambda: set(sub.ids()) >= accepted, timeout=180, interval=0.5)
            draining = time.monotonic() - start - sending
            injected["leader_after"] = await _leader(store)
    finally:
        await dispatcher.close()
        await store.close()
    statuses = Counter(answers.values())
    if "window" in injected:  # when the fault was in force: the answers to what was sent meanwhile
        begun, ended = injected.pop("window")  # type: ignore[misc]
        injected["answers_during_fault"] = dict(Counter(status for i, status in answers.items()
                                                        if begun <= sent_at[i] <= ended))
    delivered = Counter(sub.ids())
    report = {"sent": TOTAL, **injected, "answers": dict(statuses), "accepted": len(accepted),
              "delivered": len(set(delivered) & accepted), "duplicates": sum(n - 1 for n in delivered.values()),
              "lost": len(accepted - set(delivered)), "slowest_answer_s": round(slowest, 3),
              "sending_s": round(sending, 1), "delivered_after_s": round(draining, 1)}
    print(json.dumps(report))
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert set(statuses) <= {202, 503}, report  # never a 500, never a connection left without an answer
    assert report["lost"] == 0, report
    assert slowest < PUBLISH_TIMEOUT + 5.0, report  # no answer waits much past the publish timeout
    return report


async def test_killing_the_stream_leader_loses_no_acknowledged_event(cluster: NatsCluster, tmp_path: Path):
    async def kill_leader(store: EventStore) -> dict[str, object]:
        killed = await _leader(store)
        process = cluster.server(killed).process
        assert process is not None
        process.kill()  # SIGKILL: no goodbye to the cluster
        return {"fault": "kill -9 the stream leader", "killed": killed}

    report = await under_load(cluster, kill_leader, tmp_path)
    assert report["leader_after"] != report["killed"]  # a new leader took over
    assert Counter(report["answers"])[202] > TOTAL // 2, report  # type: ignore[call-overload]


async def test_a_leader_partitioned_from_its_peers_for_ten_seconds_loses_nothing(
        partitionable: tuple[NatsCluster, Namespaces], tmp_path: Path):
    """The leader keeps its clients but loses its peers: it cannot commit, so whatever it is sent is answered 503
    (or stored by the new leader through another server), and nothing it answered before is lost on healing."""
    cluster, spaces = partitionable

    async def partition_leader(store: EventStore) -> dict[str, object]:
        leader = await _lead_from_clients_server(store, cluster)
        index = [server.name for server in cluster.servers].index(leader)
        spaces.isolate(index)
        cut = time.monotonic()
        await asyncio.sleep(PARTITION_SECONDS)
        majority = await EventStore.connect(next(s.url for s in cluster.servers if s.name != leader))
        try:  # asked on the majority's side: the cut-off server still believes it leads
            during = await _leader(majority)
        finally:
            await majority.close()
        spaces.heal()
        healed = time.monotonic()
        await eventually(lambda: _all_current(store), timeout=60, interval=0.5)
        return {"fault": f"partition the stream leader from its peers for {PARTITION_SECONDS:g} s",
                "partitioned": leader, "leader_during": during, "window": (cut, healed)}

    report = await under_load(cluster, partition_leader, tmp_path)
    assert report["leader_during"] != report["partitioned"]  # the majority elected a leader of its own


async def test_a_rolling_restart_of_every_server_loses_nothing(cluster: NatsCluster, tmp_path: Path):
    """Each server in turn is stopped the way an upgrade stops it (SIGTERM), started again and given time to catch
    up before the next."""
    async def roll(store: EventStore) -> dict[str, object]:
        order = []
        for server in cluster.servers:
            await server.stop()
            await server.start(timeout=60)
            await eventually(lambda: _all_current(store), timeout=60, interval=0.5)
            order.append(server.name)
        return {"fault": "rolling restart of every server (SIGTERM, start, catch up)", "restarted": order}

    report = await under_load(cluster, roll, tmp_path)
    assert len(report["restarted"]) == 3  # type: ignore[arg-type]


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
