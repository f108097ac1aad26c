"""Webhook source throughput in requests/s, signed and open, side by side with the plain ingress in the same run.

Run with ``python bench/webhook.py`` (``--help`` for the sizes; the defaults take about 60 s on a 2-core machine).

What runs: ``ripple dev`` in its own process (its own nats-server; no functions, no warm pool) with one broker
and four webhook EventSources into it: open (no signature), ``github``, ``stripe`` and ``hmac-sha256``. One
client process per phase (this script in ``client`` mode) drives N connections of POSTs and counts the 202s that
arrive in the measured window:

* ``ingress``:  a binary-mode CloudEvent per POST to the broker itself, the baseline;
* ``open``:     the same JSON body to the open webhook (an event is made of it: id from ``Idempotency-Key``);
* ``github``:   a GitHub push delivery (``X-Hub-Signature-256`` over the body, ``X-GitHub-Delivery`` its id);
* ``stripe``:   a Stripe event (``Stripe-Signature: t=..,v1=..`` over ``t.body``; the id is in the JSON);
* ``hmac``:     a generic ``X-Ripple-Signature`` HMAC of the body.

Every request carries a unique id and its signature is computed by the client for that body, as a sender does.
A webhook answers 202 only once JetStream stored the event, so at the end the broker's stream must hold exactly
as many events as 202s were counted; any other answer, or a count that does not match, makes the script exit 1.
The ``vs ingress`` column is each phase's median over the rounds divided by the ingress's median. The last line
of the output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import nats
from common import (
    MEASURE_END,
    MEASURE_START,
    client_entry,
    emit_json,
    is_client_mode,
    json_data,
    load_average,
    machine,
    marker,
    median,
    num,
    ratio,
    run_client,
    table,
)

from dispatch import Child, wait_http
from ripple._aio import free_port
from ripple.store import subjects

HOST = "127.0.0.1"
NAMESPACE = "bench"
SECRET = "bench-webhook-secret"
PHASES = ("ingress", "open", "github", "stripe", "hmac")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32, help="connections (32)")
    parser.add_argument("--data-bytes", type=int, default=200, help="size of each request's JSON body (200)")
    parser.add_argument("--duration", type=float, default=2.5, help="measured seconds per phase and round (2.5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each window (1.0)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all phases; medians are reported (3)")
    args = parser.parse_args(argv)
    if min(args.concurrency, args.rounds) < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("counts must be at least 1, --duration positive, --warmup not negative")
    return args


MANIFEST = f"""
apiVersion: v1
kind: Secret
metadata: {{name: hooks, namespace: {NAMESPACE}}}
stringData: {{key: {SECRET}}}
---
apiVersion: ripple.dev/v1alpha1
kind: Broker
metadata: {{name: default, namespace: {NAMESPACE}}}
spec: {{duplicateWindow: PT2M}}
""" + "".join(f"""---
apiVersion: ripple.dev/v1alpha1
kind: EventSource
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  sink: {{ref: {{kind: Broker, name: default}}}}
  webhook: {{eventType: com.example.bench{signature}}}
