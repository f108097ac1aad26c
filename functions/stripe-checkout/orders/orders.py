"""Marks an order paid when its Stripe checkout session completes.

The order id travels in the session's ``client_reference_id`` (set when the checkout was created). Stripe may
deliver an event more than once; the broker stores it once by its id, and marking paid is idempotent anyway.
"""

PAID: dict[str, str] = {}


async def handle(event):
    session = event.data["data"]["object"]
    order = session.get("client_reference_id")
    if not order:
        raise ValueError(f"checkout session {session.get('id')} names no order (client_reference_id)")
    if session.get("payment_status") != "paid":
        print(f"order {order}: checkout completed, payment {session.get('payment_status')}; not marked paid")
        return
    first = order not in PAID
    PAID[order] = event["id"]
    print(f"order {order} marked paid ({session['amount_total'] / 100:.2f} {session['currency'].upper()}, "
          f"event {event['id']}{'' if first else ', again'})")
