"""End-to-end latency from the ingress to a function, at a fixed rate, against a direct POST to the same function.

Run with ``python bench/latency.py`` (``--help`` for rate and durations; the defaults, 200 events/s for 30 s on
each path in 3 alternating segments, take about 75 s). Everything listens on 127.0.0.1.

What runs where:

* this process: a real ``nats-server -js`` (child process, store in a temp dir), and the ingress app and a
  ``Dispatcher`` sharing one ``EventStore`` connection, as ``ripple dev`` runs them. The dispatcher has one
  Trigger (attribute filter on the benchmark's type, default delivery settings) whose subscriber is
* a real function runtime process: ``python -m ripple function serve --handler benchfn:handle`` with a tiny
  handler module written into the temp dir. The handler is a plain ``def`` (so the runtime calls it in a worker
  thread, as it does for most user code): it reads ``time.time()`` first thing, keeps ``(id, benchsent,
  received, ripplearrivaltime)`` in memory and returns ``None`` (so the runtime answers 202 and the dispatcher
  acks). A ``bench.dump`` event POSTed straight to the function at the end returns every record as its reply.
  Measuring inside the function, rather than at a recording aiohttp subscriber, keeps the runtime (CloudEvent
  decoding, the handler call) in the path, which is what a user's function sees;
* one client process per segment (this script in ``client`` mode): an open-loop sender that starts one POST every
  1/rate seconds on its own schedule, whether or not earlier ones were answered (so a slow answer cannot lower
  the offered rate), each a binary-mode event with ~200-byte JSON data and the send time in the ``benchsent``
  extension (``time.time()`` as a string, read just before the request is written). It is a separate process so
  that its work does not queue behind the ingress and dispatcher on one event loop.

The baseline is the same POSTs at the same rate sent straight to the function (no broker). The two paths run
alternately in ``--segments`` segments (direct, broker, direct, broker, ...), so that a background load on a
shared machine hits both alike; each segment starts with ``--warmup`` seconds that are sent but not measured.
Latency is ``received - benchsent`` (both wall clock, same machine). Every event that got a 202 must reach the
function: the script waits for the dispatcher to settle, and exits 1 if any event was lost or any request failed.

Extra rows: the client's own POST-to-202 time on each path (for the ingress: the event is stored in JetStream)
and, for the broker path, ``ripplearrivaltime`` (stamped by the ingress before storing, cut to the millisecond, so
this reads up to 1 ms high) to the handler: JetStream's and the dispatcher's share. Below the table: the cores
each process used during the measured windows, and those used by other processes on the machine (a busy
neighbour shows there, and in the tail latencies). ``--filter source`` makes the Trigger filter on something
other than the type, so that the dispatcher, not JetStream, selects the events.
The last line of the output is one JSON object with every figure and the ratios to the direct baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from common import (
    HOST,
    MEASURE_END,
    MEASURE_START,
    CpuWindow,
    client_entry,
    emit_json,
    free_port,
    is_client_mode,
    json_data,
    load_average,
    machine,
    marker,
    nats_server,
    num,
    percentile,
    ratio,
    run_client,
    serve,
    table,
)

from ripple.api.models import API_VERSION, BrokerSpec, Destination, Trigger
from ripple.dispatch import Dispatcher
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.store import EventStore, subjects

NAMESPACE = "bench"
BROKER = "latency"
TRIGGER = "to-function"
SOURCE = "https://bench.example/latency"
TYPE = "com.example.bench.latency"
DUMP_TYPE = "bench.dump"
HANDLER_MODULE = "benchfn"
HANDLER = f'''"""Benchmark handler: note when each event reaches the function; hand the notes back on a dump event."""

import time

RECORDS = []


def handle(event):
    received = time.time()
    if event["type"] == "{DUMP_TYPE}":
        return {{"type": "bench.records", "source": "/bench/latency", "data": RECORDS}}
    RECORDS.append([event["id"], float(event["benchsent"]), received, event.get("ripplearrivaltime")])
    return None
'''


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="events per second on each path (200)")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds on each path (30)")
    parser.add_argument("--segments", type=int, default=3,
                        help="split each path's measured time into this many segments, run alternately direct and "
                             "broker so that both see the same background load (3)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each window (1)")
    parser.add_argument("--data-bytes", type=int, default=200, help="size of each event's JSON data (200)")
    parser.add_argument("--delivery-concurrency", type=int, default=None,
                        help="the Trigger's delivery.concurrency (default: the Trigger default)")
    parser.add_argument("--filter", choices=["type", "source"], default="type",
                        help="the Trigger's attribute filter: exact type (JetStream selects the events for the "
                             "trigger's consumer; the default) or exact source (not a type: the dispatcher must "
                             "test every event)")
    parser.add_argument("--settle-timeout", type=float, default=60.0,
                        help="seconds to wait for the dispatcher to deliver everything accepted (60)")
    args = parser.parse_args(argv)
    if args.segments < 1:
        parser.error("--segments must be at least 1")
    if args.rate <= 0 or args.warmup < 0 or round(args.duration / args.segments * args.rate) < 1:
        parser.error("--rate and --duration must be positive (at least one measured event), --warmup not negative")
    return args


# --- the client process ---------------------------------------------------------------------------------------


async def client(config: dict[str, Any]) -> dict[str, Any]:
    url, rate, prefix = config["url"], config["rate"], config["prefix"]
    warm, measured = round(config["warmup"] * rate), round(config["duration"] * rate)
    data = json_data(config["data_bytes"])
    base = {"ce-specversion": "1.0", "ce-source": SOURCE, "ce-type": TYPE, "Content-Type": "application/json"}
    accepted: list[str] = []
    acks: list[float] = []
    lags: list[float] = []
    failures: list[str] = []
    failed = 0

    async def send(session: aiohttp.ClientSession, event_id: str, measure: bool) -> None:
        nonlocal failed
        started = time.perf_counter()
        headers = {**base, "ce-id": event_id, "ce-benchsent": repr(time.time())}
        try:
            async with session.post(url, data=data, headers=headers) as response:
                answer = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, answer = 0, f"{type(exc).__name__}: {exc}".encode()
        elapsed = time.perf_counter() - started
        if status == 202:
            accepted.append(event_id)
            if measure:
                acks.append(elapsed)
        else:
            failed += 1
            if len(failures) < 5:
                failures.append(f"{event_id}: HTTP {status}: {answer[:200].decode(errors='replace')}")

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        tasks: list[asyncio.Task[None]] = []
        cpu0 = 0.0
        start = time.perf_counter() + 0.05
        for i in range(warm + measured):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if i == warm:
                marker(MEASURE_START)
                cpu0 = time.process_time()
            lags.append(time.perf_counter() - due)
            measure = i >= warm
            event_id = f"{prefix}-{'m' if measure else 'w'}-{i}"
            tasks.append(asyncio.create_task(send(session, event_id, measure)))
        sent_for = time.perf_counter() - start
        await asyncio.gather(*tasks)
        marker(MEASURE_END)
        cpu = time.process_time() - cpu0
    lags.sort()
    return {
        "sent": warm + measured,
        "measured_sent": measured,
        "seconds": sent_for,
        "accepted": accepted,
        "ack_s": sorted(acks),
        "failed": failed,
        "failures": failures,
        "lag_p99_ms": percentile(lags, 99) * 1000,
        "lag_max_ms": lags[-1] * 1000 if lags else 0.0,
        "cpu_s": cpu,
    }


# --- the run ----------------------------------------------------------------------------------------------------


def bench_trigger(subscriber: str, concurrency: int | None, on: str) -> Trigger:
    spec: dict[str, Any] = {
        "broker": BROKER,
        "filter": {"attributes": {"type": TYPE} if on == "type" else {"source": SOURCE}},
        "subscriber": {"uri": subscriber},
    }
    if concurrency is not None:
        spec["delivery"] = {"concurrency": concurrency}
    return Trigger.model_validate(
        {"apiVersion": API_VERSION, "kind": "Trigger", "metadata": {"name": TRIGGER, "namespace": NAMESPACE},
         "spec": spec}
    )


async def resolve(destination: Destination, namespace: str) -> str:
    assert destination.uri is not None
    return destination.uri


@dataclass
class Function:
    """The function runtime process (``python -m ripple function serve``), started and stopped by the benchmark."""

    code_dir: Path
    port: int = field(default_factory=lambda: free_port(HOST))
    process: asyncio.subprocess.Process | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    async def start(self, timeout: float = 20.0) -> None:
        await asyncio.to_thread((self.code_dir / f"{HANDLER_MODULE}.py").write_text, HANDLER)
        self.log_path = self.code_dir / "function.log"
        log = await asyncio.to_thread(self.log_path.open, "wb")
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ripple", "function", "serve", "--handler", f"{HANDLER_MODULE}:handle",
                "--path", str(self.code_dir), "--host", HOST, "--port", str(self.port),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )
        finally:
            await asyncio.to_thread(log.close)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    break
                try:
                    async with session.get(f"{self.url}health") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        log_text = await asyncio.to_thread(self.log_path.read_text, errors="replace")
        raise RuntimeError(f"the function runtime did not become healthy on {self.url}:\n{log_text}")

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def dump(self) -> list[list[Any]]:
        headers = {"ce-specversion": "1.0", "ce-id": "dump", "ce-source": SOURCE, "ce-type": DUMP_TYPE}
        async with aiohttp.ClientSession() as session, session.post(self.url, headers=headers) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"dump answered {response.status}: {body[:300]!r}")
        return json.loads(body)


async def settle(dispatcher: Dispatcher, store: EventStore, expected: int, timeout: float) -> dict[str, Any]:
    """Wait until the trigger delivered ``expected`` events and nothing is in flight or pending in its consumer."""
    deadline = time.monotonic() + timeout
    key = f"{NAMESPACE}/{TRIGGER}"
    stream, consumer = subjects.stream_name(NAMESPACE, BROKER), subjects.consumer_name(TRIGGER)
    while True:
        stats = dispatcher.stats()[key]
        info = await store.js.consumer_info(stream, consumer)
        done = stats["delivered"] >= expected and stats["in_flight"] == 0
        if done and info.num_pending == 0 and info.num_ack_pending == 0:
            break
        if time.monotonic() > deadline:
            print(f"WARNING: the dispatcher did not settle within {timeout:g}s: {stats}, pending "
                  f"{info.num_pending}, ack pending {info.num_ack_pending}", flush=True)
            break
        await asyncio.sleep(0.05)
    return {**stats, "num_pending": info.num_pending, "num_ack_pending": info.num_ack_pending}


class LatencyBench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.results: dict[str, list[dict[str, Any]]] = {"direct": [], "broker": []}
        self.cpu: dict[str, list[CpuWindow]] = {"direct": [], "broker": []}
        self.records: list[list[Any]] = []
        self.dispatch: dict[str, Any] = {}
        self.load_start = load_average()

    async def run(self) -> None:
        args = self.args
        async with nats_server(self.tmp / "nats") as server:
            store = await EventStore.connect(server.url, name="ripple-dev")
            function = Function(self.tmp)
            dispatcher = Dispatcher(store, resolve)
            try:
                await store.ensure_broker(NAMESPACE, BROKER, BrokerSpec())
                await function.start()
                await dispatcher.apply([bench_trigger(function.url, args.delivery_concurrency, args.filter)])
                settings = IngressSettings(brokers=lambda ns, b: (ns, b) == (NAMESPACE, BROKER))
                async with serve(create_ingress_app(store, settings)) as ingress_url:
                    pids = {"nats": server.process.pid if server.process else None,
                            "function": function.process.pid if function.process else None}
                    for segment in range(1, args.segments + 1):
                        await self.path("direct", function.url, pids, segment)
                        await self.path("broker", f"{ingress_url}/{NAMESPACE}/{BROKER}", pids, segment)
                    expected = sum(len(r["accepted"]) for r in self.results["broker"])
                    self.dispatch = await settle(dispatcher, store, expected, args.settle_timeout)
                self.records = await function.dump()
            finally:
                await dispatcher.close()
                await function.stop()
                await store.close()

    async def path(self, name: str, url: str, pids: dict[str, int | None], segment: int) -> None:
        args = self.args
        duration = args.duration / args.segments
        config = {"kind": name, "url": url, "prefix": f"{name}{segment}", "rate": args.rate, "warmup": args.warmup,
                  "duration": duration, "data_bytes": args.data_bytes}
        cpu = CpuWindow(pids)
        print(f"segment {segment}/{args.segments} {name:<6}: {args.rate:g} events/s, {args.warmup:g}s warm-up + "
              f"{duration:g}s measured, to {url}", flush=True)
        result = await run_client(__file__, config, cpu.mark)
        self.results[name].append(result)
        self.cpu[name].append(cpu)


def cores(windows: list[CpuWindow], client_cpu: float) -> dict[str, float | None]:
    """Cores used by each process over a path's measured windows together, and by the rest of the machine."""
    wall = sum(w.wall for w in windows) or float("nan")
    own = sum(w.own for w in windows)
    nats = sum(w.process("nats") or 0.0 for w in windows)
    function = sum(w.process("function") or 0.0 for w in windows)
    machine_cpu = sum(w.machine or 0.0 for w in windows)
    return {
        "benchmark": num(own / wall),
        "nats": num(nats / wall),
        "function": num(function / wall),
        "client": num(client_cpu / wall),
        "others": num(max(0.0, machine_cpu - own - nats - function - client_cpu) / wall),
    }


