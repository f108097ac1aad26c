"""What tracing costs: ingress throughput and end-to-end latency with OpenTelemetry exporting spans over OTLP,
against the same stack with tracing off, in the same run.

Run with ``python bench/tracing.py`` (``--help`` for the sizes; the defaults, 2 rounds of a 6 s throughput phase
and a 10 s latency phase per stack, take about 2 minutes). Everything listens on 127.0.0.1.

What runs where, each in its own process:

* a real ``nats-server -js``;
* the receiver of ``bench/e2e.py`` (notes each delivery's arrival time and its ``ce-sentat``, answers 202);
* an OTLP/HTTP sink: this script in ``otlp`` mode, which decodes every ``ExportTraceServiceRequest`` (protobuf)
  it is sent and counts the spans, so that "on" means spans were really built, encoded, sent and read;
* three stacks, each a ``ripple ingress`` and a ``ripple dispatcher`` with its own broker and triggers (exact
  ``type`` filter, to the receiver): ``off`` without any ``OTEL_*`` variable, ``on`` with
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` set to the sink, ``sampled`` the same with a ratio sampler keeping one trace in
  ten (the SDK's default batch processor: 512 spans per export,
  every 5 s or when 512 are queued). With tracing on, the ingress exports one server span per request, the
  dispatcher a client span per delivery attempt.
  Both generators' event types have a trigger, so every event accepted is delivered.

Each round runs, for ``off``, ``on`` and ``sampled`` (the order alternates between rounds, so a slow drift of
the machine does not favour one side):

* ``throughput``: the closed-loop generator of ``bench/ingress.py`` (``--connections`` keep-alive connections,
  one binary-mode event per POST) against the stack's ingress for ``--duration`` seconds after a warm-up; the
  202s answered inside the window per second. The stack's dispatcher delivers meanwhile, as in production.
* ``latency``: the open-loop generator of ``bench/e2e.py`` at ``--rate`` events/s for ``--latency-duration``
  seconds; latency = arrival at the receiver - the event's due time, p50 and p99 over the measured events, lost =
  answered 202 and never delivered.

The figures are medians over the rounds; overhead = (side - off) / off. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import e2e
import yaml
from aiohttp import web
from common import HOST, emit_json, is_client_mode, load_average, machine, nats_server, num, run_client, table

import ingress as ingress_bench
from ripple._aio import free_port, loop_factory
from ripple.api.models import API_VERSION

NAMESPACE = "bench"
SIDES = ("off", "on", "sampled")
SAMPLED_RATIO = 0.1
ENV = {
    "off": {},
    "on": {},
    "sampled": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(SAMPLED_RATIO)},
}
"""Besides the endpoint: ``sampled`` records one trace in ten (the ingress decides, the rest follow its flag)."""
OTLP_MODE = "otlp"
E2E_SCRIPT = str(Path(e2e.__file__).resolve())
INGRESS_SCRIPT = str(Path(ingress_bench.__file__).resolve())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every phase on both stacks (2)")
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds of a throughput phase (6)")
    parser.add_argument("--connections", type=int, default=16, help="connections of the throughput generator (16)")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s of the latency phase (1000)")
    parser.add_argument("--latency-duration", type=float, default=10.0,
                        help="measured seconds of a latency phase (10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each window (1)")
    parser.add_argument("--data-bytes", type=int, default=200, help="size of each event's JSON data (200)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration <= 0 or args.latency_duration <= 0 or args.rate <= 0 or args.connections < 1:
        parser.error("--rounds, --duration, --latency-duration, --rate and --connections must be positive")
    return args


# --- the OTLP sink process --------------------------------------------------------------------------------------


def otlp_main() -> None:
    """``tracing.py otlp PORT``: accept OTLP/HTTP trace exports, count their spans (``GET /-/spans``)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    port, spans = int(sys.argv[2]), {"count": 0, "exports": 0}
    answer = ExportTraceServiceResponse().SerializeToString()

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        spans["exports"] += 1
        spans["count"] += sum(len(scope.spans) for rs in message.resource_spans for scope in rs.scope_spans)
        return web.Response(body=answer, content_type="application/x-protobuf")

    async def count(request: web.Request) -> web.Response:
        return web.json_response(spans)

    async def serve() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", traces)
        app.router.add_get("/-/spans", count)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, port).start()
        print(f"otlp sink on {HOST}:{port}", flush=True)
        await asyncio.sleep(e2e.CHILD_LIFETIME)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve())


# --- the stacks ---------------------------------------------------------------------------------------------------


