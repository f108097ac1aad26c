"""End-to-end latency through Ripple deployed as separate processes, over a sweep of open-loop rates.

Run with ``python bench/e2e.py`` (``--help`` for the sizes; the defaults, 4 rates x 10 s on two paths plus
warm-ups and drains, take about 2 minutes). Everything listens on 127.0.0.1.

What runs where, each in its own process (CPU time from ``/proc/<pid>/stat``):

* a real ``nats-server -js`` (child of this process, store in a temp dir);
* ``ripple ingress MANIFEST --nats URL`` and ``ripple dispatcher MANIFEST --nats URL``, the manifest (written into
  the temp dir) holding one Broker and one Trigger (exact ``type`` filter, default delivery) whose
  ``subscriber.uri`` is the receiver;
* the receiver: this script in ``receiver`` mode, an aiohttp app that notes ``time.time_ns()`` when each request
  arrives, with the event's ``ce-id`` and its ``ce-sentat`` extension, and answers 202 at once;
* the load generator: this script in ``client`` mode (one process per phase), which sends single-event binary
  POSTs (``ce-`` headers, ~``--data-bytes`` of JSON data) on an open loop: event *i* is due at
  ``start + i / rate`` whatever the answers to the earlier ones, over one ``aiohttp`` session whose connector
  keeps at most ``--connections`` keep-alive connections (an event due while all are busy waits for one).
  ``sentat`` is the event's *due* time (wall clock, ns), so a generator or pool that falls behind shows up in the
  latency instead of hiding it (no coordinated omission).

For each rate, two phases: ``direct`` (the generator POSTs straight to the receiver: the HTTP floor) then
``ripple`` (the generator POSTs to the ingress; the dispatcher delivers to the receiver). A phase is
``--warmup`` seconds of unmeasured events, then ``--duration`` measured seconds; after the generator is done,
wait until the receiver has every event the phase got a 202 for (at most ``--drain`` seconds), then take the
receiver's records. latency = receiver's arrival time - ``sentat``, for the measured events; lost = events
answered 202 but not at the receiver after the drain wait (warm-up events included); achieved = measured events
sent / seconds the generator took to send them. CPU = cores used by the ingress and dispatcher processes over the
generator's measured window; "others" = cores used meanwhile by everything else on the machine (``/proc/stat``):
well above 0, the phase competed for the CPU.

The generator and the receiver run on the event loop Ripple's processes use (uvloop where installed): they are the
harness, the same on both paths, and on the standard loop they alone put p99 at 2,000 ev/s near 50 ms.

The sustainable rate is the highest swept rate at which Ripple's p99 < 50 ms, nothing is lost and every POST got a
202. The last line of the output is one JSON object with every figure and the Ripple/direct p99 ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
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
    marker,
    nats_server,
    num,
    percentile,
    ratio,
    run_client,
    table,
)

from dispatch import Child
from ripple._aio import free_port, loop_factory
from ripple.api.models import API_VERSION

NAMESPACE = "bench"
BROKER = "e2e"
TRIGGER = "to-receiver"
SOURCE = "https://bench.example/e2e"
TYPE = "com.example.bench.e2e"
RECEIVER_MODE = "receiver"
CHILD_LIFETIME = 3 * 3600.0
"""The receiver stops by itself after this long, whatever happens to this process."""
READY_TIMEOUT = 60.0
P99_LIMIT_MS = 50.0
PATHS = ("direct", "ripple")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="500,1000,2000,4000", help="comma-separated events/s (500,1000,2000,4000)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per rate and path (10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each window (1)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections of the generator (8)")
    parser.add_argument("--data-bytes", type=int, default=200, help="size of each event's JSON data (200)")
    parser.add_argument("--drain", type=float, default=15.0,
                        help="seconds to wait after a phase for the receiver to get every accepted event (15)")
    args = parser.parse_args(argv)
    try:
        args.rate_list = sorted({float(r) for r in args.rates.split(",") if r.strip()})
    except ValueError:
        parser.error("--rates takes comma-separated numbers")
    if not args.rate_list or min(args.rate_list) <= 0:
        parser.error("--rates: positive numbers")
    if args.duration <= 0 or args.warmup < 0 or args.connections < 1 or args.drain < 0:
        parser.error("--duration and --connections positive, --warmup and --drain not negative")
    return args


# --- the receiver process ---------------------------------------------------------------------------------------


def receiver_main() -> None:
    """``e2e.py receiver PORT``: note (id, sentat, arrival ns) of every POST; ``GET /-/count?prefix=`` counts the
    distinct ids with a prefix, ``GET /-/take?prefix=`` hands their records over and forgets them."""
    port = int(sys.argv[2])
    records: dict[str, list[list[Any]]] = {}  # prefix (id up to its first '-') -> records

    async def receive(request: web.Request) -> web.Response:
        arrived = time.time_ns()
        await request.read()
        event_id = request.headers.get("ce-id", "")
        sent = request.headers.get("ce-sentat", "0")
        records.setdefault(event_id.split("-", 1)[0], []).append([event_id, int(sent), arrived])
        return web.Response(status=202)

    async def count(request: web.Request) -> web.Response:
        got = records.get(request.query["prefix"], [])
        return web.json_response({"count": len({r[0] for r in got})})

    async def take(request: web.Request) -> web.Response:
        return web.json_response(records.pop(request.query["prefix"], []))

    async def serve_for_a_while() -> None:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_get("/-/count", count)
        app.router.add_get("/-/take", take)
        app.router.add_post("/{tail:.*}", receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, port).start()
        print(f"receiver on {HOST}:{port}", flush=True)
        await asyncio.sleep(CHILD_LIFETIME)
        await runner.cleanup()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve_for_a_while())


# --- the load generator process ---------------------------------------------------------------------------------


async def client(config: dict[str, Any]) -> dict[str, Any]:
    url, rate, prefix = config["url"], config["rate"], config["prefix"]
    warm, measured = round(config["warmup"] * rate), round(config["duration"] * rate)
    data = json_data(config["data_bytes"])
    base = {"ce-specversion": "1.0", "ce-source": SOURCE, "ce-type": TYPE, "Content-Type": "application/json"}
    accepted: list[str] = []
    failures: list[str] = []
    failed = 0
    lags: list[float] = []

    async def send(session: aiohttp.ClientSession, event_id: str, due_ns: int) -> None:
        nonlocal failed
        headers = {**base, "ce-id": event_id, "ce-sentat": str(due_ns)}
        try:
            async with session.post(url, data=data, headers=headers) as response:
                answer = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, answer = 0, f"{type(exc).__name__}: {exc}".encode()
        if status == 202:
            accepted.append(event_id)
        else:
            failed += 1
            if len(failures) < 5:
                failures.append(f"{event_id}: HTTP {status}: {answer[:200].decode(errors='replace')}")

    connector = aiohttp.TCPConnector(limit=config["connections"])
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter() + 0.05
        start_ns = time.time_ns() + 50_000_000  # the same instant on the wall clock
        measure_start = start
        cpu0 = time.process_time()
        for i in range(warm + measured):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if i == warm:
                marker(MEASURE_START)
                measure_start = time.perf_counter()
                cpu0 = time.process_time()
            lags.append(time.perf_counter() - due)
            kind = "m" if i >= warm else "w"
            due_ns = start_ns + round(i * 1e9 / rate)
            tasks.append(asyncio.create_task(send(session, f"{prefix}-{kind}-{i}", due_ns)))
        sent_for = time.perf_counter() - measure_start
        marker(MEASURE_END)
        cpu_s = time.process_time() - cpu0
        await asyncio.gather(*tasks)
    lags.sort()
    return {
        "sent": warm + measured,
        "measured_sent": measured,
        "seconds": sent_for,
        "accepted": accepted,
        "failed": failed,
        "failures": failures,
        "lag_p99_ms": percentile(lags, 99) * 1000,
        "cpu_s": cpu_s,
    }


# --- the stack ----------------------------------------------------------------------------------------------------


def manifest_docs(receiver_url: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": API_VERSION, "kind": "Broker", "metadata": {"name": BROKER, "namespace": NAMESPACE},
         "spec": {}},
        {"apiVersion": API_VERSION, "kind": "Trigger", "metadata": {"name": TRIGGER, "namespace": NAMESPACE},
         "spec": {"broker": BROKER, "filter": {"attributes": {"type": TYPE}}, "subscriber": {"uri": receiver_url}}},
    ]


@dataclass
class Stack:
    """nats-server, ingress, dispatcher and receiver, each a process; the URLs the generator POSTs to."""

    tmp: Path
    children: dict[str, Child] = field(default_factory=dict)
    pids: dict[str, int | None] = field(default_factory=dict)
    receiver_url: str = ""
    ingress_url: str = ""

    def pid(self, name: str) -> int | None:
        return self.pids.get(name)

    async def start_child(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv, self.tmp / f"{name}.log")
        self.children[name] = child
        await child.start()
        self.pids[name] = child.pid
        return child

    async def wait_http(self, child: Child, url: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                child.check_alive()
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(url) as response:
                        if response.status < 500:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{child.name} did not answer {url} within {READY_TIMEOUT:g}s:\n{child.log_tail()}")

    async def wait_delivering(self) -> None:
        """Until a probe event sent to the ingress reaches the receiver (the dispatcher's consumer is fetching)."""
        deadline = time.monotonic() + READY_TIMEOUT
        headers = {"ce-specversion": "1.0", "ce-source": SOURCE, "ce-type": TYPE, "ce-sentat": "0"}
        async with aiohttp.ClientSession() as session:
            for i in range(10_000):
                self.children["dispatcher"].check_alive()
                async with session.post(self.ingress_url, headers={**headers, "ce-id": f"probe-{i}"}) as response:
                    await response.read()
                if await self.count("probe") > 0:
                    await self.take("probe")
                    return
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
        raise RuntimeError(f"nothing delivered within {READY_TIMEOUT:g}s:\n{self.children['dispatcher'].log_tail()}")

    async def count(self, prefix: str) -> int:
        async with aiohttp.ClientSession() as session, session.get(
            f"{self.receiver_url}/-/count", params={"prefix": prefix}
        ) as response:
            return int((await response.json())["count"])

    async def take(self, prefix: str) -> list[list[Any]]:
        async with aiohttp.ClientSession() as session, session.get(
            f"{self.receiver_url}/-/take", params={"prefix": prefix}
        ) as response:
            return await response.json()  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def stack(tmp: Path) -> AsyncIterator[Stack]:
    async with nats_server(tmp / "nats") as server:
        s = Stack(tmp)
        s.pids["nats"] = server.process.pid if server.process else None
        try:
            receiver_port, ingress_port = free_port(HOST), free_port(HOST)
            receiver = await s.start_child("receiver", [sys.executable, __file__, RECEIVER_MODE, str(receiver_port)])
            s.receiver_url = f"http://{HOST}:{receiver_port}"
            await s.wait_http(receiver, f"{s.receiver_url}/-/count?prefix=x")
            manifest = tmp / "e2e.yaml"
            manifest.write_text(yaml.safe_dump_all(manifest_docs(f"{s.receiver_url}/"), sort_keys=False))
            ingress = await s.start_child("ingress", [
                sys.executable, "-m", "ripple", "ingress", str(manifest), "--nats", server.url,
                "--host", HOST, "--port", str(ingress_port)])
            await s.wait_http(ingress, f"http://{HOST}:{ingress_port}/-/health")
            s.ingress_url = f"http://{HOST}:{ingress_port}/{NAMESPACE}/{BROKER}"
            await s.start_child("dispatcher", [sys.executable, "-m", "ripple", "dispatcher", str(manifest),
                                               "--nats", server.url])
            await s.wait_delivering()
            print(f"stack: nats pid {s.pids['nats']}, ingress pid {s.pids['ingress']}, dispatcher pid "
                  f"{s.pids['dispatcher']}, receiver pid {s.pids['receiver']}", flush=True)
            yield s
        finally:
            for child in reversed(list(s.children.values())):
                await child.stop()


# --- one phase ------------------------------------------------------------------------------------------------------


def distribution_ms(latencies_ns: list[int]) -> dict[str, float | None]:
    values = sorted(v / 1e6 for v in latencies_ns)
    return {
        "p50_ms": num(percentile(values, 50), 3),
        "p90_ms": num(percentile(values, 90), 3),
        "p99_ms": num(percentile(values, 99), 3),
        "max_ms": num(values[-1], 3) if values else None,
    }


async def run_phase(s: Stack, *, url: str, prefix: str, rate: float, warmup: float, duration: float,
                    connections: int, data_bytes: int, drain: float) -> dict[str, Any]:
    """One generator run against ``url``, the drain wait, and its figures."""
    config = {"kind": prefix, "url": url, "prefix": prefix, "rate": rate, "warmup": warmup, "duration": duration,
              "connections": connections, "data_bytes": data_bytes}
    cpu = CpuWindow({name: s.pid(name) for name in ("ingress", "dispatcher", "nats", "receiver")})
    result = await run_client(__file__, config, cpu.mark)
    accepted: list[str] = result["accepted"]
    deadline = time.monotonic() + drain
    drained_at = time.monotonic()
    for _ in range(int(drain / 0.05) + 1):  # bounded by --drain
        if await s.count(prefix) >= len(accepted) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.05)
    drain_s = time.monotonic() - drained_at
    records = await s.take(prefix)
    first: dict[str, list[Any]] = {}
    for record in records:
        first.setdefault(record[0], record)
    lost = sum(1 for i in accepted if i not in first)
    latencies = [r[2] - r[1] for i, r in first.items() if "-m-" in i]
    wall = cpu.wall or float("nan")
    return {
        "sent": result["sent"],
        "accepted": len(accepted),
        "failed": result["failed"],
        "failures": result["failures"],
        "delivered": len(first),
        "duplicates": len(records) - len(first),
        "lost": lost,
        "measured": len(latencies),
        **distribution_ms(latencies),
        "achieved_rate": num(result["measured_sent"] / result["seconds"], 1) if result["seconds"] else None,
        "generator_lag_p99_ms": num(result["lag_p99_ms"], 3),
        "drain_s": num(drain_s, 2),
        "cores": {name: num((cpu.process(name) or 0.0) / wall) for name in ("ingress", "dispatcher", "nats",
                                                                               "receiver")},
        "generator_cores": num(result["cpu_s"] / wall),
        "others_cores": num(cpu.others(result["cpu_s"])),
    }


