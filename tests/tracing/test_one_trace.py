"""One event's spans form one trace across processes: a producer's ``traceparent`` in, spans out of a real
``ripple ingress``, ``ripple dispatcher`` and ``ripple function`` (each its own process), exported over OTLP/HTTP
to a receiver that is a process of its own; the reply and the dead letter stay in the same trace."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from ripple._aio import free_port
from ripple.events.http import encode_binary
from ripple.store.dlq import dead_letters
from ripple.tracing import trace_id_of
from tests.processes import RippleProcess
from tests.support import event, eventually, subscriber

pytestmark = pytest.mark.e2e

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN = "00f067aa0ba902b7"
MANIFEST = """
apiVersion: ripple.dev/v1alpha1
kind: Broker
metadata: {{name: default, namespace: shop}}
---
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {{name: validate, namespace: shop}}
spec:
  filter: {{attributes: {{type: order.placed}}}}
  subscriber: {{uri: "{function}"}}
---
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {{name: audit, namespace: shop}}
spec:
  filter: {{attributes: {{type: order.validated}}}}
  subscriber: {{uri: "{audit}"}}
  delivery: {{retry: 1, backoffDelay: PT0.1S}}
"""
HANDLER = """
def handle(event):
    return {"type": "order.validated", "source": "/validate", "data": {"order": event.data["order"]}}
"""


def otel_env(port: int) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_BSP_SCHEDULE_DELAY": "100"}


def read_spans(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("carrier", ["traceparent", "ce-traceparent"])
async def test_an_events_spans_form_one_trace_across_processes(carrier: str, tmp_path: Path, nats_server, store):
    """Sent as the request's W3C header, the producer's context is the ingress span's parent and the event is
    stored in the ingress span's context; sent as the event's extension, the event keeps it."""
    spans_file, otlp_port = tmp_path / "spans.jsonl", free_port()
    receiver = await RippleProcess.python("-m", "tests.otlp_receiver", str(otlp_port), str(spans_file)).start()
    (tmp_path / "handler.py").write_text(HANDLER)
    function_port, ingress_port = free_port(), free_port()
    env = otel_env(otlp_port)
    processes = [receiver]
    try:
        await receiver.wait_for_line("otlp receiver listening")
        function = await RippleProcess("function", "serve", "--handler", "handler:handle", "--path", str(tmp_path),
                                       "--host", "127.0.0.1", "--port", str(function_port), env=env).start()
        processes.append(function)
        async with subscriber(lambda ev, attempt: web.Response(status=500)) as audit:
            (tmp_path / "flow.yaml").write_text(MANIFEST.format(function=f"http://127.0.0.1:{function_port}/",
                                                                audit=audit.url))
            dispatcher = await RippleProcess("dispatcher", str(tmp_path / "flow.yaml"), "--nats", nats_server.url,
                                             env=env).start()
            ingress = await RippleProcess("ingress", str(tmp_path / "flow.yaml"), "--nats", nats_server.url,
                                          "--port", str(ingress_port), env=env).start()
            processes += [dispatcher, ingress]
            await function.wait_for_line("listening on")
            await dispatcher.wait_for_line("dispatcher running 2 triggers")
            await ingress.wait_for_line("ingress listening on")
            headers, body = encode_binary(event("order-1", type="order.placed", data={"order": 7}))
            headers[carrier] = f"00-{TRACE}-{PRODUCER_SPAN}-01"
            async with aiohttp.ClientSession() as http, \
                    http.post(f"http://127.0.0.1:{ingress_port}/shop/default", data=body, headers=headers) as answer:
                assert answer.status == 202
            await audit.wait_for(2, timeout=30)
            letters = await eventually(lambda: _letters(store), timeout=30)
            names = ("ingress shop/default", "deliver shop/validate", "handle handler:handle",
                     "reply store shop/validate", "deliver shop/audit", "dead letter shop/audit")
            await eventually(lambda: {s["name"] for s in read_spans(spans_file)} >= set(names), timeout=30)
    finally:
        for process in reversed(processes):
            await process.interrupt()
            await process.stop()
    spans = read_spans(spans_file)
    for span in spans:
        print(span["service"], span["name"], span["span_id"], "<-", span["parent_id"])
    assert {s["trace_id"] for s in spans} == {TRACE}, "every span is in the producer's trace"
    by_name: dict[str, list[dict]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    (received,) = by_name["ingress shop/default"]
    (validate,) = by_name["deliver shop/validate"]
    (handled,) = by_name["handle handler:handle"]
    audits = by_name["deliver shop/audit"]
    assert received["service"] == "ripple-ingress" and received["kind"] == "server"
    assert received["parent_id"] == PRODUCER_SPAN
    assert validate["parent_id"] == (received["span_id"] if carrier == "traceparent" else PRODUCER_SPAN)
    assert validate["service"] == "ripple-dispatcher" and validate["kind"] == "client"
    assert handled["service"] == "ripple-function" and handled["parent_id"] == validate["span_id"]
    # The reply was made in the handler's span: what it caused hangs below it.
    assert by_name["reply store shop/validate"][0]["parent_id"] == handled["span_id"]
    assert [a["attributes"]["ripple.attempt"] for a in audits] == [1, 2]
    assert {a["parent_id"] for a in audits} == {handled["span_id"]}
    assert all(a["status"] == 2 for a in audits), "failed attempts are error spans"
    (letter,) = letters
    assert trace_id_of(letter.event.get("traceparent")) == TRACE


async def _letters(store) -> list:
    return [letter async for letter in dead_letters(store, "shop", "default")]

