"""Dispatcher throughput in deliveries/s and CPU per delivery, side by side with a minimal delivery loop.

Run with ``python bench/dispatch.py`` (``--help`` for the sizes; the defaults, 5,000 deliveries per phase, take
about 3 minutes on a 2-core machine, a little more when it is shared). Everything listens on 127.0.0.1.

What runs where, each in its own process so that its CPU time can be read from ``/proc/<pid>/stat``:

* this process: a real ``nats-server -js`` (child process, store in a temp dir), the broker's streams created by
  ``EventStore.ensure_broker``, and the publisher of each phase's backlog;
* the receiver: this script in ``receiver`` mode, a no-op aiohttp app that reads each request's body, counts it
  and answers 202 at once (``GET /-/count`` gives the count);
* for each configuration (number of triggers x delivery format), one real ``ripple dispatcher MANIFEST --nats URL``
  process, the manifest (written into the temp dir) holding the Broker and the configuration's Triggers, whose
  ``subscriber.uri`` is the receiver and whose ``delivery`` sets ``concurrency`` and ``format``;
* for each configuration, one baseline process (this script in ``baseline`` mode): a minimal loop that binds to
  durable pull consumers built by the same ``trigger_consumer_config`` as a trigger's (one per trigger, same
  filter subject, ack wait and max ack pending), fetches as many messages as it has free slots (``concurrency``
  per consumer, as the dispatcher does), decodes each stored event (``json.loads``, base64 of the data), POSTs it
  with one shared ``aiohttp.ClientSession`` (binary: ``ce-`` headers and the data as the body; structured: the
  event as JSON with its data inline), reads the answer and acks: no retries, no in-progress acks, no dead
  letters, no filter, no logging. It runs on the same event loop as ``ripple dispatcher`` (uvloop where installed,
  or what ``RIPPLE_EVENT_LOOP`` says), so that the ratio is what the dispatcher adds, not what the loop saves.

The triggers of a configuration all filter on one event type of their own (an exact ``type``, so JetStream
selects the events for each trigger's consumer): with T triggers every event is delivered T times. So that every
phase makes about the same number of deliveries, a phase with T triggers has a backlog of ``--events / T``
events (``--events / T * T`` deliveries). The processes are started once and kept across rounds (a
configuration's own event type keeps the other processes idle: ~1 pull request per consumer and second).

One phase (a configuration on one of its two processes):

1. stop the process (``SIGSTOP``) once it is idle and its consumers have pull requests waiting;
2. publish the backlog into the stream (pipelined ``EventStore.publish_many``, in chunks of 1,000), events stored
   as the ingress stores them (arrival stamp, dedup id), ~``--data-bytes`` of JSON data each;
3. wait until the consumers hold the backlog (``num_pending + num_ack_pending`` = backlog, for each), read the CPU
   time (utime + stime) of the process, the receiver and nats-server, and the receiver's count;
4. ``SIGCONT`` and start the clock; poll the consumers (every 20 ms) until ``num_pending + num_ack_pending`` is 0
   for all of them; stop the clock and read the CPU times again;
5. check the receiver got exactly backlog x T requests more, then purge the stream.

deliveries/s = deliveries / drain time; CPU us/delivery = CPU time of a process in the window / deliveries.
The ripple and baseline phases of each configuration alternate (ripple first in odd rounds, baseline first in
even ones) over ``--rounds``; figures are medians. The ripple dispatcher logs as it does by default (retries and
dead letters, none here; ``--log-deliveries`` would add a line per success) to a file. "others" is the cores used
meanwhile by everything else on the machine (from ``/proc/stat``): on a shared machine, a phase with "others" well
above 0 competed for the CPU.

``--profile`` adds one cProfile'd drain (1 trigger, the first ``--format``) by the ``Dispatcher`` class in a process
of its own (this script in ``client`` mode), and prints where it spends its time per delivery (``--profile-out``
keeps the raw pstats file); it is not part of the figures. The last line of the output is one JSON object with
every figure and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import json
import os
import pstats
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
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
    HOST,
    MEASURE_END,
    MEASURE_START,
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

from ripple._aio import free_port, loop_factory
from ripple.api.models import API_VERSION, BrokerSpec, Trigger
from ripple.events.extensions import stamp_arrival
from ripple.events.model import CloudEvent
from ripple.store import EventStore, subjects
from ripple.store.jetstream import MSG_ID_HEADER, dedup_id

NAMESPACE = "bench"
BROKER = "dispatch"
SOURCE = "https://bench.example/dispatch"
TYPE_PREFIX = "com.example.bench.dispatch"
TIME = "2024-06-13T12:00:00Z"
KINDS = ("ripple", "baseline")
FORMATS = ("binary", "json")
PUBLISH_CHUNK = 1000
POLL = 0.02
"""Seconds between two looks at the consumers while a backlog drains."""
CHILD_LIFETIME = 3600.0
"""The receiver and the baselines stop by themselves after this long, whatever happens to this process."""
READY_TIMEOUT = 60.0
RECEIVER_MODE = "receiver"
BASELINE_MODE = "baseline"
SAMPLE_ERRORS = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000,
                        help="deliveries per phase: the backlog is events / triggers events (5000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all phases; medians are reported (3)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="each trigger's delivery.concurrency, and the baseline's per consumer (16)")
    parser.add_argument("--triggers", default="1,10", help="comma-separated trigger counts (1,10)")
    parser.add_argument("--format", default="binary,json",
                        help="comma-separated delivery formats: binary, json (structured) (binary,json)")
    parser.add_argument("--data-bytes", type=int, default=200, help="size of each event's JSON data (200)")
    parser.add_argument("--drain-timeout", type=float, default=120.0,
                        help="seconds a backlog may take to drain before the run fails (120)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one drain by a Dispatcher object run in-process by a profiling child, "
                             "1 trigger (not in the figures)")
    parser.add_argument("--profile-top", type=int, default=30, help="functions shown by --profile (30)")
    parser.add_argument("--profile-out", type=Path, help="with --profile: also write the raw pstats file here "
                                                          "(for pstats, snakeviz...)")
    args = parser.parse_args(argv)
    try:
        args.trigger_counts = sorted({int(t) for t in args.triggers.split(",") if t.strip()})
    except ValueError:
        parser.error("--triggers takes comma-separated integers")
    args.formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if not args.trigger_counts or min(args.trigger_counts) < 1:
        parser.error("--triggers: counts must be at least 1")
    if not args.formats or set(args.formats) - set(FORMATS):
        parser.error(f"--format: one or more of {', '.join(FORMATS)}")
    if args.events < max(args.trigger_counts) or args.concurrency < 1 or args.rounds < 0 or args.data_bytes < 0:
        parser.error("--events must be at least the largest trigger count, --concurrency at least 1, "
                     "--rounds and --data-bytes not negative")
    if args.rounds == 0 and not args.profile:
        parser.error("--rounds 0 only with --profile")
    return args


# --- configurations, triggers, manifests ----------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    triggers: int
    format: str

    @property
    def key(self) -> str:
        return f"{self.triggers}x-{self.format}"

    @property
    def label(self) -> str:
        return f"{self.triggers} trigger{'s' if self.triggers > 1 else ''}, {self.format}"

    def event_type(self, kind: str) -> str:
        """Each process of each configuration has a type of its own, so that the others stay idle."""
        return f"{TYPE_PREFIX}.{kind}.{self.key}"

    def backlog(self, events: int) -> int:
        return events // self.triggers

    def trigger_names(self, kind: str) -> list[str]:
        prefix = "base-" if kind == "baseline" else ""
        return [f"{prefix}{self.key}-{i}" for i in range(self.triggers)]


def trigger_doc(name: str, event_type: str, url: str, concurrency: int, fmt: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Trigger",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "broker": BROKER,
            "filter": {"attributes": {"type": event_type}},
            "subscriber": {"uri": url},
            "delivery": {"concurrency": concurrency, "format": fmt},
        },
    }


def broker_doc() -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "Broker", "metadata": {"name": BROKER, "namespace": NAMESPACE},
            "spec": {}}


def consumer_names(config: Config, kind: str) -> list[str]:
    return [subjects.consumer_name(name) for name in config.trigger_names(kind)]


STREAM = subjects.stream_name(NAMESPACE, BROKER)


# --- the backlog ----------------------------------------------------------------------------------------------


async def publish_backlog(store: EventStore, event_type: str, count: int, prefix: str, data_bytes: int) -> None:
    """Store ``count`` events of ``event_type`` as the ingress would (arrival stamp, dedup id), pipelined."""
    placeholder = "@@ID@@"
    attributes = {"specversion": "1.0", "id": placeholder, "source": SOURCE, "type": event_type, "time": TIME,
                  "datacontenttype": "application/json"}
    stored = stamp_arrival(CloudEvent.create(attributes, json_data(data_bytes))).to_json_bytes()
    head, tail = stored.split(placeholder.encode())
    subject = subjects.event_subject(NAMESPACE, BROKER, event_type)
    for start in range(0, count, PUBLISH_CHUNK):
        messages = []
        for i in range(start, min(count, start + PUBLISH_CHUNK)):
            event_id = f"{prefix}-{i}"
            msg_id = dedup_id(CloudEvent({"source": SOURCE, "id": event_id}))
            messages.append((subject, head + event_id.encode() + tail, {MSG_ID_HEADER: msg_id}))
        await store.publish_many(messages)


async def outstanding(store: EventStore, consumers: Sequence[str], *, stop_above: int | None = None) -> int:
    """``num_pending + num_ack_pending`` summed over the consumers; with ``stop_above``, stop asking as soon as
    the sum is over it (to poll for a drain, one consumer info per poll is enough until the first is drained)."""
    total = 0
    for consumer in consumers:
        info = await store.js.consumer_info(STREAM, consumer)
        total += info.num_pending + info.num_ack_pending
        if stop_above is not None and total > stop_above:
            break
    return total


async def wait_outstanding(store: EventStore, consumers: Sequence[str], expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (got := await outstanding(store, consumers)) != expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"consumers {list(consumers)} hold {got} messages, expected {expected}")
        await asyncio.sleep(POLL)


# --- child processes ------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when this process dies (Linux), so that no child outlives a crash."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    """A long-lived child process (receiver, dispatcher or baseline), its output in a log file."""

    name: str
    argv: list[str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        log = await asyncio.to_thread(self.log_path.open, "wb")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_die_with_parent
            )
        finally:
            await asyncio.to_thread(log.close)

    def check_alive(self) -> None:
        if self.process is None or self.process.returncode is not None:
            raise RuntimeError(f"{self.name} exited ({self.process and self.process.returncode}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        self.check_alive()
        os.kill(self.pid, sig)

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def wait_ready(store: EventStore, child: Child, consumers: Sequence[str], stream: str = STREAM) -> None:
    """Until every consumer of ``stream`` exists with a pull request of the child's waiting (its fetch loop runs)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        child.check_alive()
        waiting = []
        for consumer in consumers:
            try:
                waiting.append((await store.js.consumer_info(stream, consumer)).num_waiting)
            except nats.js.errors.NotFoundError:
                waiting.append(0)
        if all(waiting):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} not fetching after {READY_TIMEOUT:g}s:\n{child.log_tail()}")
        await asyncio.sleep(0.05)


