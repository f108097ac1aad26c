"""Rate limits at the ingress: token buckets per broker and per sender, counted in events.

A request whose events the buckets cannot take is answered ``429 Too Many Requests`` with ``Retry-After`` (whole
seconds, at least 1) and nothing of it is stored; the message says which limit it met, the broker's or the
sender's. A bucket holds at most ``burst`` tokens and gains ``events_per_second`` of them each second; an event
costs one token, so a batch of 50 costs 50.

A batch larger than the burst is not refused for ever: it is taken once the bucket is full, and the bucket goes
into debt for the difference, which the sender then waits out. The average rate stays within the limit, and the
debt is bounded, because a batch is (``--max-batch``, :data:`~ripple.defaults.MAX_BATCH`).

A sender is who the broker's EventPolicies proved the sender to be (``token:<sha256>``, ``oidc:<issuer>#<sub>``,
``serviceaccount:<ns>/<name>``), else the client's address (an IPv6 address by its /64, which one host usually
holds whole). Senders' buckets are kept for the :data:`~ripple.defaults.RATE_LIMIT_SENDERS` senders seen last:
made-up identities cannot grow memory, at the price that a sender forgotten starts again with a full bucket (so a
client rotating through more addresses than that escapes its sender limit, never its broker's).

Limits are per ingress process: with N replicas behind a Service, a broker takes up to N times its limit.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Literal

from ripple.api.models import Broker
from ripple.defaults import MAX_BURST, MAX_EVENTS_PER_SECOND, RATE_LIMIT_SENDERS

__all__ = [
    "UNKNOWN_CLIENT",
    "LimitKind",
    "RateLimit",
    "RateLimiter",
    "RateSettings",
    "Throttled",
    "TokenBucket",
    "broker_rate",
    "client_sender",
    "parse_rate",
]

LimitKind = Literal["broker", "sender"]
UNKNOWN_CLIENT = "address:unknown"
"""The sender of a request whose client address cannot be read: all such requests share one bucket."""
BrokerLimits = Callable[[str, str], "RateLimit | None"]
"""(namespace, broker) → the broker's own limit (``Broker.spec.rateLimit``), ``None`` when it sets none."""


@dataclass(frozen=True)
class RateLimit:
    """One token bucket's shape."""

    events_per_second: float
    """Tokens the bucket gains per second: the sustained rate, in events."""
    burst: int
    """Tokens the bucket holds at most: the events that may arrive at once after a quiet spell."""

    def __post_init__(self) -> None:
        _check_rate(self.events_per_second)
        if self.burst < 1:
            raise ValueError(f"a rate limit's burst must be >= 1, got {self.burst}")
        if self.burst > MAX_BURST:
            raise ValueError(f"a rate limit's burst must be at most {MAX_BURST}, got {self.burst}")

    @classmethod
    def of(cls, events_per_second: float, burst: int | None = None) -> RateLimit:
        """A limit whose burst is, unless given, one second's worth."""
        _check_rate(events_per_second)
        return cls(events_per_second, burst if burst is not None else max(1, math.ceil(events_per_second)))

    def within(self, other: RateLimit) -> RateLimit:
        """The stricter of the two in each of rate and burst."""
        return RateLimit(min(self.events_per_second, other.events_per_second), min(self.burst, other.burst))

    def __str__(self) -> str:
        return f"{self.events_per_second:g} events per second (burst {self.burst})"


def _check_rate(events_per_second: float) -> None:
    if not 0 < events_per_second <= MAX_EVENTS_PER_SECOND:  # NaN fails this too
        raise ValueError(f"a rate limit's events per second must be > 0 and at most {MAX_EVENTS_PER_SECOND:g}, "
                         f"got {events_per_second}")


def parse_rate(text: str) -> RateLimit:
    """``RATE[:BURST]`` (events per second, and the burst, by default one second's worth); raise ``ValueError``."""
    rate_text, separated, burst_text = text.partition(":")
    try:
        return RateLimit.of(float(rate_text), int(burst_text) if separated else None)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"expected RATE[:BURST] (events per second, and a whole burst), got {text!r}: {exc}") from None


@dataclass(frozen=True)
class RateSettings:
    """The ingress's rate limits; ``None`` switches one off."""

    broker: RateLimit | None = None
    """Each broker's limit (a Broker's ``spec.rateLimit`` may set a stricter one for itself, or its own when this
    is off): what keeps one broker's producers from taking the whole ingress."""
    sender: RateLimit | None = None
    """Each sender's limit, over every broker it sends to: what keeps one producer from taking a whole broker."""
    max_senders: int = RATE_LIMIT_SENDERS
    """Senders' buckets kept at most, the least recently used forgotten first."""

    def __post_init__(self) -> None:
        if self.max_senders < 1:
            raise ValueError(f"max_senders must be >= 1, got {self.max_senders}")


