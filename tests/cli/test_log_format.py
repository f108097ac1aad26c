"""``--log-format json`` on a real ``ripple dispatcher`` and ``ripple ingress``: every line they print parses as one
JSON object, and a delivery's line names its trigger, event, attempt, outcome and trace."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from ripple._aio import free_port
from ripple.events.extensions import stamp_arrival
from ripple.events.http import encode_binary
from tests.processes import RippleProcess
from tests.support import event, eventually, subscriber

pytestmark = pytest.mark.e2e

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
MANIFEST = """
apiVersion: ripple.dev/v1alpha1
kind: Broker
metadata: {{name: default, namespace: shop}}
---
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {{name: orders, namespace: shop}}
spec:
  subscriber: {{uri: "{url}"}}
  delivery: {{retry: 3, backoffDelay: PT0.1S}}
"""


def parsed_lines(process: RippleProcess) -> list[dict]:
    lines = [line for line in process.lines if line.strip()]
    return [json.loads(line) for line in lines]  # a line that is not JSON fails here, naming itself


async def test_a_dispatchers_json_lines_carry_the_deliverys_fields(tmp_path: Path, nats_server, store):
    def flaky(ev, attempt) -> web.StreamResponse:
        return web.Response(status=503 if attempt == 1 else 202)

    async with subscriber(flaky) as sub:
        (tmp_path / "trigger.yaml").write_text(MANIFEST.format(url=sub.url))
        dispatcher = await RippleProcess("dispatcher", str(tmp_path / "trigger.yaml"), "--nats", nats_server.url,
                                         "--log-format", "json", "--log-deliveries").start()
        try:
            await dispatcher.wait_for_line("dispatcher running 1 triggers")
            traced = event("order-1").with_attributes(traceparent=f"00-{TRACE}-00f067aa0ba902b7-01")
            await store.publish_event("shop", "default", stamp_arrival(traced))
            await sub.wait_for(2, timeout=30)
            await eventually(lambda: sum('"event_id"' in line for line in dispatcher.lines) >= 2, timeout=10)
        finally:
            await dispatcher.interrupt()
            await dispatcher.stop()
    lines = parsed_lines(dispatcher)
    assert {line["component"] for line in lines} == {"dispatcher"}
    deliveries = [line for line in lines if line.get("event_id") == "order-1"]
    print(json.dumps(deliveries[0], ensure_ascii=False))
    assert [(d["attempt"], d["status"], d["outcome"]) for d in deliveries] == [(1, 503, "retry"), (2, 202, "ack")]
    for delivery in deliveries:
        assert delivery["namespace"] == "shop" and delivery["broker"] == "default"
        assert delivery["trigger"] == "orders" and delivery["trace_id"] == TRACE
        assert delivery["level"] in ("info", "debug") and isinstance(delivery["latency_ms"], float)


async def test_an_ingress_prints_json_only(tmp_path: Path, nats_server, store):
    (tmp_path / "broker.yaml").write_text("apiVersion: ripple.dev/v1alpha1\nkind: Broker\nmetadata: {name: default}\n")
    port = free_port()
    ingress = await RippleProcess("ingress", str(tmp_path / "broker.yaml"), "--nats", nats_server.url,
                                  "--port", str(port), "--log-format", "json").start()
    try:
        await ingress.wait_for_line("ingress listening on")
        headers, body = encode_binary(event("e-1"))
        async with aiohttp.ClientSession() as http, \
                http.post(f"http://127.0.0.1:{port}/default/default", data=body, headers=headers) as response:
            assert response.status == 202
    finally:
        await ingress.interrupt()
        await ingress.stop()
    lines = parsed_lines(ingress)
    assert any(line["message"].startswith("ingress listening on") and line["component"] == "ingress"
               for line in lines)
