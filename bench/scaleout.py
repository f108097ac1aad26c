"""Past one machine: delivered events/s with 1 and 2 dispatcher processes on one 3-server JetStream cluster, and
what three replicas cost the store path against one, in the same run.

Run with ``python bench/scaleout.py`` (``--help`` for the sizes; the defaults take about 2 minutes on 2 cores).

What runs where:

* a three-server nats-server cluster (child processes, routed on loopback), as ``ripple dev --nats-cluster 3``;
* a receiver (child process, this script in ``receiver`` mode): an aiohttp app answering every POST 202 and
  counting them;
* ``ripple dispatcher`` processes (1, then 2) with one Trigger (concurrency 64) on an R3 broker; JetStream spreads
  the trigger's durable consumer between them;
* this process: publishes the events through the store's pipelined publisher (the path the ingress stores by),
  in batches of 100, and reads the receiver's count.

Phases: ``store R1`` and ``store R3`` publish ``--events`` events to a broker with 1 and with 3 replicas
(stored events/s; the ratio is the cost of replication on ingest); ``dispatch xN (RK)`` publishes ``--events``
events to an RK broker with N dispatchers running and measures delivered events/s from the first delivery to the
last, with the CPU the dispatchers and the three servers spent per delivered event (``/proc/<pid>/stat``): the
dispatcher's figure turned round is what one core of dispatcher delivers. The NATS figure includes storing the
events (the publisher runs alongside). The trigger has no filter, so each event also passes the broker's router
(one more store, fetch and ack per event); the last phase pins the type, so the trigger reads the log directly.
Every event must be delivered (exit 1 otherwise). On one 2-core machine the cluster, the dispatchers and the
receiver share the cores, so the dispatcher ratio shows what a second process buys when CPU is scarce, not what
a second node buys. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from common import HOST, emit_json, free_port, load_average, machine, num, process_cpu, ratio, table

from dispatch import Child, receiver_main, wait_http, wait_ready
from ripple.api.models import BrokerSpec
from ripple.events.extensions import stamp_arrival
from ripple.events.model import CloudEvent
from ripple.local.nats_server import NatsCluster
from ripple.store import EventStore, subjects
from ripple.store.jetstream import MSG_ID_HEADER, dedup_id

NAMESPACE = "bench"
RECEIVER_MODE = "receiver"
BATCH = 100
DISPATCH_PHASES = ((1, 1, False), (3, 1, False), (3, 2, False), (3, 1, True))
"""(broker replicas, dispatcher processes, whether the trigger pins the event's type) of each delivery phase."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per phase")
    return parser.parse_args()


def events(prefix: str, count: int) -> list[tuple[str, bytes, dict[str, str]]]:
    subject = subjects.event_subject(NAMESPACE, "default", "bench.order")
    out = []
    for i in range(count):
        event = stamp_arrival(CloudEvent.create({"specversion": "1.0", "id": f"{prefix}-{i}", "source": "/bench",
                                                 "type": "bench.order", "datacontenttype": "application/json"},
                                                b'{"order": "' + b"x" * 180 + b'"}'))
        out.append((subject, event.to_json_bytes(), {MSG_ID_HEADER: dedup_id(event)}))
    return out


async def publish(store: EventStore, messages: list[tuple[str, bytes, dict[str, str]]]) -> float:
    """Store every message, BATCH pipelined at a time; seconds taken."""
    started = time.monotonic()
    for start in range(0, len(messages), BATCH):
        await store.publish_many(messages[start:start + BATCH])
    return time.monotonic() - started


async def fresh_broker(store: EventStore, replicas: int) -> None:
    await store.delete_broker(NAMESPACE, "default")
    await store.ensure_broker(NAMESPACE, "default", BrokerSpec(replicas=replicas))  # type: ignore[arg-type]


async def count(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/-/count") as response:
        return int((await response.json())["count"])


async def first_delivery(http: aiohttp.ClientSession, url: str, before: int) -> float:
    """When the receiver's count first moves past ``before`` (polled every 5 ms)."""
    for _ in range(60_000):
        if await count(http, url) > before:
            break
        await asyncio.sleep(0.005)
    return time.monotonic()


async def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    rows: list[list[Any]] = []
    figures: dict[str, Any] = {}
    lost = 0
    with tempfile.TemporaryDirectory(prefix="ripple-bench-scaleout-") as tmp:
        work = Path(tmp)
        cluster = NatsCluster(work / "cluster", 3)
        await cluster.start()
        port = free_port(HOST)
        receiver_url = f"http://{HOST}:{port}"
        receiver = Child("receiver", [sys.executable, __file__, RECEIVER_MODE, str(port)], work / "receiver.log")
        await receiver.start()
        store = await EventStore.connect(cluster.url, name="bench-scaleout")
        try:
            await wait_http(receiver, f"{receiver_url}/-/count")
            for replicas in (1, 3):
                await fresh_broker(store, replicas)
                seconds = await publish(store, events(f"r{replicas}", args.events))
                figures[f"store_r{replicas}_per_s"] = num(args.events / seconds, 0)
                rows.append([f"store R{replicas}", args.events, num(args.events / seconds, 0), "", "", ""])
            figures["r3_vs_r1"] = ratio(figures["store_r3_per_s"], figures["store_r1_per_s"])
            nats_pids = [server.process.pid for server in cluster.servers if server.process is not None]
            async with aiohttp.ClientSession() as http:
                for replicas, dispatchers, pinned in DISPATCH_PHASES:
                    await fresh_broker(store, replicas)
                    spec: dict[str, Any] = {"subscriber": {"uri": receiver_url + "/"}, "delivery": {"concurrency": 64}}
                    if pinned:  # read straight from the log: the router is not involved
                        spec["filter"] = {"attributes": {"type": "bench.order"}}
                    (work / "trigger.yaml").write_text(yaml.safe_dump({
                        "apiVersion": "ripple.dev/v1alpha1", "kind": "Trigger",
                        "metadata": {"name": "all", "namespace": NAMESPACE}, "spec": spec}))
                    children = [Child(f"dispatcher-{i}", [sys.executable, "-m", "ripple", "dispatcher",
                                                          str(work / "trigger.yaml"), "--nats", cluster.url],
                                      work / f"dispatcher-r{replicas}-{dispatchers}-{i}.log")
                                for i in range(dispatchers)]
                    for child in children:
                        await child.start()
                    try:
                        for child in children:
                            await wait_ready(store, child, [subjects.consumer_name("all")],
                                             subjects.stream_name(NAMESPACE, "default"))
                        before = await count(http, receiver_url)
                        messages = events(f"d{replicas}{dispatchers}", args.events)
                        sending = asyncio.create_task(publish(store, messages))
                        first = await first_delivery(http, receiver_url, before)
                        cpu_before = process_cpu([c.pid for c in children]), process_cpu(nats_pids)
                        deadline = first + 300
                        while (done := await count(http, receiver_url) - before) < args.events:
                            if time.monotonic() > deadline:
                                break
                            await asyncio.sleep(0.02)
                        elapsed = time.monotonic() - first
                        cpu_after = process_cpu([c.pid for c in children]), process_cpu(nats_pids)
                        await sending
                    finally:
                        for child in children:
                            await child.stop()
                    lost += max(0, args.events - done)
                    rate = done / elapsed
                    dispatcher_us = (cpu_after[0] - cpu_before[0]) / max(done, 1) * 1e6
                    nats_us = (cpu_after[1] - cpu_before[1]) / max(done, 1) * 1e6
                    key = f"dispatch_r{replicas}_x{dispatchers}" + ("_pinned" if pinned else "")
                    figures[f"{key}_per_s"] = num(rate, 0)
                    figures[f"{key}_dispatcher_cpu_us"] = num(dispatcher_us, 0)
                    figures[f"{key}_nats_cpu_us"] = num(nats_us, 0)
                    label = f"dispatch x{dispatchers} (R{replicas}{', type pinned' if pinned else ''})"
                    rows.append([label, done, num(rate, 0), num(dispatcher_us, 0),
                                 num(nats_us, 0), num(1e6 / dispatcher_us if dispatcher_us else None, 0)])
            figures["dispatch_r3_vs_r1"] = ratio(figures["dispatch_r3_x1_per_s"], figures["dispatch_r1_x1_per_s"])
            figures["x2_vs_x1"] = ratio(figures["dispatch_r3_x2_per_s"], figures["dispatch_r3_x1_per_s"])
            figures["pinned_vs_routed"] = ratio(figures["dispatch_r3_x1_pinned_per_s"], figures["dispatch_r3_x1_per_s"])
        finally:
            await store.close()
            await receiver.stop()
            await cluster.stop()
    print(table(["phase", "events", "events/s", "dispatcher CPU us/event", "NATS CPU us/event",
                 "events/s per dispatcher core"], rows))
    print(f"R3 against R1 on the store path: {figures['r3_vs_r1']}x, on delivery: {figures['dispatch_r3_vs_r1']}x;"
          f" 2 dispatchers against 1: {figures['x2_vs_x1']}x; type-pinned against routed:"
          f" {figures['pinned_vs_routed']}x; {lost} lost; load average {load_average()}")
    emit_json({"benchmark": "scaleout", "events": args.events, **figures, "lost": lost, "machine": machine(),
               "wall_seconds": num(time.monotonic() - started)})
    return 1 if lost else 0


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == RECEIVER_MODE:
        asyncio.run(receiver_main({"port": int(sys.argv[2])}))
        return 0
    return asyncio.run(run(parse_args()))


if __name__ == "__main__":
    sys.exit(main())
