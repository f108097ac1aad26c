"""Checks a placed order and replies with ``order.validated`` or ``order.rejected``."""


def handle(event):
    order = event.data or {}
    items = order.get("items") or []
    total = sum(item.get("price", 0) * item.get("quantity", 1) for item in items)
    verdict = "order.validated" if items and total > 0 else "order.rejected"
    print(f"validated order {order.get('orderId')}: {verdict} (total {total})")
    return {
        "type": verdict,
        "source": "/functions/validate-order",
        "subject": event.get("subject") or str(order.get("orderId")),
        "data": {"orderId": order.get("orderId"), "total": total, "customer": order.get("customer")},
    }
