"""Scale to zero and back on real runtime processes, with a real broker, as ``ripple dev`` runs them."""

from __future__ import annotations

import asyncio
import os
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from ripple._aio import free_port
from ripple.api.loading import load_manifests
from ripple.events.http import encode_binary
from ripple.local.dev import DevOptions, LocalRipple
from ripple.store.dlq import dead_letters
from tests.support import event, eventually

pytestmark = pytest.mark.e2e

HANDLER = '''
import os, time, json, pathlib

def handle(event):
    time.sleep(float(os.environ.get("WORK_SECONDS", "0")))
    with open(os.environ["OUT"], "a") as out:
        out.write(json.dumps({"id": event["id"], "pid": os.getpid(), "greeting": os.environ.get("GREETING")}) + "\\n")
'''


def manifest(scale: str, *, env: str = "", retry: int = 0, handler_module: str = "worker") -> str:
    return textwrap.dedent(f"""
        apiVersion: ripple.dev/v1alpha1
        kind: Function
        metadata: {{name: worker}}
        spec:
          handler: {handler_module}:handle
          source: {{path: code}}
          scale: {scale}
          env: [{{name: OUT, value: "{{out}}"}}{env}]
        ---
        apiVersion: ripple.dev/v1alpha1
        kind: Trigger
        metadata: {{name: work}}
        spec:
          subscriber: {{ref: {{kind: Function, name: worker}}}}
          delivery: {{retry: {retry}, backoffDelay: PT0.1S, timeout: PT10S}}
    """)


class Local:
    def __init__(self, ripple: LocalRipple, out: Path) -> None:
        self.ripple = ripple
        self.out = out
        self.key = ("default", "worker")
        self.url = ripple.ingress_url + "/default/default"

    @property
    def backend(self):
        return self.ripple.backend

    def delivered(self) -> list[dict]:
        import json

        return [json.loads(line) for line in self.out.read_text().splitlines()] if self.out.exists() else []

    async def send(self, *ids: str) -> None:
        async with aiohttp.ClientSession() as session:
            for event_id in ids:
                headers, body = encode_binary(event(event_id))
                async with session.post(self.url, data=body, headers=headers) as response:
                    assert response.status == 202

    async def dead_letters(self) -> list:
        assert self.ripple.store is not None
        return [letter async for letter in dead_letters(self.ripple.store, "default", "default")]


@pytest.fixture
async def run_local(tmp_path: Path) -> AsyncIterator:
    started: list[LocalRipple] = []

    async def start(text: str, *, pool_size: int = 0, activation_timeout: float = 30.0,
                    module: str = HANDLER, module_name: str = "worker") -> Local:
        (tmp_path / "code").mkdir(exist_ok=True)
        (tmp_path / "code" / f"{module_name}.py").write_text(module)
        out = tmp_path / "out.jsonl"
        (tmp_path / "app.yaml").write_text(text.replace("{out}", str(out)))
        options = DevOptions([tmp_path / "app.yaml"], port=free_port(), data_dir=tmp_path / "data",
                             pool_size=pool_size, activation_timeout=activation_timeout, scale_down_delay=0.3)
        ripple = LocalRipple(load_manifests(options.paths), options)
        started.append(ripple)
        await ripple.start()
        return Local(ripple, out)

    yield start
    for ripple in started:
        await ripple.stop()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_scales_from_zero_on_the_first_event_and_back_after_idle(run_local):
    local = await run_local(manifest("{idleTimeout: PT1S}"))
    assert local.backend.replicas(local.key) == 0 and local.backend.pids(local.key) == []
    await local.send("first")
    (delivery,) = await eventually(local.delivered)
    assert delivery["id"] == "first" and alive(delivery["pid"])
    assert local.backend.cold_starts[local.key].count == 1
    await eventually(lambda: local.backend.replicas(local.key) == 0, timeout=10)
    await eventually(lambda: not alive(delivery["pid"]), timeout=10)


