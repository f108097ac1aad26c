"""Reading and redriving a broker's dead-letter stream (``ripple dlq list|show|redrive``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats.js.errors

from ripple.events.extensions import ERROR_EXTENSIONS, ERROR_TRIGGER, stamp_arrival
from ripple.events.model import CloudEvent
from ripple.store import subjects
from ripple.store.jetstream import EventStore, dedup_id

__all__ = ["DeadLetter", "dead_letters", "get_dead_letter", "redrive"]


@dataclass(frozen=True)
class DeadLetter:
    sequence: int
    trigger: str
    """``namespace/name`` of the trigger that could not deliver the event."""
    event: CloudEvent
    """The event with its ``rippleerror*`` extensions."""

    @property
    def original(self) -> CloudEvent:
        """The event as it was before it failed: the error extensions removed."""
        return self.event.with_attributes(**dict.fromkeys(ERROR_EXTENSIONS))


async def dead_letters(
    store: EventStore, namespace: str, broker: str, *, start: int = 1, limit: int | None = None
) -> AsyncIterator[DeadLetter]:
    """The dead letters in the broker's stream, oldest first, from sequence ``start``."""
    stream = subjects.dead_letter_stream_name(namespace, broker)
    (every,) = subjects.dead_letter_subjects(namespace, broker)
    seq, count = start, 0
    while limit is None or count < limit:
        try:
            raw = await store.js.get_msg(stream, seq, subject=every, next=True)
        except nats.js.errors.NotFoundError:
            return
        event = CloudEvent.from_json_bytes(raw.data or b"{}")
        yield DeadLetter(raw.seq or seq, str(event.get(ERROR_TRIGGER, "")), event)
        seq, count = (raw.seq or seq) + 1, count + 1


async def get_dead_letter(store: EventStore, namespace: str, broker: str, sequence: int) -> DeadLetter:
    stream = subjects.dead_letter_stream_name(namespace, broker)
    raw = await store.js.get_msg(stream, sequence)
    event = CloudEvent.from_json_bytes(raw.data or b"{}")
    return DeadLetter(sequence, str(event.get(ERROR_TRIGGER, "")), event)


async def redrive(store: EventStore, namespace: str, broker: str, letter: DeadLetter, *, trigger: str | None) -> None:
    """Send the original event back to the broker (every trigger) or to one trigger, then drop the dead letter.

    The message id names the dead letter so that the broker's duplicate window does not swallow the resend.
    """
    event = stamp_arrival(letter.original)
    if trigger is None:
        subject = subjects.event_subject(namespace, broker, event.type)
    else:
        subject = subjects.redrive_subject(namespace, broker, trigger)
    await store.publish(subject, event, msg_id=f"redrive:{letter.sequence}:{dedup_id(event)}")
    await store.js.delete_msg(subjects.dead_letter_stream_name(namespace, broker), letter.sequence)
