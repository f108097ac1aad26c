"""JetStream's max_deliver as a backstop: a message it gives up on is read back and kept as a dead letter."""

from __future__ import annotations

from ripple.events.extensions import ERROR_REASON, stamp_arrival
from ripple.store import subjects
from ripple.store.consumers import MAX_DELIVER_SLACK
from tests.dispatch.test_delivery import letters
from tests.support import event, eventually, trigger


async def exhaust_deliveries(store, name: str, event_id: str) -> int:
    """Take the event from the trigger's consumer and never settle it, as a handler that dies on it each time
    (a crash, an OOM kill) would, until JetStream stops redelivering it."""
    crashy = trigger(name, subscriber="http://127.0.0.1:9/", filters=[{"prefix": {"source": "/"}}],
                     delivery={"retry": 0})
    consumer = await store.ensure_trigger_consumer(crashy, ack_wait=30)
    await store.publish_stored(subjects.routed_subject("default", "default", name),
                               stamp_arrival(event(event_id)).to_json_bytes(), {"Nats-Msg-Id": event_id})
    subscription = await store.js.pull_subscribe_bind(consumer, subjects.stream_name("default", "default"))
    deliveries = 0
    for _ in range(1 + MAX_DELIVER_SLACK + 3):
        try:
            (msg,) = await subscription.fetch(batch=1, timeout=0.5)
        except TimeoutError:
            break
        deliveries += 1
        await msg.nak()
    return deliveries


async def test_an_advisory_sent_while_no_dispatcher_runs_is_handled_when_one_starts(store, dispatcher):
    await store.ensure_advisory_stream()  # what the first dispatcher start leaves behind
    assert await exhaust_deliveries(store, "crashy", "doomed") == 1 + MAX_DELIVER_SLACK
    assert await letters(store) == []
    await dispatcher.apply([])
    (letter,) = await eventually(lambda: letters(store))
    assert letter.event.id == "doomed" and "max_deliver" in letter.event[ERROR_REASON]


async def test_a_message_never_settled_ends_as_a_dead_letter(store, dispatcher):
    # JetStream redelivers an event no handler settles until max_deliver, then advises; the running
    # dispatcher's advisory watch keeps it as a dead letter.
    await dispatcher.apply([])
    assert await exhaust_deliveries(store, "crashy", "doomed") == 1 + MAX_DELIVER_SLACK
    (letter,) = await eventually(lambda: letters(store))
    assert letter.event.id == "doomed" and letter.trigger == "default/crashy"
    assert "max_deliver" in letter.event[ERROR_REASON]
    assert dispatcher.backstop_dead_letters == 1
