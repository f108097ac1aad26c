"""Step 3 of the fulfilment Sequence: tell the customer, and reply ``order.confirmed`` for the broker."""


def send(event):
    order = event.data or {}
    print(f"confirmation sent to {order.get('customer')} for order {order.get('orderId')} "
          f"(total {order.get('total')}, payment {order.get('paymentId')})")
    return {"type": "order.confirmed", "source": "/functions/send-confirmation",
            "data": {"orderId": order.get("orderId"), "customer": order.get("customer"), "total": order.get("total")}}


def record(event):
    order = event.data or {}
    print(f"order {order.get('orderId')}: {event['type']} (root {event.get('rippleroot')})")
