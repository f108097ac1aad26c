"""What a Sequence adds per step: end-to-end latency at a fixed rate through a 3-step Sequence against the same
three functions chained by hand-written Triggers, in the same run.

Run with ``python bench/sequence.py`` (``--help`` for rate and durations; the defaults, 100 events/s for 20 s on
each path in 2 alternating segments, take about 100 s). Everything listens on 127.0.0.1.

What runs where:

* a real ``nats-server -js`` (child process, store in a temp dir);
* ``ripple dispatcher`` (child process) with one manifest holding both paths:
  - **sequence**: a Sequence of three steps (``/s1``, ``/s2``, ``/s3``) whose last reply goes back to the broker,
    and a Trigger on that reply's type to ``/done``;
  - **triggers**: three Triggers, ``hop.a`` → ``/h1`` (replies ``hop.b``) → ``/h2`` (``hop.c``) → ``/h3``
    (``hop.d``), and a Trigger on ``hop.d`` to ``/done``: the chain users build by hand today;
* the functions (child process, this script in ``steps`` mode): one aiohttp app whose step endpoints answer each
  event with a reply of the next type that carries the ``benchsent`` extension over, and ``/done``, which keeps
  ``time.time() - benchsent`` per path;
* this process: an open-loop sender storing one event every 1/rate seconds in JetStream (the Sequence's first hop
  for one path, the broker's log for the other), each with its send time in ``benchsent``.

Both paths make the same four deliveries and store the same four messages; the difference is what a Sequence's
hop costs against a Trigger's (stamping, hand-off to a subject, no router or filter). The paths alternate in
``--segments`` segments so that background load hits both alike; each segment starts with ``--warmup`` seconds
sent but not measured. Every event sent must reach ``/done`` (the script exits 1 otherwise). The last line of the
output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from common import HOST, emit_json, free_port, load_average, machine, nats_server, num, percentile, table

from dispatch import Child, wait_http, wait_ready
from ripple.events.extensions import stamp_arrival
from ripple.events.http import decode_request, encode_binary
from ripple.events.model import CloudEvent
from ripple.store import EventStore, subjects
from ripple.store.flows import Entry, store_entries

NAMESPACE = "bench"
STEPS_MODE = "steps"
HOPS = {"/s1": "seq.b", "/s2": "seq.c", "/s3": "seq.out", "/h1": "hop.b", "/h2": "hop.c", "/h3": "hop.d"}
DONE = {"seq.out": "sequence", "hop.d": "triggers"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="events per second offered")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per path (all segments)")
    parser.add_argument("--segments", type=int, default=2, help="alternating segments per path")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds sent, not measured, per segment")
    return parser.parse_args(argv)


# --- the functions (child process) ----------------------------------------------------------------------------


def steps_app() -> web.Application:
    latencies: dict[str, list[float]] = {"sequence": [], "triggers": []}

    async def step(request: web.Request) -> web.Response:
        (event,) = decode_request(request.headers.items(), await request.read())
        reply = CloudEvent.create({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/bench/step",
                                   "type": HOPS[request.path], "benchsent": event["benchsent"],
                                   "benchmeasured": event["benchmeasured"]}, event.data)
        headers, body = encode_binary(reply)
        return web.Response(status=200, headers=headers, body=body)

    async def done(request: web.Request) -> web.Response:
        received = time.time()
        (event,) = decode_request(request.headers.items(), await request.read())
        if event["benchmeasured"] == "1":
            latencies[DONE[event.type]].append(received - float(event["benchsent"]))
        else:
            latencies.setdefault(f"warmup-{DONE[event.type]}", []).append(0.0)
        return web.Response(status=202)

    async def results(request: web.Request) -> web.Response:
        return web.json_response(latencies)

    app = web.Application()
    for path in HOPS:
        app.router.add_post(path, step)
    app.router.add_post("/done", done)
    app.router.add_get("/results", results)
    return app


def steps_main(port: int) -> None:
    web.run_app(steps_app(), host=HOST, port=port, access_log=None, print=None)


# --- the manifest ---------------------------------------------------------------------------------------------


def manifest(functions: str) -> list[dict[str, Any]]:
    def meta(name: str) -> dict[str, str]:
        return {"name": name, "namespace": NAMESPACE}

    def trigger(name: str, event_type: str, path: str) -> dict[str, Any]:
        return {"apiVersion": "ripple.dev/v1alpha1", "kind": "Trigger", "metadata": meta(name),
                "spec": {"filter": {"attributes": {"type": event_type}}, "subscriber": {"uri": functions + path}}}

    return [
        {"apiVersion": "ripple.dev/v1alpha1", "kind": "Sequence", "metadata": meta("chain"),
         "spec": {"steps": [{"uri": functions + path} for path in ("/s1", "/s2", "/s3")]}},
        trigger("sequence-done", "seq.out", "/done"),
        trigger("hop-1", "hop.a", "/h1"), trigger("hop-2", "hop.b", "/h2"), trigger("hop-3", "hop.c", "/h3"),
        trigger("triggers-done", "hop.d", "/done"),
    ]


# --- the sender -----------------------------------------------------------------------------------------------


async def send(store: EventStore, path: str, rate: float, seconds: float, measured: bool, counter: list[int]) -> None:
    """Open loop: one event every 1/rate s on its own schedule, whether or not earlier ones were stored."""
    entry = Entry("Sequence", NAMESPACE, "chain", "default")
    data = json.dumps({"order": "x" * 180}).encode()
    pending: set[asyncio.Task[Any]] = set()
    start, count = time.monotonic(), int(rate * seconds)
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        event = stamp_arrival(CloudEvent.create({
            "specversion": "1.0", "id": str(uuid.uuid4()), "source": "/bench", "datacontenttype": "application/json",
            "type": "seq.a" if path == "sequence" else "hop.a", "benchsent": repr(time.time()),
            "benchmeasured": "1" if measured else "0"}, data))
        coro = store_entries(store, entry, [event]) if path == "sequence" else \
            store.publish_event(NAMESPACE, "default", event)
        task = asyncio.create_task(coro)
        pending.add(task)
        task.add_done_callback(pending.discard)
        counter[0] += 1
    await asyncio.gather(*pending)


async def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ripple-bench-sequence-") as tmp:
        work = Path(tmp)
        async with nats_server(work / "nats") as nats:
            port = free_port(HOST)
            functions_url = f"http://{HOST}:{port}"
            steps = Child("functions", [sys.executable, __file__, STEPS_MODE, str(port)], work / "functions.log")
            (work / "flows.yaml").write_text(yaml.safe_dump_all(manifest(functions_url)))
            dispatcher = Child("dispatcher", [sys.executable, "-m", "ripple", "dispatcher", str(work / "flows.yaml"),
                                              "--nats", nats.url], work / "dispatcher.log")
            await steps.start()
            await dispatcher.start()
            store = await EventStore.connect(nats.url, name="bench-sender")
            try:
                await wait_http(steps, f"{functions_url}/results")
                hops = ["_seq_chain_0", "_seq_chain_1", "_seq_chain_2", "sequence-done", "hop-1", "hop-2", "hop-3",
                        "triggers-done"]
                await wait_ready(store, dispatcher, [subjects.consumer_name(h) for h in hops],
                                 subjects.stream_name(NAMESPACE, "default"))
                sent = [0]
                per_segment = args.duration / args.segments
                for _ in range(args.segments):
                    for path in ("triggers", "sequence"):
                        print(f"  {path}: {per_segment:g}s at {args.rate:g}/s", flush=True)
                        await send(store, path, args.rate, args.warmup, False, sent)
                        await send(store, path, args.rate, per_segment, True, sent)
                async with aiohttp.ClientSession() as http:
                    deadline = time.monotonic() + 60
                    while True:
                        async with http.get(f"{functions_url}/results") as response:
                            found = await response.json()
                        arrived = sum(len(v) for v in found.values())
                        if arrived >= sent[0] or time.monotonic() > deadline:
                            break
                        await asyncio.sleep(0.2)
            finally:
                await store.close()
                await dispatcher.stop()
                await steps.stop()
    lost = sent[0] - arrived
    rows, summary = [], {}
    for path in ("triggers", "sequence"):
        values = sorted(v * 1000 for v in found[path])
        p50, p99 = percentile(values, 50), percentile(values, 99)
        summary[path] = {"events": len(values), "p50_ms": num(p50), "p99_ms": num(p99),
                         "p50_per_step_ms": num(p50 / 3), "p99_per_step_ms": num(p99 / 3)}
        rows.append([f"3 steps: {path}", len(values), num(p50), num(p99), num(p50 / 3), num(p99 / 3)])
    seq, hops = summary["sequence"], summary["triggers"]
    added = {"p50_per_step_ms": num((seq["p50_ms"] - hops["p50_ms"]) / 3),
             "p99_per_step_ms": num((seq["p99_ms"] - hops["p99_ms"]) / 3)}
    print(table(["path", "events", "p50 ms", "p99 ms", "p50/step", "p99/step"], rows))
    print(f"Sequence minus hand-written Triggers, per step: p50 {added['p50_per_step_ms']} ms, "
          f"p99 {added['p99_per_step_ms']} ms; {sent[0]} sent, {lost} lost; load average {load_average()}")
    emit_json({"benchmark": "sequence", "rate": args.rate, "segments": args.segments, "sent": sent[0],
               "lost": lost, "paths": summary, "sequence_minus_triggers": added, "machine": machine(),
               "wall_seconds": num(time.monotonic() - started)})
    return 1 if lost else 0


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == STEPS_MODE:
        steps_main(int(sys.argv[2]))
        return 0
    return asyncio.run(run(parse_args()))


if __name__ == "__main__":
    sys.exit(main())