@dataclass(frozen=True)
class Throttled:
    """Why a request is answered 429."""

    limit: LimitKind
    retry_after: int
    """Whole seconds (at least 1) after which the buckets that refused it can take it."""
    message: str


class TokenBucket:
    """Tokens refilled continuously up to ``burst``; may go into debt for a batch larger than the burst."""

    __slots__ = ("limit", "stamp", "tokens")

    def __init__(self, limit: RateLimit, now: float, tokens: float | None = None) -> None:
        self.limit = limit
        self.tokens = float(limit.burst) if tokens is None else min(tokens, float(limit.burst))
        self.stamp = now

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.stamp)  # a clock that steps back must not drain the bucket
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.events_per_second)
        self.stamp = now

    def wait(self, count: int) -> float:
        """Seconds (after the last refill) until ``count`` events may be taken: 0 for now. A count over the burst
        needs a full bucket."""
        missing = min(count, self.limit.burst) - self.tokens
        return max(0.0, missing / self.limit.events_per_second)

    def take(self, count: int) -> None:
        self.tokens -= count


class _Buckets:
    """Token buckets by key, the least recently used forgotten past ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def get(self, key: Hashable, limit: RateLimit, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(limit, now)
            while len(self._buckets) > self.size:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.refill(now)
            if bucket.limit != limit:  # the limit changed (a Broker's spec): keep no more than the new burst
                bucket = self._buckets[key] = TokenBucket(limit, now, bucket.tokens)
        return bucket


class RateLimiter:
    """The buckets of one ingress; :meth:`admit` answers one request."""

    def __init__(self, settings: RateSettings, *, broker_limits: BrokerLimits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.broker_limits = broker_limits
        self.clock = clock
        self._brokers = _Buckets(settings.max_senders)  # only brokers that exist get here, but they come and go
        self._senders = _Buckets(settings.max_senders)

    @property
    def senders(self) -> int:
        """Senders whose buckets are kept."""
        return len(self._senders)

    def broker_limit(self, namespace: str, broker: str) -> RateLimit | None:
        """The limit that applies to a broker: the installation's, made stricter by the broker's own."""
        own = self.broker_limits(namespace, broker) if self.broker_limits is not None else None
        default = self.settings.broker
        if own is None or default is None:
            return own or default
        return own.within(default)

    def admit(self, namespace: str, broker: str, sender: str, count: int) -> Throttled | None:
        """Take ``count`` tokens from the broker's and the sender's buckets, or from neither and say why not."""
        if count <= 0:
            return None
        now = self.clock()
        checks: list[tuple[LimitKind, TokenBucket]] = []
        broker_limit = self.broker_limit(namespace, broker)
        if broker_limit is not None:
            checks.append(("broker", self._brokers.get((namespace, broker), broker_limit, now)))
        if self.settings.sender is not None:
            checks.append(("sender", self._senders.get(sender, self.settings.sender, now)))
        if not checks:
            return None
        wait, kind, bucket = max(((b.wait(count), k, b) for k, b in checks), key=lambda found: found[0])
        if wait <= 0:
            for _, each in checks:
                each.take(count)
            return None
        retry_after = max(1, math.ceil(wait))
        return Throttled(kind, retry_after, _message(kind, namespace, broker, bucket.limit, count, retry_after))


def _message(kind: LimitKind, namespace: str, broker: str, limit: RateLimit, count: int, retry_after: int) -> str:
    who = f"broker '{namespace}/{broker}' takes" if kind == "broker" else "this sender may send"
    text = f"rate limited: {who} at most {limit}"
    if count > limit.burst:
        text += (f"; a batch of {count} events, more than the burst, is taken only when none of the burst is "
                 "used, and then waits out the difference")
    return f"{text}; retry in {retry_after} s"


def broker_rate(broker: object) -> RateLimit | None:
    """A Broker's own ``spec.rateLimit``, ``None`` when it sets none (or is no Broker)."""
    if not isinstance(broker, Broker) or broker.spec.rate_limit is None:
        return None
    return RateLimit.of(broker.spec.rate_limit.events_per_second, broker.spec.rate_limit.burst)


@functools.lru_cache(maxsize=RATE_LIMIT_SENDERS)
def client_sender(remote: str | None) -> str:
    """The sender a request without a proven identity counts as: its client address (an IPv6 one by its /64)."""
    if not remote:
        return UNKNOWN_CLIENT
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return UNKNOWN_CLIENT
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"address:{address.ipv4_mapped}"
        return f"address:{ipaddress.IPv6Network((address, 64), strict=False)}"
    return f"address:{address}"

