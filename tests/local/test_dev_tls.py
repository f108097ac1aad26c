"""``ripple dev --tls``: the ingress serves HTTPS with a throw-away CA; a client that trusts it sends, one that does
not is refused before anything is sent, and deliveries (a Sequence entered over HTTPS too) still reach Functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from ripple._aio import free_port
from tests.processes import RippleProcess
from tests.support import eventually

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
  env: [{name: AUDIT_LOG, value: "%(log)s"}]
  source:
    inline: |
      import os
      def handle(event):
          with open(os.environ["AUDIT_LOG"], "a") as out:
              out.write(event["id"] + "\\n")
---
apiVersion: ripple.dev/v1alpha1
kind: Sequence
metadata: {name: audited, namespace: shop}
spec:
  broker: default
  steps: [{ref: {kind: Function, name: audit}}]
---
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {name: orders-to-audit, namespace: shop}
spec:
  broker: default
  filter: {attributes: {type: order.placed}}
  subscriber: {ref: {kind: Sequence, name: audited}}
"""


async def test_ripple_dev_tls_serves_https_with_a_throwaway_ca(tmp_path: Path):
    log = tmp_path / "audit.log"
    (tmp_path / "shop.yaml").write_text(MANIFESTS % {"log": log})
    port, data = free_port(), tmp_path / ".ripple"
    dev = await RippleProcess("dev", str(tmp_path / "shop.yaml"), "--port", str(port), "--pool-size", "0",
                              "--data-dir", str(data), "--tls").start()
    broker = f"https://127.0.0.1:{port}/shop/default"
    try:
        line = await dev.wait_for_line("tls: HTTPS with a throw-away CA", timeout=60)
        assert str(data / "tls" / "ca.crt") in line
        await dev.wait_for_line(f"broker ready: {broker}", timeout=60)

        untrusting = await RippleProcess("send", "--to", broker, "--type", "order.placed", "--source", "/shop",
                                         "--id", "not-sent").start()
        assert await untrusting.finished() == 1
        assert "certificate is not trusted" in untrusting.output() and "--cacert" in untrusting.output()

        trusting = await RippleProcess("send", "--to", broker, "--type", "order.placed", "--source", "/shop",
                                       "--id", "sent-over-tls", "--cacert", str(data / "tls" / "ca.crt")).start()
        assert await trusting.finished() == 0 and trusting.output().startswith("202")
        await eventually(lambda: log.exists() and "sent-over-tls" in log.read_text(), timeout=30)
        assert "not-sent" not in log.read_text()
        assert (data / "tls" / "tls.key").stat().st_mode & 0o077 == 0
    finally:
        await dev.interrupt()
        await dev.stop()
