"""Database and object-storage sources: PostgreSQL changes from commit to function, and the cost of one poll.

Run with ``python bench/sources.py`` (``--help`` for sizes; about 60 s with the defaults). Needs PostgreSQL
installed (Debian's, as the tests use it) and the test extras (moto).

PostgreSQL, in one ``ripple dev`` (its own nats-server) with a PostgreSQL source on table ``tracked`` → broker →
a trigger → a receiver in this process (plain aiohttp, answering 202):

* ``insert-plain``:   ``--rows`` single-row transactions at ``--rate`` into ``plain``, a table no source reads:
  the baseline commit latency (p50/p99) of the same inserts with no source attached;
* ``insert-tracked``: the same inserts into ``tracked``; commit latency again, and the latency from each commit
  returning to the receiver getting its event (p50/p99), every change counted (all must arrive, once);
* ``drain``:          ``--burst`` rows inserted in one transaction, then the rate at which their events reach
  the receiver (changes/s from commit to function, at the source's full speed).

Storage: a moto S3 server holding ``--objects`` objects under one prefix, polled by the storage source's
``poll_once`` against its checkpoint in JetStream KV (no changes: the steady state), next to a bare paginated
``ListObjectsV2`` of the same prefix (the floor any poller pays). Figures: milliseconds per poll, CPU per poll,
checkpoint size.

The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg2
from aiohttp import web
from common import emit_json, load_average, machine, nats_server, num, percentile, ratio, serve, table

from dispatch import Child, wait_http
from ripple._aio import free_port

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.postgres_server import postgres_server  # noqa: E402 - the same PostgreSQL the tests start
from tests.s3_server import CREDENTIALS, s3_server  # noqa: E402

HOST = "127.0.0.1"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000, help="rows per insert phase (2000)")
    parser.add_argument("--rate", type=float, default=200.0, help="inserts per second in the insert phases (200)")
    parser.add_argument("--burst", type=int, default=5000, help="rows of the drain phase's one transaction (5000)")
    parser.add_argument("--objects", type=int, default=10_000, help="objects in the polled bucket (10000)")
    parser.add_argument("--polls", type=int, default=5, help="polls measured (5)")
    return parser.parse_args()


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}
        self.duplicates = 0
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        row = (body.get("new") or {}).get("id")
        if row in self.arrivals:
            self.duplicates += 1
        else:
            self.arrivals[row] = time.perf_counter()
        self.changed.set()
        return web.Response(status=202)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/", self.handle)
        return app

    async def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(self.arrivals)} of {count} changes arrived")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 1.0)
            except TimeoutError:
                pass


def _insert_paced(dsn: str, table: str, first: int, rows: int, rate: float) -> tuple[list[float], dict[int, float]]:
    """Single-row transactions at ``rate``; each commit's latency, and when each commit returned."""
    latencies, committed = [], {}
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    start = time.perf_counter()
    with conn.cursor() as cur:
        for n in range(rows):
            due = start + n / rate
            while (now := time.perf_counter()) < due:
                time.sleep(min(due - now, 0.002))
            t0 = time.perf_counter()
            cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (first + n, "x" * 40))
            t1 = time.perf_counter()
            latencies.append(t1 - t0)
            committed[first + n] = t1
    conn.close()
    return latencies, committed


def _insert_burst(dsn: str, first: int, rows: int) -> float:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO tracked SELECT g, 'burst' FROM generate_series(%s, %s) g", (first, first + rows - 1))
    committed = time.perf_counter()
    conn.close()
    return committed


def _ms(values: list[float], p: float) -> float:
    return percentile(sorted(values), p) * 1000