def rfc3339_seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def distribution(seconds: list[float]) -> dict[str, float | None]:
    values = sorted(s * 1000 for s in seconds)
    return {
        "p50_ms": num(percentile(values, 50), 3),
        "p90_ms": num(percentile(values, 90), 3),
        "p99_ms": num(percentile(values, 99), 3),
        "max_ms": num(values[-1], 3) if values else None,
        "mean_ms": num(sum(values) / len(values), 3) if values else None,
    }


def summarize(bench: LatencyBench, wall: float) -> tuple[str, dict[str, Any], bool]:
    args = bench.args
    first: dict[str, list[Any]] = {}
    duplicates = 0
    for record in bench.records:
        if record[0] in first:
            duplicates += 1
        else:
            first[record[0]] = record
    paths: dict[str, dict[str, Any]] = {}
    for name, results in bench.results.items():
        accepted = [i for r in results for i in r["accepted"]]
        acks = [a for r in results for a in r["ack_s"]]
        measured = [i for i in accepted if "-m-" in i]
        got = [first[i] for i in measured if i in first]
        latency = [r[2] - r[1] for r in got]
        sent = sum(r["sent"] for r in results)
        paths[name] = {
            "sent": sent,
            "accepted": len(accepted),
            "failed": sum(r["failed"] for r in results),
            "failures": [f for r in results for f in r["failures"]][:5],
            "lost": sum(1 for i in accepted if i not in first),
            "count": len(got),
            "acks": len(acks),
            "latency": distribution(latency),
            "ack": distribution(acks),
            "dispatch": distribution([r[2] - rfc3339_seconds(r[3]) for r in got if r[3]]) if name == "broker" else {},
            "lag_p99_ms": num(max(r["lag_p99_ms"] for r in results), 3),
            "lag_max_ms": num(max(r["lag_max_ms"] for r in results), 3),
            "achieved_rate": num(sent / sum(r["seconds"] for r in results), 1),
            "cores": cores(bench.cpu[name], sum(r["cpu_s"] for r in results)),
        }
    direct, broker = paths["direct"], paths["broker"]

    def row(label: str, count: Any, lost: Any, d: dict[str, float | None]) -> list[str]:
        def ms(key: str) -> str:
            value = d.get(key)
            return "-" if value is None else f"{value:.2f}"

        return [label, str(count), str(lost), ms("p50_ms"), ms("p90_ms"), ms("p99_ms"), ms("max_ms"), ms("mean_ms")]

    rows = [
        row("direct POST -> function handler (baseline)", direct["count"], direct["lost"], direct["latency"]),
        row("ingress -> JetStream -> dispatcher -> handler", broker["count"], broker["lost"], broker["latency"]),
        row("  ingress POST -> 202 (stored), client side", broker["acks"], "", broker["ack"]),
        row("  arrival stamp -> handler (stamp cut to ms)", broker["count"], "", broker["dispatch"]),
        row("  direct POST -> 202, client side", direct["acks"], "", direct["ack"]),
    ]
    text = table(["path", "count", "lost", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms"], rows)
    lines = [text, ""]
    for name, p in paths.items():
        c = p["cores"]
        lines.append(
            f"{name}: sent {p['sent']:,} at {p['achieved_rate']:g}/s (send lag: worst segment p99 "
            f"{p['lag_p99_ms']:.2f} ms, max {p['lag_max_ms']:.2f} ms), accepted {p['accepted']:,}, failed "
            f"{p['failed']}, lost {p['lost']}\n  cores busy in the measured windows: ingress+dispatcher process "
            f"{c['benchmark'] or 0:.2f}, nats-server {c['nats'] or 0:.2f}, function {c['function'] or 0:.2f}, "
            f"client {c['client'] or 0:.2f}, other processes {c['others'] or 0:.2f}"
        )
    lines.append(f"dispatcher: {bench.dispatch}; duplicate deliveries seen by the function: {duplicates}")

    failed = direct["failed"] + broker["failed"]
    lost = direct["lost"] + broker["lost"]
    summary: dict[str, Any] = {
        "bench": "latency",
        **machine(),
        "rate_eps": args.rate,
        "duration_s": args.duration,
        "segments": args.segments,
        "warmup_s": args.warmup,
        "data_bytes": args.data_bytes,
        "trigger_filter": args.filter,
        "count": broker["count"],
        "lost": broker["lost"],
        **broker["latency"],
        "direct_count": direct["count"],
        "direct_lost": direct["lost"],
        **{f"direct_{k}": v for k, v in direct["latency"].items()},
        **{f"ratio_{k.removesuffix('_ms')}_vs_direct": ratio(broker["latency"][k] or 0, direct["latency"][k] or 0)
           for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms")},
        **{f"ingress_ack_{k}": v for k, v in broker["ack"].items()},
        **{f"dispatch_{k}": v for k, v in broker["dispatch"].items()},
        **{f"direct_ack_{k}": v for k, v in direct["ack"].items()},
        "duplicates": duplicates,
        "failed_requests": failed,
        "failures": direct["failures"] + broker["failures"],
        "achieved_rate_eps": {"direct": direct["achieved_rate"], "broker": broker["achieved_rate"]},
        "send_lag_max_ms": {"direct": direct["lag_max_ms"], "broker": broker["lag_max_ms"]},
        "cores": {"direct": direct["cores"], "broker": broker["cores"]},
        "dispatcher": bench.dispatch,
        "load_average": {"start": bench.load_start, "end": load_average()},
        "wall_s": round(wall, 1),
    }
    return "\n".join(lines), summary, failed == 0 and lost == 0 and broker["count"] > 0


def main() -> int:
    if is_client_mode():
        client_entry(client)
        return 0
    args = parse_args()
    started = time.perf_counter()
    print(f"Ripple end-to-end latency: {args.rate:g} events/s, {args.warmup:g}s warm-up + {args.duration:g}s "
          f"measured per path, data {args.data_bytes} B", flush=True)
    with tempfile.TemporaryDirectory(prefix="ripple-bench-latency-") as tmp:
        bench = LatencyBench(args, Path(tmp))
        asyncio.run(bench.run())
    text, summary, ok = summarize(bench, time.perf_counter() - started)
    print()
    print(text)
    print()
    if not ok:
        print(f"BENCHMARK FAILED: {summary['failed_requests']} failed requests, lost {summary['lost']} via the "
              f"broker and {summary['direct_lost']} direct; {summary['failures']}", file=sys.stderr)
    emit_json(summary)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
