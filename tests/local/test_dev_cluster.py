"""``ripple dev --nats-cluster 3``: a broker with three replicas on three local nats-servers keeps taking and
delivering events when the server leading its stream is killed; without a cluster such a broker is refused."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest

from ripple._aio import free_port
from ripple.events.http import encode_binary
from ripple.store import EventStore, subjects
from tests.processes import RippleProcess
from tests.support import event, eventually, subscriber

pytestmark = pytest.mark.e2e

MANIFEST = """
apiVersion: ripple.dev/v1alpha1
kind: Broker
metadata: {{name: default}}
spec: {{replicas: 3}}
---
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {{name: all}}
spec:
  subscriber: {{uri: "{url}"}}
"""


async def test_a_replicated_broker_survives_the_loss_of_its_leader(tmp_path: Path):
    async with subscriber() as sub:
        (tmp_path / "broker.yaml").write_text(MANIFEST.format(url=sub.url))
        port, data = free_port(), tmp_path / "data"
        dev = await RippleProcess("dev", str(tmp_path / "broker.yaml"), "--nats-cluster", "3", "--port", str(port),
                                  "--data-dir", str(data)).start()
        try:
            await dev.wait_for_line("broker ready", timeout=60)
            nats_url = json.loads((data / "state.json").read_text())["nats"]
            assert nats_url.count(",") == 2
            store = await EventStore.connect(nats_url)
            try:
                info = await store.js.stream_info(subjects.stream_name("default", "default"))
                assert info.config.num_replicas == 3 and info.cluster is not None
                leader = info.cluster.leader
            finally:
                await store.close()
            url = f"http://127.0.0.1:{port}/default/default"
            async with aiohttp.ClientSession() as http:
                async def send(i: int) -> int:
                    headers, body = encode_binary(event(f"e{i}"))
                    async with http.post(url, data=body, headers=headers) as answer:
                        return answer.status

                assert [await send(i) for i in range(20)] == [202] * 20
                config = data / "nats-cluster" / str(leader) / "nats-server.conf"
                await asyncio.to_thread(subprocess.run, ["pkill", f"-{signal.SIGKILL.value}", "-f", str(config)],
                                        check=True)
                answers = []
                for i in range(20, 120):  # a producer that honours the 503's Retry-After gets every event in
                    answers.append(status := await send(i))
                    while status == 503:
                        await asyncio.sleep(0.2)
                        answers.append(status := await send(i))
                    assert status == 202, answers
                accepted = {f"e{i}" for i in range(120)}
            assert set(answers) <= {202, 503}
            await eventually(lambda: set(sub.ids()) >= accepted, timeout=60, interval=0.2)
        finally:
            await dev.stop()


async def test_a_broker_with_more_replicas_than_servers_is_refused_naming_the_field(tmp_path: Path):
    (tmp_path / "broker.yaml").write_text(MANIFEST.format(url="http://127.0.0.1:9/"))
    dev = await RippleProcess("dev", str(tmp_path / "broker.yaml"), "--port", str(free_port()), "--data-dir",
                              str(tmp_path / "data")).start()
    try:
        line = await dev.wait_for_line("spec.replicas", timeout=30)
        assert "Broker 'default/default': spec.replicas is 3, more than the 1 nats-server(s)" in line
        assert dev.process is not None
        assert await asyncio.wait_for(dev.process.wait(), 20) == 2
    finally:
        await dev.stop()