async def bench_postgres(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    with postgres_server() as pg:
        database = pg.create_database()
        pg.execute(database, "CREATE TABLE plain (id int PRIMARY KEY, note text)",
                   "CREATE TABLE tracked (id int PRIMARY KEY, note text)")
        dsn = pg.dsn(database)
        receiver = Receiver()
        async with serve(receiver.app()) as url:
            manifest = tmp / "bench.yaml"
            manifest.write_text(
                "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: bench}\n"
                f"stringData: {{dsn: '{dsn}'}}\n"
                "---\napiVersion: ripple.dev/v1alpha1\nkind: EventSource\nmetadata: {name: rows, namespace: bench}\n"
                "spec:\n  sink: {ref: {kind: Broker, name: default}}\n"
                "  postgres: {connectionSecretRef: {name: db, key: dsn}, tables: [public.tracked], "
                f"slot: {database}}}\n"
                "---\napiVersion: ripple.dev/v1alpha1\nkind: Trigger\nmetadata: {name: all, namespace: bench}\n"
                f"spec:\n  subscriber: {{uri: '{url}/'}}\n")
            port = free_port(HOST)
            dev = Child("ripple dev", [sys.executable, "-m", "ripple", "dev", str(manifest), "--host", HOST, "--port",
                                       str(port), "--data-dir", str(tmp / "data"), "--pool-size", "0"],
                        tmp / "dev.log")
            await dev.start()
            try:
                await wait_http(dev, f"http://{HOST}:{port}/-/health")
                await _wait_slot(dsn, database)
                plain, _ = await asyncio.to_thread(_insert_paced, dsn, "plain", 0, args.rows, args.rate)
                tracked, committed = await asyncio.to_thread(_insert_paced, dsn, "tracked", 0, args.rows, args.rate)
                await receiver.wait_for(args.rows, timeout=120)
                e2e = [receiver.arrivals[row] - at for row, at in committed.items()]
                burst_commit = await asyncio.to_thread(_insert_burst, dsn, args.rows, args.burst)
                await receiver.wait_for(args.rows + args.burst, timeout=300)
                last = max(receiver.arrivals[r] for r in range(args.rows, args.rows + args.burst))
                drain = args.burst / (last - burst_commit)
            finally:
                await dev.stop()
    return {
        "rate": args.rate,
        "rows": args.rows,
        "commit_ms_plain": {"p50": num(_ms(plain, 50), 3), "p99": num(_ms(plain, 99), 3)},
        "commit_ms_tracked": {"p50": num(_ms(tracked, 50), 3), "p99": num(_ms(tracked, 99), 3)},
        "commit_to_function_ms": {"p50": num(_ms(e2e, 50), 2), "p99": num(_ms(e2e, 99), 2)},
        "drain_changes_per_s": num(drain, 0),
        "burst": args.burst,
        "delivered": len(receiver.arrivals),
        "duplicates": receiver.duplicates,
    }


async def _wait_slot(dsn: str, slot: str) -> None:
    for _ in range(300):
        conn = psycopg2.connect(dsn)
        with conn.cursor() as cur:
            cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            row = cur.fetchone()
        conn.close()
        if row and row[0]:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the PostgreSQL source never started streaming")


async def bench_storage(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from aiobotocore.session import get_session

    from ripple.api.models import DeliverySpec, EventSource
    from ripple.dispatch.client import DeliveryResult
    from ripple.dispatch.policy import DeliveryPolicy
    from ripple.sources.delivery import SourceDelivery
    from ripple.sources.storage import StorageStatus, checkpoint_bucket, list_objects, poll_once

    access, secret = CREDENTIALS.split(":")
    bucket = f"bench-{secrets.token_hex(3)}"
    source = EventSource.model_validate({
        "apiVersion": "ripple.dev/v1alpha1", "kind": "EventSource", "metadata": {"name": "b", "namespace": "bench"},
        "spec": {"sink": {"uri": "http://unused/"}, "storage": {"endpoint": "http://unused", "bucket": bucket,
                                                                 "prefix": "in/"}}})

    class Discard:
        name = "discard"

        async def send(self, event: Any) -> DeliveryResult:
            return DeliveryResult(202)

    delivery = SourceDelivery("bench/b", Discard(), DeliveryPolicy.from_spec(DeliverySpec()))
    with s3_server() as endpoint:
        async with nats_server(tmp / "nats") as server, get_session().create_client(
                "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=access,
                aws_secret_access_key=secret) as client:
            import nats

            await client.create_bucket(Bucket=bucket)
            slots = asyncio.Semaphore(64)

            async def put(n: int) -> None:
                async with slots:
                    await client.put_object(Bucket=bucket, Key=f"in/{n:06}.csv", Body=b"x")

            started = time.perf_counter()
            await asyncio.gather(*(put(n) for n in range(args.objects)))
            print(f"uploaded {args.objects:,} objects in {time.perf_counter() - started:.1f}s", flush=True)
            nc = await nats.connect(server.url)
            kv = await checkpoint_bucket(nc.jetstream())
            status = StorageStatus()
            await poll_once(source, delivery, client, kv, status)  # the first poll: the starting point
            listing, listing_cpu, polls, poll_cpu = [], [], [], []
            for _ in range(args.polls):
                c0, t0 = time.process_time(), time.perf_counter()
                await list_objects(client, bucket, "in/")
                listing.append(time.perf_counter() - t0)
                listing_cpu.append(time.process_time() - c0)
                c0, t0 = time.process_time(), time.perf_counter()
                sent = await poll_once(source, delivery, client, kv, status)
                polls.append(time.perf_counter() - t0)
                poll_cpu.append(time.process_time() - c0)
                assert sent == 0
            entry = await kv.get(next(iter(await kv.keys())))
            await nc.close()
    median = lambda values: sorted(values)[len(values) // 2]  # noqa: E731
    return {
        "objects": args.objects,
        "poll_ms": num(median(polls) * 1000, 1),
        "poll_cpu_ms": num(median(poll_cpu) * 1000, 1),
        "list_only_ms": num(median(listing) * 1000, 1),
        "list_only_cpu_ms": num(median(listing_cpu) * 1000, 1),
        "poll_vs_list": num(ratio(median(polls), median(listing)), 3),
        "checkpoint_bytes": len(entry.value or b""),
    }


async def main_async(args: argparse.Namespace) -> int:
    load = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="ripple-bench-sources-"))
    try:
        pg = await bench_postgres(args, tmp)
        st = await bench_storage(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(table(["PostgreSQL", "p50 ms", "p99 ms"], [
        ["commit, no source attached", pg["commit_ms_plain"]["p50"], pg["commit_ms_plain"]["p99"]],
        ["commit, table read by the source", pg["commit_ms_tracked"]["p50"], pg["commit_ms_tracked"]["p99"]],
        [f"commit → function at {args.rate:g}/s", pg["commit_to_function_ms"]["p50"],
         pg["commit_to_function_ms"]["p99"]],
    ]))
    print(f"drain: {pg['drain_changes_per_s']:,.0f} changes/s from one {args.burst:,}-row transaction to the "
          f"function; delivered {pg['delivered']:,}, duplicates {pg['duplicates']}")
    print()
    print(table(["storage, " + f"{st['objects']:,} objects", "ms", "CPU ms"], [
        ["poll (list + checkpoint compare)", st["poll_ms"], st["poll_cpu_ms"]],
        ["bare ListObjectsV2 pages", st["list_only_ms"], st["list_only_cpu_ms"]],
    ]))
    print(f"checkpoint: {st['checkpoint_bytes']:,} bytes; load before: {load}")
    ok = pg["delivered"] == args.rows + args.burst and pg["duplicates"] == 0
    emit_json({"benchmark": "sources", "machine": machine(), "postgres": pg, "storage": st, "ok": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main_async(parse_args())))
