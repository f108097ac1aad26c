"""EventPolicies in local mode: ``ripple dev`` with a policy and its Secret refuses an anonymous POST (401), takes
the token's holder (``ripple send --token``), and a policy whose Secret is missing stops it before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from ripple._aio import free_port
from tests.processes import RippleProcess

pytestmark = pytest.mark.e2e

MANIFESTS = """
apiVersion: ripple.dev/v1alpha1
kind: Broker
metadata: {name: default, namespace: shop}
---
apiVersion: v1
kind: Secret
metadata: {name: partner, namespace: shop}
stringData: {token: partner-7f3a9c2e1b8d4f60}
---
apiVersion: ripple.dev/v1alpha1
kind: EventPolicy
metadata: {name: partners, namespace: shop}
spec:
  from:
    - token: {secretRef: {name: partner, key: token}}
"""


async def test_ripple_dev_guards_a_broker_an_event_policy_names(tmp_path: Path):
    (tmp_path / "shop.yaml").write_text(MANIFESTS)
    port = free_port()
    dev = await RippleProcess("dev", str(tmp_path / "shop.yaml"), "--port", str(port),
                              "--data-dir", str(tmp_path / ".ripple"), "--pool-size", "0").start()
    url = f"http://127.0.0.1:{port}/shop/default"
    try:
        await dev.wait_for_line("broker ready", timeout=60)
        anonymous = await RippleProcess("send", "--to", url, "--type", "order.placed", "--source", "/shop").start()
        assert await anonymous.finished() == 1 and anonymous.output().startswith("401 ")
        (tmp_path / "token").write_text("partner-7f3a9c2e1b8d4f60\n")
        allowed = await RippleProcess("send", "--to", url, "--type", "order.placed", "--source", "/shop",
                                      "--token", f"@{tmp_path / 'token'}").start()
        assert await allowed.finished() == 0 and allowed.output().startswith("202")
    finally:
        await dev.interrupt()
        await dev.stop()


async def test_a_policy_whose_secret_is_missing_stops_ripple_dev(tmp_path: Path):
    (tmp_path / "shop.yaml").write_text(MANIFESTS.replace("name: partner, namespace", "name: other, namespace"))
    dev = await RippleProcess("dev", str(tmp_path / "shop.yaml"), "--port", str(free_port()),
                              "--data-dir", str(tmp_path / ".ripple"), "--pool-size", "0").start()
    assert await dev.finished() == 2
    assert "spec.from[0].token.secretRef: Secret 'partner' has no key 'token'" in dev.output()