async def wait_http(child: Child, url: str) -> None:
    """Until ``GET url`` answers 200; fail with the child's log if it exits or does not answer in time."""
    deadline = time.monotonic() + READY_TIMEOUT
    async with aiohttp.ClientSession() as session:
        while True:
            child.check_alive()
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} not answering on {url}:\n{child.log_tail()}")
            await asyncio.sleep(0.05)


async def wait_receiver(child: Child, url: str) -> None:
    await wait_http(child, f"{url}/-/count")


# --- the receiver process -------------------------------------------------------------------------------------


async def receiver_main(config: dict[str, Any]) -> None:
    count = 0

    async def post(request: web.Request) -> web.Response:
        nonlocal count
        await request.read()
        count += 1
        return web.Response(status=202)

    async def get_count(request: web.Request) -> web.Response:
        return web.json_response({"count": count})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_get("/-/count", get_count)
    app.router.add_post("/{tail:.*}", post)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=CHILD_LIFETIME)
    await runner.setup()
    await web.TCPSite(runner, HOST, config["port"]).start()
    try:
        await until_signal(config.get("lifetime", CHILD_LIFETIME))
    finally:
        await runner.cleanup()


async def until_signal(lifetime: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), lifetime)


# --- the baseline process -------------------------------------------------------------------------------------


