"""Signed deliveries in local mode: with ``--delivery-auth required`` (the cluster's default) a Function runs for a
trigger's delivery and for a webhook source's, and refuses a direct call with 401."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from ripple._aio import free_port
from ripple.events.http import encode_binary
from tests.processes import RippleProcess
from tests.support import event, eventually

pytestmark = pytest.mark.e2e

MANIFESTS = """
apiVersion: ripple.dev/v1alpha1
kind: Broker
metadata: {name: default, namespace: shop}
---
apiVersion: ripple.dev/v1alpha1
kind: Function
metadata: {name: audit, namespace: shop}
spec:
  handler: audit:handle
  scale: {minScale: 1}
  env: [{name: AUDIT_LOG, value: "%(log)s"}]
  source:
    inline: |
      import os
      def handle(event):
          with open(os.environ["AUDIT_LOG"], "a") as out:
              out.write(event["id"] + "\\n")
---
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {name: audit-orders, namespace: shop}
spec:
  broker: default
  subscriber: {ref: {kind: Function, name: audit}}
---
apiVersion: ripple.dev/v1alpha1
kind: EventSource
metadata: {name: hooks, namespace: shop}
spec:
  webhook: {}
  sink: {ref: {kind: Function, name: audit}}
"""


def runtime_port(dev_pid: int) -> int:
    """The port of the Function's runtime: the child of ``ripple dev`` started with ``function serve``."""
    for task in Path(f"/proc/{dev_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"serve" in argv and b"--port" in argv:
                return int(argv[argv.index(b"--port") + 1])
    raise AssertionError("no function runtime among ripple dev's children")


async def test_only_deliveries_invoke_a_function_when_tokens_are_required(tmp_path: Path):
    log = tmp_path / "audit.log"
    (tmp_path / "shop.yaml").write_text(MANIFESTS % {"log": log})
    port = free_port()
    dev = await RippleProcess("dev", str(tmp_path / "shop.yaml"), "--port", str(port), "--pool-size", "0",
                              "--data-dir", str(tmp_path / ".ripple"), "--delivery-auth", "required").start()
    try:
        await dev.wait_for_line("broker ready", timeout=60)
        send = await RippleProcess("send", "--to", f"http://127.0.0.1:{port}/shop/default", "--type", "order.placed",
                                   "--source", "/shop", "--id", "through-the-trigger").start()
        assert await send.finished() == 0
        headers, body = encode_binary(event("through-the-webhook", type="hook.called"))
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/sources/shop/hooks", data=body,
                                    headers=headers) as response:
                assert response.status in (200, 202), await response.text()
            await eventually(lambda: log.exists() and "through-the-webhook" in log.read_text(), timeout=30)
            await eventually(lambda: "through-the-trigger" in log.read_text(), timeout=30)

            function = f"http://127.0.0.1:{runtime_port(dev.process.pid)}/"  # type: ignore[union-attr]
            headers, body = encode_binary(event("straight-to-the-pod"))
            async with session.post(function, data=body, headers=headers) as response:
                assert response.status == 401
                assert "through a trigger" in json.loads(await response.text())["error"]
            async with session.get(f"http://127.0.0.1:{port}/.well-known/jwks.json") as response:
                keys = (await response.json())["keys"]
                assert keys and all(key["kty"] == "OKP" and "d" not in key for key in keys)
        assert "straight-to-the-pod" not in log.read_text()
    finally:
        await dev.interrupt()
        await dev.stop()
