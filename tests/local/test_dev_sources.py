"""``ripple dev`` with every kind of source local mode runs: a signed webhook, a schedule and a NATS subject, into
a broker and a Function, as a user runs it; and a Kubernetes source refused without a kubeconfig."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import nats
import pytest

from ripple._aio import free_port
from ripple.local.nats_server import NatsServer
from ripple.sources.signatures import hex_hmac
from tests.processes import REPO, RippleProcess

pytestmark = pytest.mark.e2e
SECRET = "gh-webhook-secret-7d1f"


def manifests(nats_url: str) -> str:
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: github, namespace: ci}}
stringData: {{secret: {SECRET}}}
---
apiVersion: ripple.dev/v1alpha1
kind: EventSource
metadata: {{name: github, namespace: ci}}
spec:
  sink: {{ref: {{kind: Broker, name: default}}}}
  webhook:
    path: /push
    signature: {{scheme: github, secretRef: {{name: github, key: secret}}}}
---
apiVersion: ripple.dev/v1alpha1
kind: EventSource
metadata: {{name: nightly, namespace: ci}}
spec:
  sink: {{ref: {{kind: Broker, name: default}}}}
  ceOverrides: {{extensions: {{team: build}}}}
  ping: {{schedule: "@every 1s", data: '{{"job": "nightly"}}'}}
---
apiVersion: ripple.dev/v1alpha1
kind: EventSource
metadata: {{name: builds, namespace: ci}}
spec:
  sink: {{ref: {{kind: Broker, name: default}}}}
  nats: {{url: "{nats_url}", subject: "builds.>"}}
---
apiVersion: ripple.dev/v1alpha1
kind: Function
metadata: {{name: log, namespace: ci}}
spec:
  handler: log:handle
  source:
    inline: |
      def handle(event):
          print(f"event {{event['type']}} id={{event['id']}} team={{event.get('team')}}", flush=True)
---
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {{name: everything, namespace: ci}}
spec:
  subscriber: {{ref: {{kind: Function, name: log}}}}
"""


async def test_every_local_source_kind_end_to_end(tmp_path: Path, nats_server: NatsServer):
    (tmp_path / "ci.yaml").write_text(manifests(nats_server.url))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = str(tmp_path / "data")
    dev = await RippleProcess("dev", str(tmp_path / "ci.yaml"), "--port", str(port), "--data-dir", data_dir).start()
    try:
        await dev.wait_for_line(f"source ready: ci/github webhook {base}/sources/ci/github/push")
        assert "source ready: ci/nightly ping" in await dev.wait_for_line("source ready: ci/nightly")
        assert (await dev.wait_for_line("source ready: ci/builds")).endswith("source ready: ci/builds nats")

        await dev.wait_for_line("event dev.ripple.sources.ping id=")
        assert "team=build" in await dev.wait_for_line("event dev.ripple.sources.ping id=")

        body = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "acme/shop"}}).encode()
        headers = {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": "11111111-2222",
                   "X-Hub-Signature-256": f"sha256={hex_hmac(SECRET.encode(), body)}"}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/sources/ci/github/push", data=body, headers=headers) as answer:
                assert answer.status == 202
        await dev.wait_for_line("event com.github.push id=11111111-2222")

        nc = await nats.connect(nats_server.url)
        await nc.publish("builds.done", b"ok", headers={"Nats-Msg-Id": "build-77"})
        await nc.flush()
        await nc.close()
        await dev.wait_for_line("event dev.ripple.sources.nats.message id=build-77")

        status = await RippleProcess("status", "--data-dir", data_dir).start()
        await status.process.wait()  # type: ignore[union-attr]
        table = status.output()
        rows = {line.split()[0]: line.split() for line in table.splitlines() if line.startswith("ci/")}
        assert rows["ci/github"][1:4] == ["webhook", "broker", "ci/default"] and rows["ci/github"][4] == "1"
        assert rows["ci/nightly"][1] == "ping" and int(rows["ci/nightly"][4]) >= 1
        assert rows["ci/builds"][1] == "nats" and rows["ci/builds"][4] == "1"
        assert SECRET not in dev.output()
        assert await dev.interrupt() == 0
    finally:
        await dev.stop()


async def test_a_kubernetes_source_without_a_kubeconfig_is_refused(tmp_path: Path):
    (tmp_path / "watch.yaml").write_text(
        "apiVersion: ripple.dev/v1alpha1\nkind: EventSource\nmetadata: {name: config}\nspec:\n"
        "  sink: {ref: {kind: Broker, name: default}}\n"
        "  kubernetes: {resources: [{apiVersion: v1, kind: ConfigMap}]}\n")
    env = {"HOME": str(tmp_path), "KUBECONFIG": ""}
    dev = await RippleProcess("dev", str(tmp_path / "watch.yaml"), "--port", str(free_port()), "--data-dir",
                              str(tmp_path / "data"), env=env).start()
    started = time.monotonic()
    assert await dev.process.wait() == 2  # type: ignore[union-attr]
    await dev.stop()
    assert "EventSource 'default/config': a Kubernetes source needs a kubeconfig" in dev.output()
    assert time.monotonic() - started < 30


async def test_the_stripe_example_as_the_readme_runs_it(tmp_path: Path):
    example = REPO / "functions" / "stripe-checkout"
    port = free_port()
    url = f"http://127.0.0.1:{port}/sources/shop/stripe/checkout"
    dev = await RippleProcess("dev", str(example), "--port", str(port), "--data-dir", str(tmp_path / "data")).start()
    try:
        await dev.wait_for_line(f"source ready: shop/stripe webhook {url}")
        for expected in ("HTTP/1.1 202", "HTTP/1.1 202", "HTTP/1.1 401"):  # twice signed, then a wrong secret
            secret = [] if expected.endswith("202") else [url, "whsec_wrong"]
            send = await asyncio.create_subprocess_exec(str(example / "send-sample.sh"), *(secret or [url]),
                                                        stdout=asyncio.subprocess.PIPE)
            out, _ = await send.communicate()
            assert out.decode().startswith(expected), out
        await dev.wait_for_line("order order-1042 marked paid (49.99 EUR, event evt_1PqExample0001)")
        await asyncio.sleep(1)
        assert dev.output().count("marked paid") == 1  # Stripe's redelivery is stored once
    finally:
        await dev.stop()
