"""``ripple dev`` end to end on the example order flow, as a user runs it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ripple._aio import free_port
from tests.processes import REPO, RippleProcess

pytestmark = pytest.mark.e2e
EXAMPLE = REPO / "functions" / "order-flow"


def order(order_id: int, customer: str) -> str:
    return json.dumps({"orderId": order_id, "customer": customer, "items": [{"price": 12.5, "quantity": 2}]})


async def test_order_flow_replies_chain_and_dead_letters_reach_the_sink(tmp_path: Path):
    port = free_port()
    broker = f"http://127.0.0.1:{port}/shop/default"
    dev = await RippleProcess("dev", str(EXAMPLE), "--port", str(port), "--data-dir", str(tmp_path / "data")).start()
    try:
        await dev.wait_for_line(f"broker ready: {broker}")

        send = await RippleProcess("send", "--to", broker, "--type", "order.placed", "--source", "/shop",
                                   "--id", "order-1", "--data", order(1, "ada")).start()
        assert "202" in await send.wait_for_line("202")
        await dev.wait_for_line("shipping order 1 (total 25.0) from warehouse berlin")
        await dev.wait_for_line("shop/validate-placed-orders id=order-1 status=200 attempt=1")
        line = await dev.wait_for_line("shop/ship-validated-orders id=")
        assert "status=202 attempt=1" in line and "latency=" in line

        send = await RippleProcess("send", "--to", broker, "--type", "order.placed", "--source", "/shop",
                                   "--id", "order-2", "--mode", "structured", "--data", order(2, "nobody")).start()
        await send.wait_for_line("202")
        for attempt in (1, 2, 3):
            await dev.wait_for_line(f"status=500 attempt={attempt}")
        line = await dev.wait_for_line("dead letter: order.validated")
        assert "from shop/ship-validated-orders (status 500)" in line

        data_dir = str(tmp_path / "data")
        dlq = await RippleProcess("dlq", "--data-dir", data_dir, "--broker", "shop/default", "list").start()
        await dlq.wait_for_line("SEQ")
        assert await dlq.process.wait() == 0  # type: ignore[union-attr]
        assert "order.validated" not in dlq.output()  # the sink took it; the stream holds nothing

        status = await RippleProcess("status", "--data-dir", data_dir).start()
        await status.process.wait()  # type: ignore[union-attr]
        table = status.output()
        assert "FUNCTION" in table and "TRIGGER" in table
        ship = next(line for line in table.splitlines() if line.startswith("shop/ship-validated-orders"))
        assert ship.split()[3:6] == ["1", "2", "1"]  # delivered, retried, dead-lettered
        assert any(line.startswith("shop/ship-order") for line in table.splitlines())
        raw = await RippleProcess("status", "--data-dir", data_dir, "--json").start()
        await raw.process.wait()  # type: ignore[union-attr]
        functions = json.loads(raw.output())["functions"]
        assert functions["shop/validate-order"]["coldStarts"] == 1
        assert functions["shop/ship-order"]["ready"] == 1

        assert await dev.interrupt() == 0
        assert "ripple dev: stopping" in dev.output()
    finally:
        await dev.stop()


async def test_invalid_manifest_is_refused_naming_file_document_and_field(tmp_path: Path):
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: ripple.dev/v1alpha1\nkind: Broker\nmetadata: {name: default}\n---\n"
        "apiVersion: ripple.dev/v1alpha1\nkind: Trigger\nmetadata: {name: t}\n"
        "spec:\n  subscriber: {uri: 'http://127.0.0.1:1/'}\n  delivery: {retry: many}\n"
    )
    dev = await RippleProcess("dev", str(manifest), "--data-dir", str(tmp_path / "data")).start()
    assert await dev.process.wait() == 2  # type: ignore[union-attr]
    await dev.stop()
    message = dev.output()
    assert str(manifest) in message and "document 2" in message and "spec.delivery.retry" in message


def test_examples_are_importable_handlers():
    sys.path.insert(0, str(EXAMPLE / "validate"))
    try:
        import validate

        class Event(dict):
            data = {"orderId": 7, "customer": "x", "items": [{"price": 2, "quantity": 3}]}

        reply = validate.handle(Event(subject="7"))
        assert reply["type"] == "order.validated" and reply["data"]["total"] == 6
        Event.data = {"orderId": 8, "items": []}
        assert validate.handle(Event())["type"] == "order.rejected"
    finally:
        sys.path.remove(str(EXAMPLE / "validate"))
