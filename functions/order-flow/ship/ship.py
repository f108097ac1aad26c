"""Ships validated orders. Orders for the customer "nobody" fail, to show retries and dead letters."""

import os


async def handle(event):
    order = event.data
    if order.get("customer") == "nobody":
        raise ValueError(f"no address for order {order['orderId']}")
    warehouse = os.environ.get("WAREHOUSE", "main")
    print(f"shipping order {order['orderId']} (total {order['total']}) from warehouse {warehouse}")
