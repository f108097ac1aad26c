"""A source's delivery on its own: an event the sink refuses for its size is dead-lettered with its data cut to
what a dead letter can hold, not retried as a dead letter for ever."""

from __future__ import annotations

from ripple.api.models import DeliverySpec
from ripple.dispatch.client import DeliveryResult
from ripple.dispatch.policy import DeliveryPolicy
from ripple.events.extensions import ERROR_REASON
from ripple.events.model import CloudEvent
from ripple.sources.delivery import MAX_UNDECODABLE, SourceDelivery
from ripple.tracing import is_traceparent


class TooLarge:
    name = "broker default/default"

    def __init__(self) -> None:
        self.attempts = 0

    async def send(self, event: CloudEvent) -> DeliveryResult:
        self.attempts += 1
        return DeliveryResult(413, error="event too large")


async def test_a_too_large_event_is_dead_lettered_once_with_its_data_cut():
    kept: list[CloudEvent] = []

    async def keep(letter: CloudEvent) -> bool:
        if letter.data is not None and len(letter.data) > MAX_UNDECODABLE:
            return False  # as a stream refusing it would
        kept.append(letter)
        return True

    sink = TooLarge()
    delivery = SourceDelivery("default/rows", sink, DeliveryPolicy.from_spec(DeliverySpec()), keep=keep)
    event = CloudEvent.create({"specversion": "1.0", "id": "big", "source": "/s", "type": "t",
                               "datacontenttype": "text/plain"}, b"x" * (2 * MAX_UNDECODABLE))
    assert await delivery.deliver(event) is False
    (letter,) = kept
    assert sink.attempts == 1  # 413 is not retried
    assert letter.id == "big" and letter.data == b"x" * MAX_UNDECODABLE
    assert f"data cut to {MAX_UNDECODABLE} of {2 * MAX_UNDECODABLE} bytes" in str(letter[ERROR_REASON])


class Flaky:
    """Refuses the first two attempts (503), then accepts; keeps what each attempt carried."""

    name = "broker default/default"

    def __init__(self) -> None:
        self.sent: list[CloudEvent] = []

    async def send(self, event: CloudEvent) -> DeliveryResult:
        self.sent.append(event)
        return DeliveryResult(503 if len(self.sent) < 3 else 202)


async def test_a_source_event_starts_a_trace_that_every_retry_carries():
    async def no_wait(seconds: float) -> None:
        return None

    sink = Flaky()
    delivery = SourceDelivery("default/rows", sink, DeliveryPolicy.from_spec(DeliverySpec()), sleep=no_wait)
    event = CloudEvent.create({"specversion": "1.0", "id": "row-1", "source": "/s", "type": "t"}, None)
    assert await delivery.deliver(event) is True
    contexts = {e["traceparent"] for e in sink.sent}
    assert len(sink.sent) == 3 and len(contexts) == 1 and is_traceparent(contexts.pop())
    kept = CloudEvent.create({"specversion": "1.0", "id": "row-2", "source": "/s", "type": "t",
                              "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, None)
    assert (await delivery.send_once(kept)).status == 202
    assert sink.sent[-1]["traceparent"] == kept["traceparent"], "an upstream's context is kept"
