"""JetStream's max_deliver as a backstop: a message it gives up on is read back and kept as a dead letter."""

from __future__ import annotations

from ripple.events.extensions import ERROR_REASON, stamp_arrival
from ripple.store import subjects
from ripple.store.jetstream import MAX_DELIVER_SLACK
from tests.dispatch.test_delivery import letters
from tests.support import event, eventually


async def test_a_message_never_settled_ends_as_a_dead_letter(store, dispatcher):
    # A handler that dies on the event each time (a crash, an OOM kill) never settles it: JetStream redelivers
    # it until max_deliver, then advises; the dispatcher's advisory watch keeps it as a dead letter.
    consumer = await store.ensure_trigger_consumer("default", "default", "crashy", types=None, ack_wait=30, retry=0)
    await dispatcher.apply([])
    await store.publish_stored(subjects.routed_subject("default", "default", "crashy"),
                               stamp_arrival(event("doomed")).to_json_bytes(), {"Nats-Msg-Id": "doomed"})
    subscription = await store.js.pull_subscribe_bind(consumer, subjects.stream_name("default", "default"))
    deliveries = 0
    for _ in range(1 + MAX_DELIVER_SLACK + 3):
        try:
            (msg,) = await subscription.fetch(batch=1, timeout=0.5)
        except TimeoutError:
            break
        deliveries += 1
        await msg.nak()
    assert deliveries == 1 + MAX_DELIVER_SLACK
    (letter,) = await eventually(lambda: letters(store))
    assert letter.event.id == "doomed" and letter.trigger == "default/crashy"
    assert "max_deliver" in letter.event[ERROR_REASON]
    assert dispatcher.backstop_dead_letters == 1