# --- the run ----------------------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="ripple-e2e-") as tmp:
        async with stack(Path(tmp)) as s:
            for n, rate in enumerate(args.rate_list):
                results[f"{rate:g}"] = {}
                for path in PATHS:
                    url = f"{s.receiver_url}/" if path == "direct" else s.ingress_url
                    print(f"rate {rate:g}/s {path:<6}: {args.warmup:g}s warm-up + {args.duration:g}s, "
                          f"{args.connections} connections, to {url}", flush=True)
                    results[f"{rate:g}"][path] = await run_phase(
                        s, url=url, prefix=f"{path[0]}{n}", rate=rate, warmup=args.warmup, duration=args.duration,
                        connections=args.connections, data_bytes=args.data_bytes, drain=args.drain)
                    for name, child in s.children.items():
                        if name != "receiver":
                            child.check_alive()
    return results


def fmt(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_start = load_average()
    began = time.perf_counter()
    results = asyncio.run(run(args))
    wall = time.perf_counter() - began
    rows = []
    per_rate: dict[str, Any] = {}
    sustainable: float | None = None
    lost_total = 0
    for rate_key, paths in results.items():
        for path, r in paths.items():
            rows.append([f"{rate_key}/s {path}", r["sent"], r["accepted"], r["delivered"], r["lost"],
                         fmt(r["p50_ms"]), fmt(r["p90_ms"]), fmt(r["p99_ms"]), fmt(r["max_ms"]),
                         fmt(r["achieved_rate"]), fmt(r["cores"]["ingress"]) if path == "ripple" else "-",
                         fmt(r["cores"]["dispatcher"]) if path == "ripple" else "-"])
        ripple, direct = paths["ripple"], paths["direct"]
        lost_total += ripple["lost"]
        ok = (ripple["p99_ms"] is not None and ripple["p99_ms"] < P99_LIMIT_MS and ripple["lost"] == 0
              and ripple["failed"] == 0)
        if ok:
            sustainable = float(rate_key)
        per_rate[rate_key] = {
            "ripple": ripple, "direct": direct, "ok": ok,
            "p99_ratio": ratio(ripple["p99_ms"] or 0.0, direct["p99_ms"] or 0.0),
            "p50_ratio": ratio(ripple["p50_ms"] or 0.0, direct["p50_ms"] or 0.0),
        }
    print()
    print(f"End-to-end latency, send -> receiver (ingress and dispatcher as processes), {args.duration:g}s per "
          f"rate and path, {args.connections} connections, load {load_start} -> {load_average()}, "
          f"{wall:.0f}s in all")
    print(table(["rate path", "sent", "202s", "delivered", "lost", "p50 ms", "p90 ms", "p99 ms", "max ms",
                 "achieved/s", "ingress cores", "dispatcher cores"], rows))
    print()
    for rate_key, entry in per_rate.items():
        failures = entry["ripple"]["failures"] + entry["direct"]["failures"]
        print(f"{rate_key}/s: ripple/direct p99 {fmt(entry['p99_ratio'])}x, "
              f"{'ok' if entry['ok'] else 'NOT sustainable'}, other processes on the machine "
              f"{fmt(entry['ripple']['others_cores'])} cores during ripple"
              + (f"; failures: {failures}" if failures else ""))
    print(f"sustainable rate (p99 < {P99_LIMIT_MS:g} ms, nothing lost): "
          f"{fmt(sustainable) + '/s' if sustainable is not None else 'none of the swept rates'}")
    at_2000 = per_rate.get("2000", {}).get("ripple", {}).get("p99_ms")
    emit_json({
        "bench": "e2e",
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "data_bytes": args.data_bytes,
        "rates": per_rate,
        "sustainable_rate": sustainable,
        "p99_ms_at_2000": at_2000,
        "lost_total": lost_total,
        "load_average": [load_start, load_average()],
        "wall_s": num(wall, 1),
        "machine": machine(),
    })
    return 0 if lost_total == 0 else 1


if __name__ == "__main__":
    if is_client_mode():
        client_entry(client, loop_factory())
    elif len(sys.argv) > 2 and sys.argv[1] == RECEIVER_MODE:
        receiver_main()
    else:
        sys.exit(main())
