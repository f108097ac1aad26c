"""Ingress throughput in events/s, side by side with an HTTP ceiling and a JetStream ceiling.

Run with ``python bench/ingress.py`` (``--help`` for the sizes and durations; the defaults take about 75 s on
a 2-core machine). Everything listens on 127.0.0.1.

What runs where:

* a real ``nats-server -js`` (child process, store in a temp dir);
* ``ripple ingress`` as deployed, in its own process (so on uvloop where installed: ``RIPPLE_EVENT_LOOP``);
* the no-op server in its own process: plain aiohttp on the standard asyncio loop, reading the body and
  answering 202 to the same POSTs;
* one client process per phase: this script in ``client`` mode, generating the load with aiohttp (or nats-py for
  the raw JetStream baselines) and reporting what it counted.

Why a separate client process: on 2 cores, an aiohttp client spends about as much CPU per request as the server
it drives. In the server's process it would share the event loop and the GIL, and the figure would be the
throughput of client and server together, with a bias that differs between the no-op server and the ingress.
In its own process the OS can give client and server a core each (nats-server takes its share from both), and
the same client drives every phase, so the ratios compare like with like. Each client process tells this
process when its measured window starts and ends (marker lines on its stdout), so that the CPU time of this
process and of the nats-server can be read for exactly that window.

Phases, run in this order in each round (the figures are medians over the rounds):

* ``noop-single``:    N connections, one binary-mode event (~200-byte JSON data) per POST, to the no-op server;
* ``ingress-single``: the same POSTs to the ingress;
* ``noop-batch``:     ``application/cloudevents-batch+json`` POSTs of B events each, to the no-op server;
* ``ingress-batch``:  the same batches to the ingress;
* ``publish-async``:  raw ``js.publish_async`` (nats-py, its default 4000 in flight, then
  ``publish_async_completed()``) of the exact bytes the ingress stores, with the same ``Nats-Msg-Id`` dedup
  header, into a twin stream: the store ceiling for one Python connection;
* ``publish-await``:  raw awaited ``js.publish`` of the same messages from N concurrent tasks: what the ingress
  itself does per event, without HTTP.

Throughput is counted at completion: the 202s (or PubAcks) that arrive inside the measured window, after a
warm-up, divided by the window. Every 202 is also counted in a total; at the end the ingress stream must hold
exactly that many events (``stream_info().state.messages``; ids are unique, so deduplication drops none). Any
non-202 answer, transport error or failed publish, or a count that does not match, makes the script exit 1.
The CPU columns give each process's CPU time per event inside the window ("busy" is the sum of all three, in
cores: 2.0 means the machine was saturated; "others" is what other processes on the machine used meanwhile, from
``/proc/stat``: on a shared machine, figures from phases with "others" well above 0 are not comparable).
``--profile`` adds one cProfile'd window of each ingress phase and prints its top functions: for that window the
ingress app runs inside this process (on this process's loop, ``--profile-loop``), since a profiler cannot be
attached to the child; those windows are not part of the figures, but their events are in the stream count.

The last line of the output is one JSON object with every figure and the ratios to the baselines.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
import nats.errors
import nats.js.errors
import yaml
from aiohttp import web
from common import (
    MEASURE_END,
    MEASURE_START,
    CpuWindow,
    client_entry,
    emit_json,
    is_client_mode,
    json_data,
    load_average,
    machine,
    marker,
    median,
    nats_server,
    num,
    ratio,
    run_client,
    serve,
    table,
)

from dispatch import Child, wait_http
from ripple._aio import free_port, loop_factory
from ripple.api.models import API_VERSION, BrokerSpec
from ripple.events.extensions import stamp_arrival
from ripple.events.http import BATCH_CONTENT_TYPE
from ripple.events.model import CloudEvent
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.store import EventStore, subjects
from ripple.store.jetstream import MSG_ID_HEADER, dedup_id

NAMESPACE = "bench"
INGRESS_BROKER = "ingress"
RAW_BROKER = "raw"
SOURCE = "https://bench.example/ingress"
TYPE = "com.example.bench.order"
TIME = "2024-06-13T12:00:00Z"
PHASES = ("noop-single", "ingress-single", "noop-batch", "ingress-batch", "publish-async", "publish-await")
SAMPLE_ERRORS = 5
NOOP_MODE = "noop-server"
HOST = "127.0.0.1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32, help="connections for single-event POSTs (32)")
    parser.add_argument("--batch-size", type=int, default=100, help="events per batch POST (100)")
    parser.add_argument("--batch-concurrency", type=int, default=8, help="connections for batch POSTs (8)")
    parser.add_argument("--publish-concurrency", type=int, default=None,
                        help="tasks for awaited js.publish (default: --concurrency)")
    parser.add_argument("--data-bytes", type=int, default=200, help="size of each event's JSON data (200)")
    parser.add_argument("--duration", type=float, default=2.5, help="measured seconds per phase and round (2.5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each window (1.0)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all phases; medians are reported (3)")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--profile", action="store_true",
                        help="also run one cProfile'd window of each ingress phase (not in the figures)")
    parser.add_argument("--profile-top", type=int, default=30, help="functions shown by --profile (30)")
    parser.add_argument("--profile-loop", choices=["uvloop", "asyncio"], default="uvloop",
                        help="event loop of this process, where --profile runs the ingress (uvloop)")
    args = parser.parse_args(argv)
    args.publish_concurrency = args.publish_concurrency or args.concurrency
    if min(args.concurrency, args.batch_size, args.batch_concurrency, args.publish_concurrency, args.rounds) < 1:
        parser.error("counts and sizes must be at least 1")
    if args.duration <= 0 or args.warmup < 0:
        parser.error("--duration must be positive and --warmup not negative")
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {sorted(unknown)}")
    return args


# --- the client process ---------------------------------------------------------------------------------------


@dataclass
class Tally:
    accepted: int = 0
    """Events acknowledged (202 or PubAck), warm-up and drain included."""
    requests: int = 0
    failed_requests: int = 0
    failed_events: int = 0
    samples: list[str] = field(default_factory=list)
    stop: bool = False

    def ok(self, events: int) -> None:
        self.accepted += events
        self.requests += 1

    def fail(self, events: int, message: str) -> None:
        self.failed_requests += 1
        self.failed_events += events
        if len(self.samples) < SAMPLE_ERRORS:
            self.samples.append(message)


async def measure(tally: Tally, warmup: float, duration: float) -> dict[str, Any]:
    """Let the load warm up, count what completes during ``duration``, then tell the workers to stop."""
    await asyncio.sleep(warmup)
    marker(MEASURE_START)
    t0, events0, requests0, cpu0 = time.perf_counter(), tally.accepted, tally.requests, time.process_time()
    await asyncio.sleep(duration)
    t1, events1, requests1, cpu1 = time.perf_counter(), tally.accepted, tally.requests, time.process_time()
    marker(MEASURE_END)
    tally.stop = True
    return {"seconds": t1 - t0, "events": events1 - events0, "requests": requests1 - requests0, "cpu_s": cpu1 - cpu0}


def report(tally: Tally, window: dict[str, Any]) -> dict[str, Any]:
    return {
        **window,
        "accepted_total": tally.accepted,
        "requests_total": tally.requests,
        "failed_requests": tally.failed_requests,
        "failed_events": tally.failed_events,
        "error_samples": tally.samples,
    }


def binary_headers() -> dict[str, str]:
    return {
        "ce-specversion": "1.0",
        "ce-source": SOURCE,
        "ce-type": TYPE,
        "ce-time": TIME,
        "Content-Type": "application/json",
    }


def batch_parts(data: bytes) -> tuple[bytes, bytes]:
    """The structured JSON of one event around its id: ``head + id + tail``."""
    head = b'{"specversion":"1.0","id":"'
    tail = (
        f'","source":"{SOURCE}","type":"{TYPE}","time":"{TIME}","datacontenttype":"application/json","data":'
    ).encode() + data + b"}"
    return head, tail


async def http_client(config: dict[str, Any]) -> dict[str, Any]:
    url, concurrency, batch, prefix = config["url"], config["concurrency"], config["batch"], config["prefix"]
    data = json_data(config["data_bytes"])
    single_headers = binary_headers()
    head, tail = batch_parts(data)
    batch_headers = {"Content-Type": BATCH_CONTENT_TYPE}
    tally = Tally()

    async def worker(session: aiohttp.ClientSession, w: int) -> None:
        seq = 0
        while not tally.stop:
            if batch == 1:
                body, headers = data, {**single_headers, "ce-id": f"{prefix}-{w}-{seq}"}
            else:
                ids = (f"{prefix}-{w}-{seq}-{i}".encode() for i in range(batch))
                body, headers = b"[" + b",".join(head + i + tail for i in ids) + b"]", batch_headers
            seq += 1
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    answer = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                tally.fail(batch, f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.01)
                continue
            if status == 202:
                tally.ok(batch)
            else:
                tally.fail(batch, f"HTTP {status}: {answer[:200].decode(errors='replace')}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        workers = [asyncio.create_task(worker(session, w)) for w in range(concurrency)]
        window = await measure(tally, config["warmup"], config["duration"])
        await asyncio.gather(*workers)
    return report(tally, window)


def stored_parts(data: bytes) -> tuple[bytes, bytes]:
    """The exact bytes the ingress stores for one of the benchmark's events, split around its id."""
    placeholder = "@@ID@@"
    attributes = {"specversion": "1.0", "id": placeholder, "source": SOURCE, "type": TYPE, "time": TIME,
                  "datacontenttype": "application/json"}
    stored = stamp_arrival(CloudEvent.create(attributes, data)).to_json_bytes()
    head, tail = stored.split(placeholder.encode())
    return head, tail