async def baseline_main(config: dict[str, Any]) -> None:
    """The minimal loop: fetch as many as there are free slots, POST each, read the answer, ack."""
    url, concurrency, structured = config["url"], config["concurrency"], config["format"] == "json"
    stats: dict[str, Any] = {"posted": 0, "errors": 0, "samples": []}
    nc = await nats.connect(config["nats_url"], name="bench-baseline")
    js = nc.jetstream()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    tasks: set[asyncio.Task[None]] = set()

    async def deliver(msg: Any, slots: asyncio.Semaphore) -> None:
        try:
            doc = json.loads(msg.data)
            data = base64.b64decode(doc.pop("data_base64"))
            if structured:
                doc["data"] = json.loads(data)
                headers = {"Content-Type": "application/cloudevents+json"}
                body = json.dumps(doc, separators=(",", ":")).encode()
            else:
                headers = {"ce-" + k: str(v) for k, v in doc.items() if k != "datacontenttype"}
                headers["Content-Type"] = doc["datacontenttype"]
                body = data
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status >= 300:
                    raise RuntimeError(f"HTTP {response.status}")
            stats["posted"] += 1
        except Exception as exc:
            stats["errors"] += 1
            if len(stats["samples"]) < SAMPLE_ERRORS:
                stats["samples"].append(f"{type(exc).__name__}: {exc}")
                print(f"baseline error: {type(exc).__name__}: {exc}", flush=True)
        try:
            with contextlib.suppress(nats.errors.Error):
                await msg.ack()
        finally:
            slots.release()

    async def consume(durable: str) -> None:
        subscription = await js.pull_subscribe_bind(durable, config["stream"])
        slots = asyncio.Semaphore(concurrency)
        while True:
            await slots.acquire()
            room = 1
            while room < concurrency and not slots.locked():
                await slots.acquire()
                room += 1
            try:
                messages = await subscription.fetch(batch=room, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                messages = []
            for _ in range(room - len(messages)):
                slots.release()
            for msg in messages:
                task = asyncio.create_task(deliver(msg, slots))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

    consumers = [asyncio.create_task(consume(durable)) for durable in config["consumers"]]
    try:
        await until_signal(config.get("lifetime", CHILD_LIFETIME))
    finally:
        for task in consumers:
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        await session.close()
        await nc.close()
        print("@@bench baseline " + json.dumps(stats), flush=True)


# --- the profile (client mode) ---------------------------------------------------------------------------------


async def profile_client(config: dict[str, Any]) -> dict[str, Any]:
    """One backlog drained by ``Dispatcher`` (1 trigger) under cProfile, here, with ``ripple dispatcher``'s logging."""
    import logging

    from ripple.cli.logs import configure_logging
    from ripple.dispatch import Dispatcher
    from ripple.dispatch.resolve import static_resolver

    configure_logging()
    log_file = await asyncio.to_thread(Path(config["log_path"]).open, "w")  # closed at the end
    for handler in logging.getLogger("ripple.delivery").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log_file)
    backlog, event_type = config["events"], config["event_type"]
    trigger = Trigger.model_validate(
        trigger_doc("profile-0", event_type, config["url"], config["concurrency"], config["format"]))
    store = await EventStore.connect(config["nats_url"], name="ripple-dispatcher")
    consumer = await store.ensure_trigger_consumer(trigger)
    await publish_backlog(store, event_type, backlog, "profile", config["data_bytes"])
    await wait_outstanding(store, [consumer], backlog, 30)
    dispatcher = Dispatcher(store, static_resolver({}))
    profiler = cProfile.Profile()
    deadline = time.monotonic() + config["drain_timeout"]
    cpu0, t0 = time.process_time(), time.perf_counter()
    profiler.enable()
    try:
        await dispatcher.apply([trigger])
        key = f"{NAMESPACE}/{trigger.name}"
        while dispatcher.stats()[key]["delivered"] < backlog or await outstanding(store, [consumer]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the profiled drain did not end: {dispatcher.stats()}")
            await asyncio.sleep(POLL)
    finally:
        profiler.disable()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if config.get("dump_path"):
        profiler.dump_stats(config["dump_path"])
    stats = dispatcher.stats()[key]
    await dispatcher.close()
    await store.close()
    log_file.close()
    return {"deliveries": backlog, "seconds": seconds, "cpu_s": cpu, "stats": stats,
            "text": profile_report(profiler, backlog, config["top"])}


def _where(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name
    for marker_dir in ("site-packages/", "/operator/", "/lib/python"):
        if marker_dir in filename:
            filename = filename.split(marker_dir, 1)[1]
            if marker_dir == "/lib/python":
                filename = filename.split("/", 1)[-1]
            break
    return f"{filename}:{line}({name})"


def profile_report(profiler: cProfile.Profile, deliveries: int, top: int) -> str:
    raw = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = [(ct, tt, nc, func) for func, (_cc, nc, tt, ct, _callers) in raw.items()]
    per = 1e6 / deliveries

    def render(sorted_rows: list[tuple[float, float, int, Any]]) -> str:
        return table(["calls/dlv", "own us/dlv", "cum us/dlv", "function"],
                     [[f"{nc / deliveries:.2f}", f"{tt * per:.1f}", f"{ct * per:.1f}", _where(func)]
                      for ct, tt, nc, func in sorted_rows], first_left=False)

    by_cum = sorted(rows, key=lambda r: r[0], reverse=True)[:top]
    by_own = sorted(rows, key=lambda r: r[1], reverse=True)[:min(top, 20)]
    total_own = sum(r[1] for r in rows)
    areas: dict[str, float] = {}
    for _ct, tt, _nc, func in rows:
        areas[_area(func)] = areas.get(_area(func), 0.0) + tt
    by_area = sorted(areas.items(), key=lambda item: item[1], reverse=True)[:12]
    area_text = table(["own us/dlv", "share", "where"],
                      [[f"{tt * per:.1f}", f"{tt / total_own:.0%}", name] for name, tt in by_area], first_left=False)
    return (f"top {top} by cumulative time (per delivery; a coroutine counts one call per resumption, and its time "
            f"while it runs, not while it waits):\n{render(by_cum)}\n\ntop {min(top, 20)} by own time (all "
            f"functions: {total_own * per:.0f} us/delivery):\n{render(by_own)}\n\nown time by package or module:\n"
            f"{area_text}")


def _area(func: tuple[str, int, str]) -> str:
    """What a function belongs to: ``ripple.dispatch``, ``aiohttp``, ``asyncio``, ``<built-ins>``..."""
    filename = func[0]
    if filename == "~":
        return "<built-ins (C)>"
    path = Path(filename)
    parts = path.parts
    if "ripple" in parts and "site-packages" not in parts:
        index = len(parts) - 1 - parts[::-1].index("ripple")
        return ".".join(parts[index:index + 2]).removesuffix(".py")
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    for i, part in enumerate(parts):
        if part.startswith("python3"):
            return parts[i + 1].removesuffix(".py") if i + 1 < len(parts) else filename
    return path.name


async def client(config: dict[str, Any]) -> dict[str, Any]:
    return await profile_client(config)


# --- the run --------------------------------------------------------------------------------------------------


@dataclass
class PhaseRun:
    config: Config
    kind: str
    round: int
    deliveries: int
    seconds: float
    cpu: CpuWindow
    received: int

    @property
    def dps(self) -> float:
        return self.deliveries / self.seconds

    def us(self, name: str) -> float | None:
        value = self.cpu.process(name)
        return None if value is None else value / self.deliveries * 1e6

    @property
    def others(self) -> float | None:
        return self.cpu.others(0.0)

    @property
    def ok(self) -> bool:
        return self.received == self.deliveries


@dataclass
class Bench:
    args: argparse.Namespace
    tmp: Path
    runs: list[PhaseRun] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    baseline_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    profile: dict[str, Any] | None = None
    load_start: str = field(default_factory=load_average)

    @property
    def configs(self) -> list[Config]:
        return [Config(t, f) for t in self.args.trigger_counts for f in self.args.formats]

    async def run(self) -> None:
        args = self.args
        async with nats_server(self.tmp / "nats") as server:
            store = await EventStore.connect(server.url, name="bench-publisher")
            try:
                await store.ensure_broker(NAMESPACE, BROKER, BrokerSpec())
                port = free_port(HOST)
                receiver_url = f"http://{HOST}:{port}"
                receiver = self.child("receiver", [sys.executable, __file__, RECEIVER_MODE, json.dumps({"port": port})])
                await receiver.start()
                await wait_receiver(receiver, receiver_url)
                nats_pid = server.process.pid if server.process else None
                processes: dict[tuple[Config, str], Child] = {}
                if args.rounds:
                    for config in self.configs:
                        for kind in KINDS:
                            processes[(config, kind)] = await self.start(config, kind, store, server.url,
                                                                         receiver_url)
                for round_no in range(1, args.rounds + 1):
                    for config in self.configs:
                        for kind in KINDS if round_no % 2 else KINDS[::-1]:
                            pids = {"process": processes[(config, kind)].pid, "receiver": receiver.pid,
                                    "nats": nats_pid}
                            await self.phase(config, kind, round_no, processes[(config, kind)], store, pids,
                                             receiver_url)
                for (config, kind), child in processes.items():
                    await child.stop()
                    if kind == "baseline":
                        self.baseline_stats[config.key] = baseline_report(child)
                if args.profile:
                    await self.run_profile(store, server.url, receiver_url)
            finally:
                for child in self.children:
                    await child.stop()
                await store.close()

    def child(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv, self.tmp / f"{name.replace(' ', '-')}.log")
        self.children.append(child)
        return child

    async def start(self, config: Config, kind: str, store: EventStore, nats_url: str, receiver_url: str) -> Child:
        args = self.args
        names = config.trigger_names(kind)
        if kind == "ripple":
            manifest = self.tmp / f"{config.key}.yaml"
            docs = [broker_doc()] + [trigger_doc(n, config.event_type(kind), f"{receiver_url}/{n}",
                                                 args.concurrency, config.format) for n in names]
            manifest.write_text(yaml.safe_dump_all(docs, sort_keys=False))
            argv = [sys.executable, "-m", "ripple", "dispatcher", str(manifest), "--nats", nats_url]
        else:
            for n in names:  # the same consumers as the triggers', under the baseline's names
                doc = trigger_doc(n, config.event_type(kind), f"{receiver_url}/{n}", args.concurrency,
                                  config.format)
                await store.ensure_trigger_consumer(Trigger.model_validate(doc))
            baseline_config = {"nats_url": nats_url, "stream": STREAM, "consumers": consumer_names(config, kind),
                               "url": f"{receiver_url}/{names[0]}", "concurrency": args.concurrency,
                               "format": config.format}
            argv = [sys.executable, __file__, BASELINE_MODE, json.dumps(baseline_config)]
        child = self.child(f"{kind} {config.key}", argv)
        await child.start()
        await wait_ready(store, child, consumer_names(config, kind))
        print(f"started {child.name}: pid {child.pid}, consumers {', '.join(consumer_names(config, kind))}",
              flush=True)
        return child

    async def phase(self, config: Config, kind: str, round_no: int, child: Child, store: EventStore,
                    pids: dict[str, int | None], receiver_url: str) -> None:
        args = self.args
        consumers = consumer_names(config, kind)
        backlog = config.backlog(args.events)
        deliveries = backlog * config.triggers
        phase_started = time.perf_counter()
        await wait_ready(store, child, consumers)  # idle, with its pull requests waiting
        await asyncio.sleep(0.1)
        child.signal(signal.SIGSTOP)
        try:
            await publish_backlog(store, config.event_type(kind), backlog, f"r{round_no}-{kind}-{config.key}",
                                  args.data_bytes)
            await wait_outstanding(store, consumers, deliveries, 30)
            await asyncio.sleep(0.2)  # let nats-server settle after the publishing
            count0 = await receiver_count(receiver_url)
            cpu = CpuWindow(pids)
            await cpu.mark(MEASURE_START)
        except BaseException:
            child.signal(signal.SIGCONT)
            raise
        t0 = time.perf_counter()
        child.signal(signal.SIGCONT)
        deadline = time.monotonic() + args.drain_timeout
        while await outstanding(store, consumers, stop_above=0):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name}: the backlog did not drain in {args.drain_timeout:g}s "
                                   f"({await outstanding(store, consumers)} left):\n{child.log_tail()}")
            child.check_alive()
            await asyncio.sleep(POLL)
        seconds = time.perf_counter() - t0
        await cpu.mark(MEASURE_END)
        received = await receiver_count(receiver_url) - count0
        await store.js.purge_stream(STREAM)
        run = PhaseRun(config, kind, round_no, deliveries, seconds, cpu, received)
        self.runs.append(run)
        check = "" if run.ok else f"  MISMATCH: the receiver got {received:,}"
        print(f"round {round_no} {kind:<8} {config.label:<20} {run.dps:>8,.0f} deliveries/s  ({deliveries:,} in "
              f"{seconds:.2f}s, {run.us('process') or 0:.0f} us CPU/delivery; phase "
              f"{time.perf_counter() - phase_started:.1f}s){check}", flush=True)

    async def run_profile(self, store: EventStore, nats_url: str, receiver_url: str) -> None:
        args = self.args
        config = Config(1, args.formats[0])
        profile_config = {
            "kind": "profile", "nats_url": nats_url, "url": f"{receiver_url}/profile", "events": args.events,
            "event_type": f"{TYPE_PREFIX}.profile", "concurrency": args.concurrency, "format": config.format,
            "data_bytes": args.data_bytes, "drain_timeout": args.drain_timeout, "top": args.profile_top,
            "log_path": str(self.tmp / "profile-deliveries.log"),
            "dump_path": str(args.profile_out.resolve()) if args.profile_out else None,
        }
        count0 = await receiver_count(receiver_url)
        print(f"profiling one drain of {args.events:,} events by the Dispatcher class (1 trigger, "
              f"{config.format})...", flush=True)
        self.profile = await run_client(__file__, profile_config)
        self.profile["received"] = await receiver_count(receiver_url) - count0
        await store.js.purge_stream(STREAM)


