"""Step 2 of the fulfilment Sequence: reserve each item in a stock table, or reject the order.

The table lives in SQLite (``STOCK_DB``, created with sample stock on first use). A reservation is keyed by the
step's event id, which Ripple keeps the same when a step runs again after a crash, so a redelivered order is
never reserved twice.
"""

import os
import sqlite3
import tempfile
from pathlib import Path

from ripple.functions import Reject

SAMPLE_STOCK = {"book": 10, "lamp": 2, "mug": 25}


def _db():
    path = os.environ.get("STOCK_DB") or str(Path(tempfile.gettempdir()) / "ripple-order-fulfilment-stock.sqlite")
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, available INTEGER NOT NULL)")
    conn.execute("CREATE TABLE IF NOT EXISTS reservations (event_id TEXT PRIMARY KEY, order_id TEXT NOT NULL)")
    conn.executemany("INSERT OR IGNORE INTO stock VALUES (?, ?)", SAMPLE_STOCK.items())
    return conn


def reserve(event):
    order = event.data or {}
    conn = _db()
    try:
        conn.execute("BEGIN IMMEDIATE")
        seen = conn.execute("SELECT 1 FROM reservations WHERE event_id = ?", (event["id"],)).fetchone()
        if seen is None:
            for item in order.get("items") or []:
                sku, wanted = item.get("sku"), int(item.get("quantity", 1))
                row = conn.execute("SELECT available FROM stock WHERE sku = ?", (sku,)).fetchone()
                if row is None or row[0] < wanted:
                    conn.execute("ROLLBACK")
                    raise Reject(f"out of stock: {sku} (wanted {wanted}, have {0 if row is None else row[0]})")
                conn.execute("UPDATE stock SET available = available - ? WHERE sku = ?", (wanted, sku))
            conn.execute("INSERT INTO reservations VALUES (?, ?)", (event["id"], str(order.get("orderId"))))
        conn.execute("COMMIT")
    finally:
        conn.close()
    print(f"inventory reserved for order {order.get('orderId')}")
    return {"type": "inventory.reserved", "source": "/functions/update-inventory", "data": order}