def msg_id(event_id: str) -> str:
    """The ingress's dedup key, as ``ripple.store.jetstream.dedup_id`` makes it."""
    return dedup_id(CloudEvent({"id": event_id, "source": SOURCE}))


PUBLISH_ERRORS = (nats.errors.Error, nats.js.errors.Error, TimeoutError)


async def publish_client(config: dict[str, Any]) -> dict[str, Any]:
    subject, prefix = config["subject"], config["prefix"]
    head, tail = stored_parts(json_data(config["data_bytes"]))
    tally = Tally()
    nc = await nats.connect(config["nats_url"], name="bench-publisher")
    js = nc.jetstream(timeout=30)

    def settled(future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            tally.fail(1, "publish_async future cancelled")
        elif future.exception() is not None:
            exc = future.exception()
            tally.fail(1, f"{type(exc).__name__}: {exc}")
        else:
            tally.ok(1)

    async def publish_async() -> None:
        seq = 0
        while not tally.stop:
            event_id = f"{prefix}-{seq}"
            seq += 1
            future = await js.publish_async(subject, head + event_id.encode() + tail,
                                            headers={MSG_ID_HEADER: msg_id(event_id)})
            future.add_done_callback(settled)
        await js.publish_async_completed()

    async def publish_awaited(w: int) -> None:
        seq = 0
        while not tally.stop:
            event_id = f"{prefix}-{w}-{seq}"
            seq += 1
            try:
                await js.publish(subject, head + event_id.encode() + tail, headers={MSG_ID_HEADER: msg_id(event_id)})
            except PUBLISH_ERRORS as exc:
                tally.fail(1, f"{type(exc).__name__}: {exc}")
            else:
                tally.ok(1)

    try:
        if config["kind"] == "publish-async":
            publishers = [asyncio.create_task(publish_async())]
        else:
            publishers = [asyncio.create_task(publish_awaited(w)) for w in range(config["concurrency"])]
        window = await measure(tally, config["warmup"], config["duration"])
        await asyncio.gather(*publishers)
    finally:
        await nc.close()
    return report(tally, window)


async def client(config: dict[str, Any]) -> dict[str, Any]:
    if config["kind"].startswith("publish-"):
        return await publish_client(config)
    return await http_client(config)


# --- the server side and the run ------------------------------------------------------------------------------


async def noop(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=202)


def noop_app() -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/{namespace}/{broker}", noop)
    app.router.add_get("/-/health", lambda request: web.Response(status=200))  # type: ignore[arg-type,return-value]
    return app


def noop_main(port: int) -> None:
    """The no-op server process: plain aiohttp on the standard asyncio loop, no access log."""
    web.run_app(noop_app(), host=HOST, port=port, access_log=None, print=None, handle_signals=True)


@dataclass
class PhaseRun:
    phase: str
    round: int
    result: dict[str, Any]
    cpu: CpuWindow

    @property
    def eps(self) -> float:
        return self.result["events"] / self.result["seconds"]

    @property
    def server_cpu(self) -> float:
        """CPU seconds of the server the phase drove: its process, or this one when it ran inside it."""
        server = self.cpu.process("server")
        return self.cpu.own if server is None else server

    @property
    def busy(self) -> float:
        """Cores used by the benchmark's three processes during the window."""
        return (self.server_cpu + (self.cpu.process("nats") or 0.0) + self.result["cpu_s"]) / self.result["seconds"]

    def per_event_us(self, seconds: float | None) -> float | None:
        events = self.result["events"]
        return None if seconds is None or not events else seconds / events * 1e6


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.runs: list[PhaseRun] = []
        self.ingress_accepted = 0
        self.raw_checks: list[dict[str, Any]] = []
        self.profile_texts: list[str] = []
        self.load_start = load_average()

    async def run(self) -> dict[str, Any]:
        args = self.args
        async with nats_server(self.tmp / "nats") as server:
            store = await EventStore.connect(server.url, name="bench")
            children: list[Child] = []
            try:
                for broker in (INGRESS_BROKER, RAW_BROKER):
                    await store.ensure_broker(NAMESPACE, broker, BrokerSpec())
                urls, pids = await self.start_servers(server.url, children)
                pid = server.process.pid if server.process else None
                phases = [p for p in PHASES if p in args.phases.split(",")]
                for round_no in range(1, args.rounds + 1):
                    for phase in phases:
                        await self.phase(phase, round_no, urls, server.url, pid, store, pids.get(phase.split("-")[0]))
                if args.profile:
                    settings = IngressSettings(brokers=lambda ns, b: (ns, b) == (NAMESPACE, INGRESS_BROKER))
                    async with serve(create_ingress_app(store, settings)) as in_process_url:
                        urls = {**urls, "ingress": f"{in_process_url}/{NAMESPACE}/{INGRESS_BROKER}"}
                        for phase in (p for p in phases if p.startswith("ingress-")):
                            await self.phase(phase, 0, urls, server.url, pid, store, None, profile=True)
                info = await store.js.stream_info(subjects.stream_name(NAMESPACE, INGRESS_BROKER))
            finally:
                for child in children:
                    await child.stop()
                await store.close()
        return {"stream_messages": info.state.messages, "stream_bytes": info.state.bytes}

    async def start_servers(self, nats_url: str, children: list[Child]) -> tuple[dict[str, str], dict[str, int]]:
        """``ripple ingress`` and the no-op server, each in its own process; their URLs and pids by target."""
        manifest = self.tmp / "brokers.yaml"
        manifest.write_text(yaml.safe_dump({"apiVersion": API_VERSION, "kind": "Broker",
                                            "metadata": {"name": INGRESS_BROKER, "namespace": NAMESPACE}}))
        ingress_port, noop_port = free_port(HOST), free_port(HOST)
        ingress = Child("ingress", [sys.executable, "-m", "ripple", "ingress", str(manifest), "--nats", nats_url,
                                    "--host", HOST, "--port", str(ingress_port)], self.tmp / "ingress.log")
        noop = Child("noop", [sys.executable, __file__, NOOP_MODE, str(noop_port)], self.tmp / "noop.log")
        for child in (ingress, noop):
            children.append(child)
            await child.start()
        await wait_http(ingress, f"http://{HOST}:{ingress_port}/-/health")
        await wait_http(noop, f"http://{HOST}:{noop_port}/-/health")
        urls = {"ingress": f"http://{HOST}:{ingress_port}/{NAMESPACE}/{INGRESS_BROKER}",
                "noop": f"http://{HOST}:{noop_port}/{NAMESPACE}/{INGRESS_BROKER}"}
        print(f"servers: ingress pid {ingress.pid} (ripple ingress), no-op pid {noop.pid} (aiohttp, asyncio loop)",
              flush=True)
        return urls, {"ingress": ingress.pid, "noop": noop.pid}

    async def phase(
        self,
        phase: str,
        round_no: int,
        urls: dict[str, str],
        nats_url: str,
        nats_pid: int | None,
        store: EventStore,
        server_pid: int | None,
        *,
        profile: bool = False,
    ) -> None:
        args = self.args
        target, _, mode = phase.partition("-")
        config: dict[str, Any] = {
            "kind": phase,
            "prefix": f"r{round_no}{'p' if profile else ''}-{phase}",
            "data_bytes": args.data_bytes,
            "warmup": args.warmup,
            "duration": args.duration,
        }
        if target == "publish":
            config.update(nats_url=nats_url, concurrency=args.publish_concurrency,
                          subject=subjects.event_subject(NAMESPACE, RAW_BROKER, TYPE))
        else:
            batch = mode == "batch"
            config.update(url=urls[target], batch=args.batch_size if batch else 1,
                          concurrency=args.batch_concurrency if batch else args.concurrency)
        cpu = CpuWindow({"nats": nats_pid, "server": server_pid})
        profiler = cProfile.Profile() if profile else None

        async def on_marker(text: str) -> None:
            if profiler is not None:
                (profiler.enable if text == MEASURE_START else profiler.disable)()
            await cpu.mark(text)

        raw_before = await self.raw_messages(store) if target == "publish" else 0
        result = await run_client(__file__, config, on_marker)
        if target == "ingress":
            self.ingress_accepted += result["accepted_total"]
        if target == "publish":
            stored = await self.raw_messages(store) - raw_before
            self.raw_checks.append({"phase": phase, "round": round_no, "acked": result["accepted_total"],
                                    "stored": stored})
            await store.js.purge_stream(subjects.stream_name(NAMESPACE, RAW_BROKER))
        if profiler is not None:
            self.profile_texts.append(profile_report(profiler, phase, result, args.profile_top))
            print(f"profile window ({phase}): {result['events'] / result['seconds']:,.0f} events/s under cProfile",
                  flush=True)
            return
        run = PhaseRun(phase, round_no, result, cpu)
        self.runs.append(run)
        failures = f", {result['failed_requests']} FAILED requests" if result["failed_requests"] else ""
        print(f"round {round_no} {phase:<15} {run.eps:>10,.0f} events/s  ({result['events']:,} events in "
              f"{result['seconds']:.2f}s{failures})", flush=True)

    async def raw_messages(self, store: EventStore) -> int:
        info = await store.js.stream_info(subjects.stream_name(NAMESPACE, RAW_BROKER))
        return info.state.messages


def profile_report(profiler: cProfile.Profile, phase: str, result: dict[str, Any], top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    header = f"cProfile of the server process over one {phase} window ({result['events']:,} events), " \
             f"top {top} by own time:"
    return "\n".join([header, *lines[2:]])


def summarize(bench: Bench, stream: dict[str, Any], args: argparse.Namespace, wall: float) -> tuple[str, dict]:
    by_phase: dict[str, list[PhaseRun]] = {}
    for run in bench.runs:
        by_phase.setdefault(run.phase, []).append(run)

    def med(phase: str, value: Any) -> float | None:
        runs = by_phase.get(phase)
        if not runs:
            return None
        values = [v for v in (value(r) for r in runs) if v is not None]
        return median(values) if values else None

    eps = {phase: med(phase, lambda r: r.eps) for phase in PHASES}
    rows = []
    for phase in PHASES:
        runs = by_phase.get(phase)
        if not runs:
            continue
        server = med(phase, lambda r: r.per_event_us(r.server_cpu))
        nats_us = med(phase, lambda r: r.per_event_us(r.cpu.process("nats")))
        client_us = med(phase, lambda r: r.per_event_us(r.result["cpu_s"]))
        busy = med(phase, lambda r: r.busy)
        others = med(phase, lambda r: r.cpu.others(r.result["cpu_s"]))
        unit = args.batch_size if phase.endswith("batch") else 1
        rows.append([
            phase,
            f"{eps[phase]:,.0f}",
            " / ".join(f"{r.eps:,.0f}" for r in runs),
            f"{eps[phase] / unit:,.0f}",
            f"{server:.1f}" if server is not None else "-",
            f"{nats_us:.1f}" if nats_us is not None else "-",
            f"{client_us:.1f}" if client_us is not None else "-",
            f"{busy:.2f}" if busy is not None else "-",
            f"{others:.2f}" if others is not None else "-",
        ])
    text = table(["phase", "events/s", "per round", "req/s", "server us/ev", "nats us/ev", "client us/ev", "busy",
                  "others"], rows)
    text += (
        "\n\nevents/s: median over the rounds of events acknowledged (202 or PubAck) inside the measured window; "
        "req/s: POSTs or publishes per second.\nus/ev: CPU time per event in the window of the server process (the "
        "ingress or the no-op; none in the publish phases), of nats-server and of the client process.\n"
        "busy: cores used by those three; others: cores used by other processes on the machine at the same time."
    )

    failed = sum(r.result["failed_requests"] for r in bench.runs)
    samples = [s for r in bench.runs for s in r.result["error_samples"]][:SAMPLE_ERRORS]
    raw_ok = all(c["acked"] == c["stored"] for c in bench.raw_checks)

    def get(phase: str) -> float:
        return eps.get(phase) or 0.0

    def server_us(phase: str) -> float:
        return med(phase, lambda r: r.per_event_us(r.server_cpu)) or 0.0

    summary: dict[str, Any] = {
        "bench": "ingress",
        **machine(),
        "concurrency": args.concurrency,
        "batch_size": args.batch_size,
        "batch_concurrency": args.batch_concurrency,
        "publish_concurrency": args.publish_concurrency,
        "data_bytes": args.data_bytes,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "single_eps": num(eps["ingress-single"], 0),
        "batch_eps": num(eps["ingress-batch"], 0),
        "noop_single_eps": num(eps["noop-single"], 0),
        "noop_batch_eps": num(eps["noop-batch"], 0),
        "raw_publish_async_eps": num(eps["publish-async"], 0),
        "raw_publish_await_eps": num(eps["publish-await"], 0),
        "ratio_single_vs_noop": ratio(get("ingress-single"), get("noop-single")),
        "ratio_batch_vs_noop": ratio(get("ingress-batch"), get("noop-batch")),
        "ratio_single_vs_raw_publish_async": ratio(get("ingress-single"), get("publish-async")),
        "ratio_batch_vs_raw_publish_async": ratio(get("ingress-batch"), get("publish-async")),
        "ratio_single_vs_raw_publish_await": ratio(get("ingress-single"), get("publish-await")),
        "ratio_batch_vs_raw_publish_await": ratio(get("ingress-batch"), get("publish-await")),
        "ratio_batch_vs_single": ratio(get("ingress-batch"), get("ingress-single")),
        "server_cpu_ratio_ingress_vs_noop_single": ratio(server_us("ingress-single"), server_us("noop-single")),
        "server_cpu_ratio_ingress_vs_noop_batch": ratio(server_us("ingress-batch"), server_us("noop-batch")),
        "server_one_core_eps": {
            phase: num(1e6 / us, 0)
            for phase in by_phase
            if not phase.startswith("publish-") and (us := server_us(phase))
        },
        "cpu_us_per_event": {
            phase: {
                "server": num(med(phase, lambda r: r.per_event_us(r.server_cpu)), 1),
                "nats": num(med(phase, lambda r: r.per_event_us(r.cpu.process("nats"))), 1),
                "client": num(med(phase, lambda r: r.per_event_us(r.result["cpu_s"])), 1),
            }
            for phase in by_phase
        },
        "per_round_eps": {phase: [round(r.eps) for r in runs] for phase, runs in by_phase.items()},
        "busy_cores": {phase: num(med(phase, lambda r: r.busy)) for phase in by_phase},
        "other_processes_cores": {phase: [num(r.cpu.others(r.result["cpu_s"])) for r in runs]
                                  for phase, runs in by_phase.items()},
        "load_average": {"start": bench.load_start, "end": load_average()},
        "ingress_accepted_events": bench.ingress_accepted,
        "stream_messages": stream["stream_messages"],
        "stream_matches_accepted": stream["stream_messages"] == bench.ingress_accepted,
        "raw_publish_checks_ok": raw_ok,
        "failed_requests": failed,
        "error_samples": samples,
        "wall_s": round(wall, 1),
    }
    single_us, noop_us = server_us("ingress-single"), server_us("noop-single")
    if single_us and noop_us:
        text += (
            f"\nserver CPU per single-event POST: ingress {single_us:.0f} us, no-op {noop_us:.0f} us "
            f"({single_us / noop_us:.1f}x); at one full core that is ~{1e6 / single_us:,.0f} vs "
            f"~{1e6 / noop_us:,.0f} requests/s."
        )
    return text, summary


def main() -> int:
    if is_client_mode():
        client_entry(client)
        return 0
    if sys.argv[1:2] == [NOOP_MODE]:
        noop_main(int(sys.argv[2]))
        return 0
    args = parse_args()
    started = time.perf_counter()
    print(f"Ripple ingress throughput: {args.rounds} rounds x {len(args.phases.split(','))} phases, "
          f"{args.warmup:g}s warm-up + {args.duration:g}s measured each; single: {args.concurrency} connections; "
          f"batch: {args.batch_size} events x {args.batch_concurrency} connections; data {args.data_bytes} B",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="ripple-bench-ingress-") as tmp:
        bench = Bench(args, Path(tmp))
        factory = loop_factory() if args.profile_loop == "uvloop" else None
        with asyncio.Runner(loop_factory=factory) as runner:
            stream = runner.run(bench.run())
    text, summary = summarize(bench, stream, args, time.perf_counter() - started)
    for text_block in bench.profile_texts:
        print()
        print(text_block)
    print()
    print(text)
    print()
    print(f"ingress accepted {bench.ingress_accepted:,} events (every 202 counted, warm-up and drain included); "
          f"the stream holds {stream['stream_messages']:,} messages: "
          f"{'MATCH' if summary['stream_matches_accepted'] else 'MISMATCH'}")
    for check in bench.raw_checks:
        if check["acked"] != check["stored"]:
            print(f"raw {check['phase']} round {check['round']}: {check['acked']:,} acked but "
                  f"{check['stored']:,} stored: MISMATCH")
    ok = summary["failed_requests"] == 0 and summary["stream_matches_accepted"] and summary["raw_publish_checks_ok"]
    if summary["failed_requests"]:
        print(f"FAILED: {summary['failed_requests']} requests/publishes failed, e.g. {summary['error_samples']}")
    if not ok:
        print("BENCHMARK FAILED", file=sys.stderr)
    emit_json(summary)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
