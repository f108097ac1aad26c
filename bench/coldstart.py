"""Cold-start latency of local mode: from an event's 202 at the ingress to the function receiving it.

Run with ``python bench/coldstart.py [--cycles 20]``. For each configuration a fresh ``ripple dev`` data plane
(LocalRipple: embedded nats-server, ingress, dispatcher, autoscaler, local process backend) runs one Function
with ``idleTimeout: PT0.2S``; every cycle waits until the function is at zero replicas, sends one event and
measures the time from the ingress's 202 to the handler's first line (wall clock, same machine). Configurations:

* ``warm pool``: a pre-started runtime process is specialized (an import, not a process start);
* ``no pool``: a new runtime process is started;
* ``warm``: ``minScale: 1``, the function is already running — the baseline.

Prints a table, then, last, one JSON object with p50/p95 per configuration and the ratios to the warm baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from common import percentile

from ripple._aio import free_port
from ripple.api.loading import load_manifests
from ripple.events.http import encode_binary
from ripple.events.model import CloudEvent
from ripple.local.dev import DevOptions, LocalRipple

HANDLER = """
import os, time
def handle(event):
    with open(os.environ["OUT"], "a") as out:
        out.write(f"{event['id']} {time.time()}\\n")
"""

MANIFEST = """
apiVersion: ripple.dev/v1alpha1
kind: Function
metadata: {{name: probe}}
spec:
  handler: probe:handle
  source: {{path: code}}
  scale: {{minScale: {min_scale}, idleTimeout: PT0.2S}}
  env: [{{name: OUT, value: "{out}"}}]
---
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {{name: probe}}
spec:
  subscriber: {{ref: {{kind: Function, name: probe}}}}
  delivery: {{retry: 0}}
"""


async def measure(name: str, *, cycles: int, pool_size: int, min_scale: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "code").mkdir()
        (root / "code" / "probe.py").write_text(HANDLER)
        out = root / "received.txt"
        (root / "app.yaml").write_text(MANIFEST.format(min_scale=min_scale, out=out))
        options = DevOptions([root / "app.yaml"], port=free_port(), data_dir=root / "data", pool_size=pool_size,
                             scale_down_delay=0.1)
        ripple = LocalRipple(load_manifests(options.paths), options)
        await ripple.start()
        key = ("default", "probe")
        latencies: list[float] = []
        try:
            async with aiohttp.ClientSession() as session:
                for cycle in range(cycles):
                    await until(lambda: ripple.backend.replicas(key) == min_scale and
                                (min_scale == 0 or bool(ripple.backend.endpoints(key))))
                    if pool_size and ripple.backend.pool is not None:
                        await until(lambda: len(ripple.backend.pool._idle) >= pool_size)
                    await asyncio.sleep(0.05)
                    event_id = f"{name}-{cycle}"
                    headers, body = encode_binary(CloudEvent.create(
                        {"specversion": "1.0", "id": event_id, "source": "/bench", "type": "probe"}))
                    async with session.post(ripple.ingress_url + "/default/default", data=body,
                                            headers=headers) as response:
                        accepted_at = time.time()
                        assert response.status == 202, response.status
                    received = await until(lambda event_id=event_id: received_at(out, event_id), timeout=30)
                    latencies.append(received - accepted_at)
                    if min_scale == 0:
                        await until(lambda: ripple.backend.replicas(key) == 0)
        finally:
            await ripple.stop()
    return {
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_ms": round(percentile(sorted(latencies), 95) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "cycles": len(latencies),
    }


def received_at(out: Path, event_id: str) -> float | None:
    if not out.exists():
        return None
    for line in out.read_text().splitlines():
        seen, _, at = line.partition(" ")
        if seen == event_id:
            return float(at)
    return None


async def until(check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.005)
    raise TimeoutError("condition not met")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=20)
    args = parser.parse_args()
    results = {
        "warm_pool": await measure("pool", cycles=args.cycles, pool_size=1, min_scale=0),
        "no_pool": await measure("nopool", cycles=args.cycles, pool_size=0, min_scale=0),
        "warm": await measure("warm", cycles=args.cycles, pool_size=0, min_scale=1),
    }
    print(f"{'configuration':<14} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'cycles':>7}")
    for name, figures in results.items():
        print(f"{name:<14} {figures['p50_ms']:>8} {figures['p95_ms']:>8} {figures['max_ms']:>8} {figures['cycles']:>7}")
    warm = results["warm"]["p50_ms"]
    summary = {
        "bench": "coldstart",
        **{f"{name}_{k}": v for name, figures in results.items() for k, v in figures.items()},
        "ratio_pool_p50_vs_warm": round(results["warm_pool"]["p50_ms"] / warm, 2),
        "ratio_no_pool_p50_vs_warm": round(results["no_pool"]["p50_ms"] / warm, 2),
        "ratio_no_pool_vs_pool_p50": round(results["no_pool"]["p50_ms"] / results["warm_pool"]["p50_ms"], 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