def manifest(side: str, receiver_url: str) -> list[dict[str, Any]]:
    """The side's broker, and a trigger to the receiver for each generator's event type."""
    triggers = [
        {"apiVersion": API_VERSION, "kind": "Trigger", "metadata": {"name": f"{name}-{side}", "namespace": NAMESPACE},
         "spec": {"broker": side, "filter": {"attributes": {"type": kind}}, "subscriber": {"uri": receiver_url}}}
        for name, kind in (("latency", e2e.TYPE), ("throughput", ingress_bench.TYPE))
    ]
    return [{"apiVersion": API_VERSION, "kind": "Broker", "metadata": {"name": side, "namespace": NAMESPACE},
             "spec": {}}, *triggers]


@contextlib.asynccontextmanager
async def stacks(tmp: Path) -> AsyncIterator[tuple[dict[str, e2e.Stack], str]]:
    """Both stacks on one nats-server, sharing the receiver; and the OTLP sink's URL."""
    async with nats_server(tmp / "nats") as server:
        shared = e2e.Stack(tmp)
        built: dict[str, e2e.Stack] = {}
        try:
            receiver_port, otlp_port = free_port(HOST), free_port(HOST)
            receiver = await shared.start_child("receiver", [sys.executable, E2E_SCRIPT, e2e.RECEIVER_MODE,
                                                             str(receiver_port)])
            receiver_url = f"http://{HOST}:{receiver_port}"
            await shared.wait_http(receiver, f"{receiver_url}/-/count?prefix=x")
            sink = await shared.start_child("otlp", [sys.executable, __file__, OTLP_MODE, str(otlp_port)])
            otlp_url = f"http://{HOST}:{otlp_port}"
            await shared.wait_http(sink, f"{otlp_url}/-/spans")
            for side in SIDES:
                directory = tmp / side
                directory.mkdir()
                stack = e2e.Stack(directory, receiver_url=receiver_url)
                stack.pids.update(nats=server.process.pid if server.process else None, receiver=receiver.pid)
                path = directory / "manifest.yaml"
                path.write_text(yaml.safe_dump_all(manifest(side, f"{receiver_url}/"), sort_keys=False))
                # ``env`` execs the command: the pid read for CPU time is the component's own.
                env = ["env"] + ([] if side == "off" else [f"OTEL_EXPORTER_OTLP_ENDPOINT={otlp_url}"]) + [
                    f"{key}={value}" for key, value in ENV[side].items()]
                port = free_port(HOST)
                component = await stack.start_child("ingress", [
                    *env, sys.executable, "-m", "ripple", "ingress", str(path), "--nats", server.url, "--host", HOST,
                    "--port", str(port)])
                await stack.wait_http(component, f"http://{HOST}:{port}/-/health")
                stack.ingress_url = f"http://{HOST}:{port}/{NAMESPACE}/{side}"
                await stack.start_child("dispatcher", [*env, sys.executable, "-m", "ripple", "dispatcher", str(path),
                                                       "--nats", server.url])
                await stack.wait_delivering()
                built[side] = stack
            pids = [f"{side} (ingress {s.pid('ingress')}, dispatcher {s.pid('dispatcher')})"
                    for side, s in built.items()]
            print("stacks: " + ", ".join(pids), flush=True)
            yield built, otlp_url
        finally:
            for stack in [*built.values(), shared]:
                for child in reversed(list(stack.children.values())):
                    await child.stop()


async def spans_seen(otlp_url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{otlp_url}/-/spans") as response:
        return int((await response.json())["count"])


async def throughput(stack: e2e.Stack, prefix: str, args: argparse.Namespace) -> dict[str, Any]:
    config = {"kind": "ingress-single", "url": stack.ingress_url, "concurrency": args.connections, "batch": 1,
              "prefix": prefix, "data_bytes": args.data_bytes, "warmup": args.warmup, "duration": args.duration}
    result = await run_client(INGRESS_SCRIPT, config)
    if result["failed_requests"]:
        raise RuntimeError(f"{prefix}: {result['failed_requests']} requests failed: {result['error_samples']}")
    accepted = result["accepted_total"]
    for _ in range(600):  # the dispatcher catches up before the next phase measures anything
        if await stack.count(prefix) >= accepted:
            break
        await asyncio.sleep(0.05)
    delivered = len({r[0] for r in await stack.take(prefix)})
    return {"events_per_s": result["events"] / result["seconds"], "accepted": accepted, "delivered": delivered}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, dict[str, list[dict[str, Any]]]] = {side: {"throughput": [], "latency": []} for side in SIDES}
    spans = {"before": 0, "after": 0}
    with tempfile.TemporaryDirectory(prefix="ripple-tracing-") as tmp:
        async with stacks(Path(tmp)) as (built, otlp_url):
            spans["before"] = await spans_seen(otlp_url)
            for n in range(args.rounds):
                for side in SIDES if n % 2 == 0 else tuple(reversed(SIDES)):
                    stack = built[side]
                    print(f"round {n + 1} {side:>3}: throughput, {args.connections} connections", flush=True)
                    results[side]["throughput"].append(await throughput(stack, f"t{side}{n}", args))
                    print(f"round {n + 1} {side:>3}: latency at {args.rate:g}/s", flush=True)
                    results[side]["latency"].append(await e2e.run_phase(
                        stack, url=stack.ingress_url, prefix=f"l{side}{n}", rate=args.rate, warmup=args.warmup,
                        duration=args.latency_duration, connections=8, data_bytes=args.data_bytes, drain=15.0))
                    for child in stack.children.values():
                        child.check_alive()
            await asyncio.sleep(6.0)  # the SDK exports every 5 s: let the last batch in
            spans["after"] = await spans_seen(otlp_url)
    return {"results": results, "spans": spans["after"] - spans["before"], "span_cost": span_cost()}