async def test_a_burst_scales_up_to_max_scale_and_back_down(run_local):
    local = await run_local(manifest("{targetConcurrency: 1, maxScale: 3, idleTimeout: PT0.5S}",
                                     env=', {name: WORK_SECONDS, value: "0.3"}'))
    seen: set[int] = set()
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, local.backend.replicas(local.key))
            seen.update(local.backend.pids(local.key))
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        await local.send(*(f"burst-{i}" for i in range(24)))
        await eventually(lambda: len(local.delivered()) >= 24, timeout=60)
        assert peak == 3
        assert len({d["pid"] for d in local.delivered()}) >= 2  # the work really was spread
        await eventually(lambda: local.backend.replicas(local.key) == 0, timeout=15)
    finally:
        watcher.cancel()
    await eventually(lambda: not any(alive(pid) for pid in seen), timeout=10)
    assert sorted(d["id"] for d in local.delivered()) == sorted(f"burst-{i}" for i in range(24))


async def test_no_event_lost_or_dead_lettered_across_50_cycles_from_zero(run_local):
    local = await run_local(manifest("{idleTimeout: PT0.1S}"), pool_size=1)
    for cycle in range(50):
        await local.send(f"cycle-{cycle}")
        await eventually(lambda cycle=cycle: any(d["id"] == f"cycle-{cycle}" for d in local.delivered()), timeout=20)
        # The next event arrives the moment scale-down starts: replicas are being stopped.
        await eventually(lambda: local.backend.replicas(local.key) == 0, timeout=10, interval=0.005)
    await local.send("after")
    await eventually(lambda: any(d["id"] == "after" for d in local.delivered()), timeout=20)
    ids = [d["id"] for d in local.delivered()]
    assert sorted(set(ids)) == sorted([f"cycle-{c}" for c in range(50)] + ["after"])
    assert await local.dead_letters() == []
    stats = local.ripple.dispatcher.stats()["default/work"]
    assert stats["dead_lettered"] == 0 and stats["retried"] == 0
    assert local.backend.cold_starts[local.key].count >= 50


async def test_a_function_that_never_becomes_ready_follows_retry_and_dead_letter(run_local):
    broken = "raise ImportError('the dependency is missing')\n"
    local = await run_local(manifest("{idleTimeout: PT1S}", retry=1), activation_timeout=5, module=broken)
    await local.send("doomed")
    (letter,) = await eventually(local.dead_letters, timeout=30)
    assert letter.event.id == "doomed" and letter.event["rippleerrorcode"] == 0
    stats = local.ripple.dispatcher.stats()["default/work"]
    assert stats["retried"] == 1 and stats["dead_lettered"] == 1


async def test_min_scale_one_never_scales_to_zero(run_local):
    local = await run_local(manifest("{minScale: 1, idleTimeout: PT0.2S}"))
    await eventually(lambda: local.backend.endpoints(local.key))
    pids = local.backend.pids(local.key)
    await local.send("kept")
    await eventually(local.delivered)
    await asyncio.sleep(1.5)
    assert local.backend.replicas(local.key) == 1 and local.backend.pids(local.key) == pids
    assert local.backend.cold_starts[local.key].count == 0  # it never had to wake up


async def test_warm_pool_specializes_with_the_functions_code_and_env(run_local):
    local = await run_local(manifest("{idleTimeout: PT30S}", env=', {name: GREETING, value: "hej"}'), pool_size=1)
    pool = local.backend.pool
    assert pool is not None
    await eventually(lambda: pool._idle)
    pooled_pid = pool._idle[0].pid
    await local.send("warm")
    (delivery,) = await eventually(local.delivered)
    assert delivery == {"id": "warm", "pid": pooled_pid, "greeting": "hej"}
    await eventually(lambda: pool._idle and pool._idle[0].pid != pooled_pid)
