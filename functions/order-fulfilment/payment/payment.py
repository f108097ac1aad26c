"""Step 1 of the fulfilment Sequence, and its compensation.

``authorize`` charges the order's card (a declined card is rejected: retrying will not make it pass) and replies
``payment.authorized``. ``cancel`` is step 1's ``onError``: the order is cancelled without a charge. ``refund``
is step 2's ``onError``: the stock could not be reserved, so the charge is refunded and the order cancelled.
"""

import base64
import json

from ripple.functions import Reject


def _order(event):
    return event.data or {}


def _total(order):
    return round(sum(item.get("price", 0) * item.get("quantity", 1) for item in order.get("items") or []), 2)


def authorize(event):
    order = _order(event)
    if not order.get("items"):
        raise Reject(f"order {order.get('orderId')} has no items")
    if order.get("card") == "declined":
        raise Reject(f"card declined for order {order.get('orderId')}")
    total = _total(order)
    print(f"payment authorized for order {order.get('orderId')}: {total}")
    return {"type": "payment.authorized", "source": "/functions/validate-payment",
            "data": {**order, "total": total, "paymentId": f"pay-{order.get('orderId')}"}}


def _cancelled(event, why, refunded):
    order = _order(event)
    reason = _why(event)
    print(f"order {order.get('orderId')} cancelled ({why}; refunded: {refunded}): {reason}")
    return {"type": "order.cancelled", "source": "/functions/compensation",
            "data": {"orderId": order.get("orderId"), "customer": order.get("customer"), "why": why,
                     "refunded": refunded, "reason": reason}}


def _why(event):
    """What the failed step answered (its body is in ``rippleerrordata``), else Ripple's reason."""
    try:
        return json.loads(base64.b64decode(event.get("rippleerrordata") or ""))["error"]
    except (ValueError, KeyError, TypeError):
        return event.get("rippleerrorreason") or "unknown"


def cancel(event):
    return _cancelled(event, "payment declined", False)


def refund(event):
    return _cancelled(event, "out of stock", True)