def span_cost(count: int = 20_000) -> dict[str, float]:
    """µs per ``ripple.tracing.span`` in this process: off, then on with the real SDK and batch processor (its
    exporter drops what it is given: the OTLP encoding is the exporter thread's, measured by the stacks above)."""
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from ripple import tracing

    class Drop(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    def per_span() -> float:
        began = time.perf_counter()
        for n in range(count):
            with tracing.span("deliver bench/t", parent=parent, kind="client",
                              attributes={"trigger": "bench/t", "event_id": str(n), "attempt": 1}) as handle:
                handle.set(status=202)
        return (time.perf_counter() - began) / count * 1e6

    off = per_span()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=count * 2))
    state = tracing._State
    state.tracer, state.api, state.empty = provider.get_tracer("bench"), trace, Context()
    state.kinds = {"client": trace.SpanKind.CLIENT}
    try:
        on = per_span()
    finally:
        state.tracer = None
        provider.shutdown()
    return {"off_us": num(off, 2) or 0.0, "on_us": num(on, 2) or 0.0}


def summarize(run_result: dict[str, Any], args: argparse.Namespace, wall: float) -> tuple[str, dict[str, Any]]:
    sides: dict[str, dict[str, Any]] = {}
    for side in SIDES:
        phases = run_result["results"][side]
        latency = phases["latency"]
        sides[side] = {
            "ingress_events_per_s": num(statistics.median(p["events_per_s"] for p in phases["throughput"]), 1),
            "p50_ms": num(statistics.median(p["p50_ms"] for p in latency), 3),
            "p99_ms": num(statistics.median(p["p99_ms"] for p in latency), 3),
            "lost": sum(p["lost"] for p in latency) + sum(p["accepted"] - p["delivered"] for p in phases["throughput"]),
            "ingress_cores_at_rate": num(statistics.median(p["cores"]["ingress"] or 0 for p in latency)),
            "dispatcher_cores_at_rate": num(statistics.median(p["cores"]["dispatcher"] or 0 for p in latency)),
        }
    off = sides["off"]

    def overhead(side: str, key: str) -> float | None:
        return num((sides[side][key] - off[key]) / off[key] * 100, 1) if off[key] else None

    keys = ("ingress_events_per_s", "p50_ms", "p99_ms", "ingress_cores_at_rate", "dispatcher_cores_at_rate")
    rows = [[side, *(s[key] for key in keys), s["lost"]] for side, s in sides.items()]
    rows += [[f"{side} vs off", *(f"{overhead(side, key)}%" for key in keys), "-"] for side in SIDES[1:]]
    text = table(["tracing", "ingress ev/s", f"p50 ms @{args.rate:g}/s", "p99 ms", "ingress cores",
                  "dispatcher cores", "lost"], rows)
    cost = run_result["span_cost"]
    text += (f"\nspans exported by 'on' and 'sampled' ({SAMPLED_RATIO:g} of traces): {run_result['spans']} "
             f"(wall {wall:.0f}s, load {load_average()})"
             f"\none span in-process: {cost['on_us']} µs with tracing on, {cost['off_us']} µs off")
    summary = {"benchmark": "tracing", "machine": machine(), "args": vars(args), **sides,
               "spans_exported": run_result["spans"], "span_cost_us": run_result["span_cost"],
               "overhead_pct": {side: {key: overhead(side, key) for key in keys[:3]} for side in SIDES[1:]},
               "wall_s": num(wall, 1)}
    return text, summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    result = asyncio.run(run(args))
    text, summary = summarize(result, args, time.perf_counter() - began)
    print(text)
    emit_json(summary)
    lost = sum(summary[side]["lost"] for side in SIDES)
    return 1 if lost or not result["spans"] else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == OTLP_MODE:
        otlp_main()
    elif is_client_mode():
        raise SystemExit("tracing.py has no client mode of its own: it drives bench/ingress.py and bench/e2e.py")
    else:
        sys.exit(main())