async def receiver_count(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/-/count") as response:
        return int((await response.json())["count"])


def baseline_report(child: Child) -> dict[str, Any]:
    for line in reversed(child.log_path.read_text(errors="replace").splitlines()):
        if line.startswith("@@bench baseline "):
            return dict(json.loads(line.removeprefix("@@bench baseline ")))
    return {"posted": None, "errors": None, "samples": [f"no report in {child.log_path}"]}


# --- output ---------------------------------------------------------------------------------------------------


def summarize(bench: Bench, wall: float) -> tuple[str, dict[str, Any], bool]:
    args = bench.args
    groups: dict[tuple[str, str], list[PhaseRun]] = {}
    for run in bench.runs:
        groups.setdefault((run.config.key, run.kind), []).append(run)

    def med(key: str, kind: str, value: Any) -> float | None:
        values = [v for v in (value(r) for r in groups.get((key, kind), [])) if v is not None]
        return median(values) if values else None

    def fmt(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    rows: list[list[str]] = []
    figures: dict[str, dict[str, dict[str, Any]]] = {}
    ratios_cpu: dict[str, float | None] = {}
    ratios_dps: dict[str, float | None] = {}
    for config in bench.configs:
        for kind in KINDS:
            runs = groups.get((config.key, kind))
            if not runs:
                continue
            dps = med(config.key, kind, lambda r: r.dps)
            figure: dict[str, Any] = {
                "deliveries_per_s": num(dps, 0),
                "per_round_deliveries_per_s": [round(r.dps) for r in runs],
                "cpu_us_per_delivery": num(med(config.key, kind, lambda r: r.us("process")), 1),
                "receiver_cpu_us_per_request": num(med(config.key, kind, lambda r: r.us("receiver")), 1),
                "nats_cpu_us_per_delivery": num(med(config.key, kind, lambda r: r.us("nats")), 1),
                "others_cores": num(med(config.key, kind, lambda r: r.others)),
                "deliveries": runs[0].deliveries,
                "received_ok": all(r.ok for r in runs),
            }
            figures.setdefault(config.key, {})[kind] = figure
            rows.append([
                f"{kind} {config.label}",
                fmt(dps, 0),
                " / ".join(f"{r.dps:,.0f}" for r in runs),
                fmt(figure["cpu_us_per_delivery"]),
                fmt(figure["receiver_cpu_us_per_request"]),
                fmt(figure["nats_cpu_us_per_delivery"]),
                fmt(figure["others_cores"], 2),
                "ok" if figure["received_ok"] else "MISMATCH",
            ])
        both = figures.get(config.key, {})
        if "ripple" in both and "baseline" in both:
            ratios_cpu[config.key] = ratio(both["ripple"]["cpu_us_per_delivery"] or 0,
                                           both["baseline"]["cpu_us_per_delivery"] or 0)
            ratios_dps[config.key] = ratio(both["ripple"]["deliveries_per_s"] or 0,
                                           both["baseline"]["deliveries_per_s"] or 0)
    text = table(["phase", "deliveries/s", "per round", "proc us/dlv", "recv us/req", "nats us/dlv", "others",
                  "received"], rows)
    text += (
        "\n\ndeliveries/s: median over the rounds of deliveries / time from SIGCONT (backlog in the consumers) until "
        "every consumer has num_pending + num_ack_pending == 0.\nproc us/dlv: CPU time (utime + stime) of the "
        "ripple dispatcher or baseline process per delivery over that window; recv: the no-op receiver's per "
        "request; nats: nats-server's per delivery.\nothers: cores used by other processes on the machine meanwhile; "
        "received: the receiver counted exactly backlog x triggers requests in each round."
    )
    if ratios_cpu:
        text += "\n\nripple vs baseline: " + "; ".join(
            f"{key}: CPU/delivery x{ratios_cpu[key]}, deliveries/s x{ratios_dps[key]}" for key in ratios_cpu)

    baseline_errors = sum(s.get("errors") or 0 for s in bench.baseline_stats.values())
    delivered_ok = all(r.ok for r in bench.runs)
    headline = "1x-binary" if "1x-binary" in ratios_cpu else next(iter(ratios_cpu), None)
    headline_ratio = ratios_cpu.get(headline) if headline else None
    summary: dict[str, Any] = {
        "bench": "dispatch",
        **machine(),
        "events": args.events,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "triggers": args.trigger_counts,
        "formats": args.formats,
        "data_bytes": args.data_bytes,
        "trigger_filter": "every trigger of a configuration pins the same exact type: T triggers, T deliveries "
                          "per event; backlog = events / T",
        "ratio_cpu_ripple_vs_baseline": headline_ratio,
        "ratio_cpu_ripple_vs_baseline_config": headline,
        "ratio_cpu_goal": 1.5,
        "ratio_cpu_within_goal": None if headline_ratio is None else headline_ratio <= 1.5,
        "ratio_deliveries_per_s_ripple_vs_baseline": ratios_dps.get(headline) if headline else None,
        "deliveries_per_s": {f"{kind}-{key}": f[kind]["deliveries_per_s"] for key, f in figures.items() for kind in f},
        "ratios_cpu_ripple_vs_baseline": ratios_cpu,
        "ratios_deliveries_per_s_ripple_vs_baseline": ratios_dps,
        "figures": figures,
        "delivered_ok": delivered_ok,
        "expected_deliveries": sum(r.deliveries for r in bench.runs),
        "received_deliveries": sum(r.received for r in bench.runs),
        "received": [{"phase": f"{r.kind}-{r.config.key}", "round": r.round, "expected": r.deliveries,
                      "received": r.received} for r in bench.runs if not r.ok],
        "baseline_errors": baseline_errors,
        "baseline_error_samples": [s for st in bench.baseline_stats.values() for s in st.get("samples", [])][:5],
        "load_average": {"start": bench.load_start, "end": load_average()},
        "wall_s": round(wall, 1),
    }
    ok = delivered_ok and baseline_errors == 0
    if bench.profile is not None:
        p = bench.profile
        summary["profile"] = {"deliveries": p["deliveries"], "seconds": num(p["seconds"], 2),
                              "deliveries_per_s": num(p["deliveries"] / p["seconds"], 0),
                              "cpu_us_per_delivery": num(p["cpu_s"] / p["deliveries"] * 1e6, 1),
                              "received_ok": p["received"] == p["deliveries"], "stats": p["stats"]}
        ok = ok and p["received"] == p["deliveries"]
    return text, summary, ok


def main() -> int:
    if is_client_mode():  # the profiled Dispatcher: on the loop a ripple process runs on
        client_entry(client, loop_factory())
        return 0
    if len(sys.argv) > 2 and sys.argv[1] in (RECEIVER_MODE, BASELINE_MODE):
        # The receiver stays on the standard loop; the baseline runs on the dispatcher's (RIPPLE_EVENT_LOOP), so
        # that the ratio is what the dispatcher adds, not what the loop saves.
        if sys.argv[1] == RECEIVER_MODE:
            asyncio.run(receiver_main(json.loads(sys.argv[2])))
        else:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                runner.run(baseline_main(json.loads(sys.argv[2])))
        return 0
    args = parse_args()
    started = time.perf_counter()
    configs = ", ".join(f"{t}x{f}" for t in args.trigger_counts for f in args.formats)
    print(f"Ripple dispatcher throughput: {args.rounds} rounds x ({configs}) x (ripple, baseline); "
          f"{args.events:,} deliveries per phase, concurrency {args.concurrency}, data {args.data_bytes} B; "
          f"load average {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ripple-bench-dispatch-") as tmp:
        bench = Bench(args, Path(tmp))
        asyncio.run(bench.run())
    text, summary, ok = summarize(bench, time.perf_counter() - started)
    if bench.profile is not None:
        p = bench.profile
        print()
        print(f"cProfile of one drain by the Dispatcher class: {p['deliveries']:,} deliveries in {p['seconds']:.2f}s "
              f"({p['deliveries'] / p['seconds']:,.0f}/s under the profiler, {p['cpu_s'] / p['deliveries'] * 1e6:.0f} "
              f"us CPU/delivery), received {p['received']:,}; {p['stats']}")
        print(p["text"])
    if bench.runs:
        print()
        print(text)
    print()
    if not ok:
        print(f"BENCHMARK FAILED: delivered_ok={summary['delivered_ok']}, baseline errors "
              f"{summary['baseline_errors']} {summary['baseline_error_samples']}, {summary['received']}",
              file=sys.stderr)
    emit_json(summary)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
