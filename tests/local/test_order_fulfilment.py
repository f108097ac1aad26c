"""The order-fulfilment Sequence of ``functions/order-fulfilment`` end to end through ``ripple dev``: an order that
completes every step, a declined card routed to its compensation, an item out of stock refunded, and where each
went, from ``ripple events trace`` and ``ripple status``."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from ripple._aio import free_port
from tests.processes import REPO, RippleProcess

pytestmark = pytest.mark.e2e
EXAMPLE = REPO / "functions" / "order-fulfilment"


def order(number: int, card: str, sku: str, quantity: int) -> str:
    return (f'{{"orderId": {number}, "customer": "c{number}", "card": "{card}", '
            f'"items": [{{"sku": "{sku}", "quantity": {quantity}, "price": 10}}]}}')


async def test_the_order_fulfilment_sequence(tmp_path: Path):
    example = tmp_path / "order-fulfilment"
    shutil.copytree(EXAMPLE, example)
    stock = tmp_path / "stock.sqlite"
    manifest = example / "order-fulfilment.yaml"
    manifest.write_text(manifest.read_text().replace('{name: STOCK_DB, value: ""}',
                                                     f'{{name: STOCK_DB, value: "{stock}"}}'))
    port, data = free_port(), tmp_path / "data"
    dev = await RippleProcess("dev", str(example), "--port", str(port), "--data-dir", str(data)).start()
    broker = f"http://127.0.0.1:{port}/shop/default"
    try:
        await dev.wait_for_line(f"sequence ready: http://127.0.0.1:{port}/shop/sequences/fulfil-order")
        for number, card, sku, quantity in ((1, "4242", "book", 2), (2, "declined", "book", 1),
                                            (3, "4242", "lamp", 5)):
            sent = await RippleProcess("send", "--to", broker, "--type", "order.placed", "--source", "/shop",
                                       "--id", f"order-{number}", "--data", order(number, card, sku, quantity)).start()
            await sent.wait_for_line("202")
            await sent.stop()
            await dev.wait_for_line(f"order {number}: order.", timeout=60)
        output = dev.output()
        assert "confirmation sent to c1 for order 1 (total 20" in output
        assert "order 2 cancelled (payment declined; refunded: False): card declined for order 2" in output
        assert "order 3 cancelled (out of stock; refunded: True): out of stock: lamp (wanted 5, have 2)" in output
        assert "order 1: order.confirmed (root order-1)" in output and "order 3: order.cancelled" in output
        with sqlite3.connect(stock) as db:
            assert dict(db.execute("SELECT sku, available FROM stock")) == {"book": 8, "lamp": 2, "mug": 25}

        trace = await RippleProcess("events", "trace", "order-3", "--data-dir", str(data)).start()
        await trace.wait_for_line("inventory (error)", timeout=20)
        await trace.stop()
        lines = trace.output().splitlines()
        assert [line.split()[3] for line in lines[1:]] == ["payment", "inventory", "inventory"]
        assert "to step inventory" in lines[1] and "failed: to onError" in lines[2] and "to broker" in lines[3]
        status = await RippleProcess("status", "--data-dir", str(data)).start()
        await status.wait_for_line("confirmation", timeout=20)
        await status.stop()
        rows = [line.split() for line in status.output().splitlines() if line.startswith("Sequence shop/fulfil-order")]
        # STEP, then PENDING IN-FLIGHT DELIVERED RETRIED DEAD-LETTERED ERROR-ROUTED ENDED
        counts = {" ".join(row[2:-7]): [int(n) for n in row[-7:]] for row in rows}
        assert counts == {"payment": [0, 0, 2, 0, 0, 1, 0], "payment (error)": [0, 0, 1, 0, 0, 0, 0],
                          "inventory": [0, 0, 1, 0, 0, 1, 0], "inventory (error)": [0, 0, 1, 0, 0, 0, 0],
                          "confirmation": [0, 0, 1, 0, 0, 0, 0]}, status.output()
    finally:
        await dev.stop()
