"""The settle rules: what to do with an event after one delivery attempt. Pure functions, no I/O.

``2xx`` acks; retryable failures (connection errors and timeouts, ``404``, ``408``, ``409``, ``429``, ``5xx``)
are retried after the trigger's backoff (or the subscriber's ``Retry-After``, capped) until ``retry`` is used up
or the event is older than ``maxEventAge``; everything else, and exhaustion, goes to the dead letter.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from ripple.api.durations import seconds
from ripple.api.models import DeliverySpec, backoff

__all__ = [
    "CONNECTION_ERROR",
    "RETRYABLE_STATUSES",
    "Action",
    "Decision",
    "DeliveryPolicy",
    "decide",
    "is_retryable",
    "is_success",
    "parse_retry_after",
]

CONNECTION_ERROR = 0
"""The status recorded when no HTTP answer came back (refused, reset, timed out)."""
RETRYABLE_STATUSES = frozenset({404, 408, 409, 429})


class Action(enum.Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True)
class DeliveryPolicy:
    """A trigger's ``delivery`` compiled once: durations in seconds, read on every attempt without parsing."""

    retry: int
    backoff_policy: Literal["linear", "exponential"]
    backoff_delay: float
    timeout: float
    retry_after_max: float
    max_event_age: float | None
    structured: bool
    concurrency: int

    @classmethod
    def from_spec(cls, spec: DeliverySpec) -> DeliveryPolicy:
        return cls(
            retry=spec.retry,
            backoff_policy=spec.backoff_policy,
            backoff_delay=seconds(spec.backoff_delay),
            timeout=seconds(spec.timeout),
            retry_after_max=seconds(spec.retry_after_max),
            max_event_age=None if spec.max_event_age is None else seconds(spec.max_event_age),
            structured=spec.format == "json",
            concurrency=spec.concurrency,
        )

    def backoff(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` (1 for the first retry)."""
        return backoff(self.backoff_delay, self.backoff_policy, retry_number)


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float = 0.0
    """Seconds to wait before the next attempt (``RETRY`` only)."""
    reason: str = ""


def is_success(status: int) -> bool:
    return 200 <= status < 300


def is_retryable(status: int) -> bool:
    return status == CONNECTION_ERROR or status in RETRYABLE_STATUSES or 500 <= status < 600


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def decide(
    delivery: DeliveryPolicy | DeliverySpec,
    *,
    status: int,
    attempt: int,
    retry_after: float | None = None,
    event_age: float | None = None,
) -> Decision:
    """Settle one attempt. ``attempt`` counts from 1; ``retry`` attempts may follow the first."""
    policy = delivery if isinstance(delivery, DeliveryPolicy) else DeliveryPolicy.from_spec(delivery)
    if is_success(status):
        return Decision(Action.ACK)
    if not is_retryable(status):
        return Decision(Action.DEAD_LETTER, reason=f"status {status} is not retryable")
    if attempt > policy.retry:
        return Decision(Action.DEAD_LETTER, reason=f"retries exhausted after {attempt} attempts")
    delay = policy.backoff(attempt)
    if retry_after is not None and status in (429, 503):
        delay = min(retry_after, policy.retry_after_max)
    if policy.max_event_age is not None and event_age is not None:
        if event_age + delay > policy.max_event_age:
            return Decision(Action.DEAD_LETTER, reason=f"event older than maxEventAge ({policy.max_event_age:g}s)")
    return Decision(Action.RETRY, delay=delay, reason=f"status {status}, retry {attempt} of {policy.retry}")
