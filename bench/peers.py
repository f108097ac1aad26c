"""Ripple against the Go peer (Benthos core + nats.go, ``bench/peers/``) on the same job, machine and load.

Run with ``python bench/peers.py`` (``--help`` for the sizes). Everything listens on 127.0.0.1; a real
``nats-server -js`` runs as a child process. The peer is built (or found in its cache) by
``bash bench/peers/build.sh``.

* Ingest: per round and contender a fresh JetStream stream and a fresh server process: ``ripple ingress MANIFEST``
  (a Broker of its own) or ``benthos-peer ingest`` (a stream of its own). The load generator is
  ``bench/ingress.py``'s aiohttp client (``--concurrency`` connections, single binary-mode events with
  ``--data-bytes`` of JSON data) in a process of its own. accepted/s = 202s inside the measured window / window;
  CPU us/event = utime + stime of the server process (``/proc``) in the window / events; at the end the stream
  must hold exactly the accepted total (warm-up and drain included).
* Delivery: one no-op receiver process counts the ``ce-id`` of every POST. Three processes stay up across rounds,
  each on its own stream: ``ripple dispatcher`` (a Trigger, ``delivery.concurrency`` = ``--concurrency``, binary),
  ``benthos-peer deliver -transport stock`` and ``-transport tuned`` (``-concurrency`` the same). A phase: wait
  until the process is idle with a pull request waiting, ``SIGSTOP`` it, publish ``--backlog`` events (in the
  format each stores: Ripple's structured JSON with an arrival stamp, the peer's raw body with ce-* NATS headers),
  wait until its consumer holds them, ``SIGCONT`` and time until ``num_pending + num_ack_pending`` is 0.
  deliveries/s = backlog / drain time; CPU us/delivery = the process's CPU in the window / backlog; the receiver
  must have got each of the phase's ids exactly once.
* Contenders alternate (order reversed in even rounds) over ``--rounds``; figures are medians. The last line is
  one JSON object with the Ripple/peer ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import nats
import nats.js.errors
import yaml
from aiohttp import web
from common import (
    HOST,
    CpuWindow,
    client_entry,
    emit_json,
    is_client_mode,
    json_data,
    load_average,
    machine,
    median,
    nats_server,
    num,
    ratio,
    run_client,
    table,
)

from dispatch import (
    BROKER,
    NAMESPACE,
    Child,
    broker_doc,
    publish_backlog,
    trigger_doc,
    until_signal,
)
from ingress import http_client
from ripple._aio import free_port
from ripple.api.models import API_VERSION
from ripple.store import EventStore, subjects

HERE = Path(__file__).resolve().parent
RECEIVER_MODE = "receiver"
POLL = 0.02
READY_TIMEOUT = 60.0
INGEST_KINDS = ("ripple", "peer")
DELIVER_KINDS = ("ripple", "peer-stock", "peer-tuned")
RIPPLE_TYPE = "com.example.bench.peers"
TRIGGER = "peers-ripple"
PEER_SOURCE = "https://bench.example/peers"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="measured ingest seconds per run (5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured ingest seconds before (1)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (3)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="client connections on ingest; concurrent deliveries on delivery (16)")
    parser.add_argument("--backlog", type=int, default=5000, help="events drained per delivery phase (5000)")
    parser.add_argument("--data-bytes", type=int, default=200, help="JSON data per event (200)")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="max seconds per drain (120)")
    args = parser.parse_args(argv)
    if min(args.rounds, args.concurrency, args.backlog) < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("counts at least 1, --duration positive, --warmup not negative")
    return args


def build_peer() -> str:
    done = subprocess.run(["bash", str(HERE / "peers" / "build.sh")], check=True, capture_output=True, text=True,
                          timeout=900)
    return done.stdout.strip().splitlines()[-1]


# --- the receiver process -------------------------------------------------------------------------------------


async def receiver_main(config: dict[str, Any]) -> None:
    seen: Counter[str] = Counter()

    async def post(request: web.Request) -> web.Response:
        await request.read()
        seen[request.headers.get("ce-id", "")] += 1
        return web.Response(status=202)

    async def ids(request: web.Request) -> web.Response:
        prefix = request.query.get("prefix", "")
        counts = [n for k, n in seen.items() if k.startswith(prefix)] if prefix else []
        return web.json_response({"total": sum(seen.values()), "distinct": len(counts), "posts": sum(counts),
                                  "max": max(counts, default=0)})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_get("/-/ids", ids)
    app.router.add_post("/{tail:.*}", post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, config["port"]).start()
    try:
        await until_signal(3600.0)
    finally:
        await runner.cleanup()


async def receiver_ids(url: str, prefix: str = "") -> dict[str, int]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/-/ids", params={"prefix": prefix}) as r:
        return dict(await r.json())


async def wait_http(child: Child, url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    async with aiohttp.ClientSession() as session:
        while True:
            child.check_alive()
            try:
                async with session.get(url) as response:
                    await response.read()
                    return  # any answer: it listens
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} not answering on {url}:\n{child.log_tail()}")
            await asyncio.sleep(0.05)


# --- JetStream helpers ----------------------------------------------------------------------------------------


async def outstanding(js: Any, stream: str, consumer: str) -> int:
    info = await js.consumer_info(stream, consumer)
    return info.num_pending + info.num_ack_pending


async def wait_ready(js: Any, child: Child, stream: str, consumer: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        child.check_alive()
        try:
            if (await js.consumer_info(stream, consumer)).num_waiting:
                return
        except nats.js.errors.NotFoundError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} not fetching after {READY_TIMEOUT:g}s:\n{child.log_tail()}")
        await asyncio.sleep(0.05)


async def stream_messages(js: Any, stream: str) -> int:
    return (await js.stream_info(stream)).state.messages


async def publish_peer_backlog(js: Any, subject: str, count: int, prefix: str, data_bytes: int) -> None:
    """What ``benthos-peer ingest`` stores: the body as it came, ce-* and Content-Type as NATS headers."""
    data = json_data(data_bytes)
    for start in range(0, count, 1000):
        futures = []
        for i in range(start, min(count, start + 1000)):
            event_id = f"{prefix}-{i}"
            headers = {"ce-specversion": "1.0", "ce-id": event_id, "ce-source": PEER_SOURCE,
                       "ce-type": RIPPLE_TYPE, "Content-Type": "application/json",
                       "Nats-Msg-Id": PEER_SOURCE + event_id}
            futures.append(await js.publish_async(subject, data, headers=headers))
        await asyncio.gather(*futures)


# --- the run --------------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, peer: str) -> None:
        self.args, self.tmp, self.peer = args, tmp, peer
        self.ingest: list[dict[str, Any]] = []
        self.deliver: list[dict[str, Any]] = []
        self.children: list[Child] = []

    def child(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv, self.tmp / f"{name}.log")
        self.children.append(child)
        return child

    async def run(self) -> None:
        async with nats_server(self.tmp / "nats") as server:
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            nats_pid = server.process.pid if server.process else None
            try:
                for round_no in range(1, self.args.rounds + 1):
                    order = INGEST_KINDS if round_no % 2 else INGEST_KINDS[::-1]
                    for kind in order:
                        await self.ingest_run(kind, round_no, server.url, js, nats_pid)
                await self.deliveries(server.url, js, nats_pid)
            finally:
                for child in self.children:
                    await child.stop()
                await nc.close()

    async def ingest_run(self, kind: str, round_no: int, nats_url: str, js: Any, nats_pid: int | None) -> None:
        args = self.args
        port = free_port(HOST)
        if kind == "ripple":
            broker = f"ingest-r{round_no}"
            manifest = self.tmp / f"{broker}.yaml"
            manifest.write_text(yaml.safe_dump({"apiVersion": API_VERSION, "kind": "Broker",
                                                "metadata": {"name": broker, "namespace": NAMESPACE}, "spec": {}}))
            argv = [sys.executable, "-m", "ripple", "ingress", str(manifest), "--nats", nats_url,
                    "--host", HOST, "--port", str(port)]
            stream, url = subjects.stream_name(NAMESPACE, broker), f"http://{HOST}:{port}/{NAMESPACE}/{broker}"
        else:
            stream = f"PEER_INGEST_R{round_no}"
            argv = [self.peer, "ingest", "-nats-url", nats_url, "-stream", stream,
                    "-subject", f"peer.ingest.r{round_no}", "-listen", f"{HOST}:{port}",
                    "-concurrency", str(max(64, args.concurrency))]
            url = f"http://{HOST}:{port}/{NAMESPACE}/peer"
        child = self.child(f"ingest-{kind}-r{round_no}", argv)
        await child.start()
        try:
            await wait_http(child, f"http://{HOST}:{port}/")
            config = {"kind": f"ingest-{kind}", "url": url, "concurrency": args.concurrency, "batch": 1,
                      "prefix": f"r{round_no}-{kind}", "data_bytes": args.data_bytes, "warmup": args.warmup,
                      "duration": args.duration}
            cpu = CpuWindow({"server": child.pid, "nats": nats_pid})
            result = await run_client(__file__, config, cpu.mark)
            stored = await stream_messages(js, stream)
        finally:
            await child.stop()
        server_s = cpu.process("server")
        run = {"kind": kind, "round": round_no, "rps": result["events"] / result["seconds"],
               "cpu_us": server_s / result["events"] * 1e6 if server_s is not None and result["events"] else None,
               "nats_us": (cpu.process("nats") or 0) / max(1, result["events"]) * 1e6,
               "accepted": result["accepted_total"], "stored": stored, "failed": result["failed_requests"],
               "samples": result["error_samples"], "others": cpu.others(result["cpu_s"])}
        self.ingest.append(run)
        print(f"round {round_no} ingest  {kind:<10} {run['rps']:>9,.0f} accepted/s  {run['cpu_us'] or 0:>6.0f} us "
              f"CPU/event  accepted {run['accepted']:,} stored {stored:,} failed {run['failed']}", flush=True)

    async def deliveries(self, nats_url: str, js: Any, nats_pid: int | None) -> None:
        args = self.args
        rport = free_port(HOST)
        receiver = self.child("receiver", [sys.executable, __file__, RECEIVER_MODE, json.dumps({"port": rport})])
        await receiver.start()
        receiver_url = f"http://{HOST}:{rport}"
        await wait_http(receiver, f"{receiver_url}/-/ids")
        targets: dict[str, tuple[Child, str, str, str]] = {}  # kind -> child, stream, consumer, subject
        manifest = self.tmp / "dispatch.yaml"
        manifest.write_text(yaml.safe_dump_all([broker_doc(), trigger_doc(
            TRIGGER, RIPPLE_TYPE, f"{receiver_url}/ripple", args.concurrency, "binary")], sort_keys=False))
        child = self.child("deliver-ripple", [sys.executable, "-m", "ripple", "dispatcher", str(manifest),
                                              "--nats", nats_url])
        targets["ripple"] = (child, subjects.stream_name(NAMESPACE, BROKER), subjects.consumer_name(TRIGGER),
                             subjects.event_subject(NAMESPACE, BROKER, RIPPLE_TYPE))
        for kind in DELIVER_KINDS[1:]:
            transport = kind.removeprefix("peer-")
            stream, subject = f"PEER_{transport.upper()}", f"peer.{transport}.events"
            child = self.child(f"deliver-{kind}", [
                self.peer, "deliver", "-nats-url", nats_url, "-stream", stream, "-subject", subject,
                "-durable", kind, "-transport", transport, "-concurrency", str(args.concurrency),
                "-receiver-url", f"{receiver_url}/{kind}"])
            targets[kind] = (child, stream, kind, subject)
        for child, stream, consumer, _ in targets.values():
            await child.start()
            await wait_ready(js, child, stream, consumer)
        store = await EventStore.connect(nats_url, name="bench-peers-publisher")
        try:
            for round_no in range(1, args.rounds + 1):
                for kind in DELIVER_KINDS if round_no % 2 else DELIVER_KINDS[::-1]:
                    await self.drain(kind, round_no, targets[kind], js, store, receiver, receiver_url, nats_pid)
        finally:
            await store.close()

    async def drain(self, kind: str, round_no: int, target: tuple[Child, str, str, str], js: Any, store: Any,
                    receiver: Child, receiver_url: str, nats_pid: int | None) -> None:
        args = self.args
        child, stream, consumer, subject = target
        prefix = f"r{round_no}-{kind}-"
        await wait_ready(js, child, stream, consumer)
        await asyncio.sleep(0.1)
        child.signal(signal.SIGSTOP)
        try:
            if kind == "ripple":
                await publish_backlog(store, RIPPLE_TYPE, args.backlog, prefix.rstrip("-"), args.data_bytes)
            else:
                await publish_peer_backlog(js, subject, args.backlog, prefix.rstrip("-"), args.data_bytes)
            deadline = time.monotonic() + 30
            while (got := await outstanding(js, stream, consumer)) != args.backlog:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{consumer} holds {got}, expected {args.backlog}")
                await asyncio.sleep(POLL)
            await asyncio.sleep(0.2)
            cpu = CpuWindow({"process": child.pid, "receiver": receiver.pid, "nats": nats_pid})
            await cpu.mark("@@bench measure-start")
        except BaseException:
            child.signal(signal.SIGCONT)
            raise
        t0 = time.perf_counter()
        child.signal(signal.SIGCONT)
        deadline = time.monotonic() + args.drain_timeout
        while await outstanding(js, stream, consumer):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name}: no drain in {args.drain_timeout:g}s:\n{child.log_tail()}")
            child.check_alive()
            await asyncio.sleep(POLL)
        seconds = time.perf_counter() - t0
        await cpu.mark("@@bench measure-end")
        ids = await receiver_ids(receiver_url, prefix)
        await js.purge_stream(stream)
        proc = cpu.process("process")
        run = {"kind": kind, "round": round_no, "dps": args.backlog / seconds,
               "cpu_us": proc / args.backlog * 1e6 if proc is not None else None,
               "recv_us": (cpu.process("receiver") or 0) / args.backlog * 1e6,
               "nats_us": (cpu.process("nats") or 0) / args.backlog * 1e6,
               "others": cpu.others(0.0), "ids": ids,
               "ok": ids["distinct"] == args.backlog and ids["posts"] == args.backlog}
        self.deliver.append(run)
        print(f"round {round_no} deliver {kind:<10} {run['dps']:>9,.0f} deliveries/s  {run['cpu_us'] or 0:>6.0f} us "
              f"CPU/delivery  received {ids['distinct']:,} distinct / {ids['posts']:,} posts"
              f"{'' if run['ok'] else '  MISMATCH'}", flush=True)


# --- output ---------------------------------------------------------------------------------------------------


def med(runs: list[dict[str, Any]], kind: str, key: str) -> float | None:
    values = [r[key] for r in runs if r["kind"] == kind and r[key] is not None]
    return median(values) if values else None


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def summarize(bench: Bench, wall: float) -> tuple[str, dict[str, Any], bool]:
    args = bench.args
    rows = []
    for kind in INGEST_KINDS:
        runs = [r for r in bench.ingest if r["kind"] == kind]
        rows.append([f"ingest {kind}", fmt(med(bench.ingest, kind, "rps")),
                     " / ".join(f"{r['rps']:,.0f}" for r in runs), fmt(med(bench.ingest, kind, "cpu_us"), 1),
                     fmt(med(bench.ingest, kind, "nats_us"), 1), fmt(med(bench.ingest, kind, "others"), 2),
                     "ok" if all(r["accepted"] == r["stored"] and not r["failed"] for r in runs) else "MISMATCH"])
    for kind in DELIVER_KINDS:
        runs = [r for r in bench.deliver if r["kind"] == kind]
        rows.append([f"deliver {kind}", fmt(med(bench.deliver, kind, "dps")),
                     " / ".join(f"{r['dps']:,.0f}" for r in runs), fmt(med(bench.deliver, kind, "cpu_us"), 1),
                     fmt(med(bench.deliver, kind, "nats_us"), 1), fmt(med(bench.deliver, kind, "others"), 2),
                     "ok" if all(r["ok"] for r in runs) else "MISMATCH"])
    text = table(["phase", "per s", "per round", "proc us/ev", "nats us/ev", "others", "check"], rows)
    text += ("\n\nper s: ingest = 202s per second in the measured window; deliver = backlog / drain time. "
             "proc us/ev: CPU (utime+stime) of the ingress / dispatcher / peer process per event.\ncheck: ingest, "
             "stream holds exactly the accepted total and no request failed; deliver, every id received once.")

    def m(phases: list[dict[str, Any]], kind: str, key: str) -> float:
        return med(phases, kind, key) or 0.0

    ingest_ok = all(r["accepted"] == r["stored"] and not r["failed"] for r in bench.ingest)
    deliver_ok = all(r["ok"] for r in bench.deliver)
    summary: dict[str, Any] = {
        "bench": "peers",
        **machine(),
        "rounds": args.rounds, "duration_s": args.duration, "concurrency": args.concurrency,
        "backlog": args.backlog, "data_bytes": args.data_bytes,
        "ingest_rps": {k: num(med(bench.ingest, k, "rps"), 0) for k in INGEST_KINDS},
        "ingest_cpu_us_per_event": {k: num(med(bench.ingest, k, "cpu_us"), 1) for k in INGEST_KINDS},
        "deliveries_per_s": {k: num(med(bench.deliver, k, "dps"), 0) for k in DELIVER_KINDS},
        "cpu_us_per_delivery": {k: num(med(bench.deliver, k, "cpu_us"), 1) for k in DELIVER_KINDS},
        "ingest_stored_matches_accepted": ingest_ok,
        "ingest_failed_requests": sum(r["failed"] for r in bench.ingest),
        "ingest_error_samples": [s for r in bench.ingest for s in r["samples"]][:5],
        "delivered_each_once": deliver_ok,
        "load_average_end": load_average(),
        "wall_s": round(wall, 1),
        "ingest_rps_ratio": ratio(m(bench.ingest, "ripple", "rps"), m(bench.ingest, "peer", "rps")),
        "deliveries_ratio_vs_stock": ratio(m(bench.deliver, "ripple", "dps"), m(bench.deliver, "peer-stock", "dps")),
        "deliveries_ratio_vs_tuned": ratio(m(bench.deliver, "ripple", "dps"), m(bench.deliver, "peer-tuned", "dps")),
        "cpu_per_event_ratio_ingest": ratio(m(bench.ingest, "ripple", "cpu_us"), m(bench.ingest, "peer", "cpu_us")),
        "cpu_per_delivery_ratio_vs_tuned": ratio(m(bench.deliver, "ripple", "cpu_us"),
                                                 m(bench.deliver, "peer-tuned", "cpu_us")),
    }
    return text, summary, ingest_ok and deliver_ok


def main() -> int:
    if is_client_mode():
        client_entry(http_client)
        return 0
    if len(sys.argv) > 2 and sys.argv[1] == RECEIVER_MODE:
        asyncio.run(receiver_main(json.loads(sys.argv[2])))
        return 0
    args = parse_args()
    started = time.perf_counter()
    peer = build_peer()
    print(f"Ripple vs benthos-peer ({peer}): {args.rounds} rounds; ingest {args.warmup:g}s + {args.duration:g}s, "
          f"{args.concurrency} connections; delivery backlog {args.backlog:,}, concurrency {args.concurrency}; "
          f"load average {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ripple-bench-peers-") as tmp:
        bench = Bench(args, Path(tmp), peer)
        asyncio.run(bench.run())
    text, summary, ok = summarize(bench, time.perf_counter() - started)
    print()
    print(text)
    print()
    if not ok:
        print("BENCHMARK FAILED: a count did not match", file=sys.stderr)
    emit_json(summary)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
