"""What a handler raises to choose its answer: an event that can never succeed, or one to try again later.

Any other exception is answered ``500``, which the trigger retries. :class:`Reject` is answered ``422``, which
the dispatcher does not retry: the event goes to the dead letter at once, with the message as its reason (a file
that is not CSV at all will not become CSV on the next attempt). :class:`RetryLater` is answered ``409`` (or
``503`` with ``Retry-After`` when it names a delay): retried after the trigger's backoff, never counted as a bug.
"""

from __future__ import annotations

__all__ = ["REJECTED", "RETRY_LATER", "Reject", "RetryLater"]

REJECTED = 422
RETRY_LATER = 409


class Reject(Exception):
    """This event cannot be handled, now or ever: dead-letter it (answered 422 with the message)."""


class RetryLater(Exception):
    """Not now: answered 409, or 503 with ``Retry-After`` when ``after`` (seconds) is given."""

    def __init__(self, message: str = "try again later", *, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after