""" for name, signature in (
    ("open", ""),
    ("github", ", signature: {scheme: github, secretRef: {name: hooks, key: key}}"),
    ("stripe", ", signature: {scheme: stripe, secretRef: {name: hooks, key: key}}"),
    ("hmac", ", signature: {scheme: hmac-sha256, secretRef: {name: hooks, key: key}}"),
))


# --- the client process ---------------------------------------------------------------------------------------


def request(kind: str, ident: str, filler: bytes) -> tuple[bytes, dict[str, str]]:
    """One request as its sender makes it: a unique body (the id inside) and the headers that sign it."""
    key = SECRET.encode()
    if kind == "stripe":
        body = b'{"id":"evt_' + ident.encode() + b'","type":"checkout.session.completed","data":' + filler + b"}"
        t = str(int(time.time()))
        signature = hmac.new(key, t.encode() + b"." + body, hashlib.sha256).hexdigest()
        return body, {"Content-Type": "application/json", "Stripe-Signature": f"t={t},v1={signature}"}
    body = b'{"id":"' + ident.encode() + b'","repository":{"full_name":"acme/shop"},"data":' + filler + b"}"
    headers = {"Content-Type": "application/json"}
    if kind == "ingress":
        headers |= {"ce-specversion": "1.0", "ce-id": ident, "ce-source": "/bench", "ce-type": "com.example.bench"}
    elif kind == "open":
        headers["Idempotency-Key"] = ident
    elif kind == "github":
        signature = hmac.new(key, body, hashlib.sha256).hexdigest()
        headers |= {"X-GitHub-Event": "push", "X-GitHub-Delivery": ident, "X-Hub-Signature-256": f"sha256={signature}"}
    else:
        headers["X-Ripple-Signature"] = hmac.new(key, body, hashlib.sha256).hexdigest()
    return body, headers


async def client(config: dict[str, Any]) -> dict[str, Any]:
    url, kind, prefix = config["url"], config["kind"], config["prefix"]
    filler = json_data(config["data_bytes"])
    counts = {"accepted": 0, "failed": 0}
    samples: list[str] = []
    stop = False

    async def worker(session: aiohttp.ClientSession, w: int) -> None:
        seq = 0
        while not stop:
            body, headers = request(kind, f"{prefix}-{w}-{seq}", filler)
            seq += 1
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    answer, status = await response.read(), response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                counts["failed"] += 1
                samples.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.01)
                continue
            if status == 202:
                counts["accepted"] += 1
            else:
                counts["failed"] += 1
                if len(samples) < 5:
                    samples.append(f"HTTP {status}: {answer[:200].decode(errors='replace')}")

    connector = aiohttp.TCPConnector(limit=config["concurrency"])
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        workers = [asyncio.create_task(worker(session, w)) for w in range(config["concurrency"])]
        await asyncio.sleep(config["warmup"])
        marker(MEASURE_START)
        t0, n0 = time.perf_counter(), counts["accepted"]
        await asyncio.sleep(config["duration"])
        t1, n1 = time.perf_counter(), counts["accepted"]
        marker(MEASURE_END)
        stop = True
        await asyncio.gather(*workers)
    return {"seconds": t1 - t0, "requests": n1 - n0, "accepted_total": counts["accepted"],
            "failed": counts["failed"], "error_samples": samples[:5]}


# --- the run --------------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, list[float]], int, int]:
    (tmp / "bench.yaml").write_text(MANIFEST)
    port = free_port(HOST)
    base = f"http://{HOST}:{port}"
    dev = Child("ripple dev", [sys.executable, "-m", "ripple", "dev", str(tmp / "bench.yaml"), "--host", HOST,
                               "--port", str(port), "--data-dir", str(tmp / "data"), "--pool-size", "0"],
                tmp / "dev.log")
    urls = {"ingress": f"{base}/{NAMESPACE}/default",
            **{kind: f"{base}/sources/{NAMESPACE}/{kind}" for kind in PHASES if kind != "ingress"}}
    rates: dict[str, list[float]] = {phase: [] for phase in PHASES}
    accepted = failed = 0
    await dev.start()
    try:
        await wait_http(dev, f"{base}/-/health")
        print(f"ripple dev pid {dev.pid} at {base}", flush=True)
        for round_no in range(1, args.rounds + 1):
            for phase in PHASES:
                config = {"kind": phase, "url": urls[phase], "prefix": f"r{round_no}-{phase}",
                          "concurrency": args.concurrency, "data_bytes": args.data_bytes, "warmup": args.warmup,
                          "duration": args.duration}
                result = await run_client(__file__, config)
                rate = result["requests"] / result["seconds"]
                rates[phase].append(rate)
                accepted += result["accepted_total"]
                failed += result["failed"]
                note = f", {result['failed']} FAILED: {result['error_samples']}" if result["failed"] else ""
                print(f"round {round_no} {phase:<8} {rate:>9,.0f} requests/s{note}", flush=True)
        state = json.loads((tmp / "data" / "state.json").read_text())
        nc = await nats.connect(state["nats"])
        try:
            info = await nc.jetstream().stream_info(subjects.stream_name(NAMESPACE, "default"))
        finally:
            await nc.close()
        stored = int(info.state.messages)
    finally:
        await dev.stop()
    if stored != accepted:
        print(f"MISMATCH: {accepted} requests answered 202 but the stream holds {stored} events", flush=True)
    return rates, accepted - stored + failed, stored


async def main_async(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    load = load_average()
    with tempfile.TemporaryDirectory(prefix="ripple-bench-webhook-") as tmp:
        rates, problems, stored = await run(args, Path(tmp))
    base = median(rates["ingress"])
    rows = [[phase, f"{median(rates[phase]):,.0f}", f"{ratio(median(rates[phase]), base) or 0:.2f}x",
             " ".join(f"{r:,.0f}" for r in rates[phase])] for phase in PHASES]
    print()
    print(table(["phase", "requests/s (median)", "vs ingress", "rounds"], rows))
    print(f"\nstored {stored:,} events; load before: {load}; {time.perf_counter() - started:.0f}s")
    emit_json({
        "benchmark": "webhook",
        "machine": machine(),
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "requests_per_second": {phase: num(median(rates[phase]), 1) for phase in PHASES},
        "vs_ingress": {phase: num(ratio(median(rates[phase]), base), 3) for phase in PHASES},
        "stored": stored,
        "ok": problems == 0,
    })
    return 0 if problems == 0 else 1


if __name__ == "__main__":
    if is_client_mode():
        client_entry(client)
    else:
        sys.exit(asyncio.run(main_async(parse_args())))
