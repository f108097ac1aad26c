"""The ingress's token buckets on their own, on a clock the tests turn: rates, bursts, batches past the burst, the
broker's own limit, senders' buckets bounded, and who a sender is without a proven identity."""

from __future__ import annotations

import pytest

from ripple.api.models import Broker
from ripple.defaults import RATE_LIMIT_SENDERS
from ripple.ingress.limits import (
    UNKNOWN_CLIENT,
    RateLimit,
    RateLimiter,
    RateSettings,
    broker_rate,
    client_sender,
    parse_rate,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, **settings: object) -> RateLimiter:
    return RateLimiter(RateSettings(**settings), clock=clock)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "expected"), [
    ("100", RateLimit(100, 100)), ("100:500", RateLimit(100, 500)), ("0.5", RateLimit(0.5, 1)),
    ("2.5:3", RateLimit(2.5, 3)),
])
def test_a_rate_is_read_from_rate_and_burst(text, expected):
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["", "fast", "0", "-1", "10:0", "10:1.5", "nan", "inf", "10:"])
def test_a_rate_that_is_not_one_is_refused_naming_the_form(text):
    with pytest.raises(ValueError, match="RATE"):
        parse_rate(text)


def test_a_burst_is_taken_then_the_rate_refills_it():
    clock = Clock()
    limits = limiter(clock, broker=RateLimit(2, 4))
    assert [limits.admit("default", "default", "a", 1) for _ in range(4)] == [None] * 4
    throttled = limits.admit("default", "default", "a", 1)
    assert throttled is not None and throttled.limit == "broker" and throttled.retry_after == 1
    assert "broker 'default/default' takes at most 2 events per second (burst 4)" in throttled.message
    clock.now += 0.5  # one token back
    assert limits.admit("default", "default", "a", 1) is None
    assert limits.admit("default", "default", "a", 1) is not None
    clock.now += 3600  # never more than the burst, however long the quiet
    assert [limits.admit("default", "default", "a", 1) for _ in range(5)][-1] is not None


def test_a_batch_costs_one_token_per_event_and_retry_after_is_whole_seconds():
    clock = Clock()
    limits = limiter(clock, broker=RateLimit(10, 50))
    assert limits.admit("default", "default", "a", 50) is None  # a batch at the burst: the bucket is full
    throttled = limits.admit("default", "default", "a", 25)
    assert throttled is not None and throttled.retry_after == 3  # 2.5 s of refill, rounded up
    clock.now += 2.5
    assert limits.admit("default", "default", "a", 25) is None


def test_a_batch_larger_than_the_burst_is_taken_from_a_full_bucket_and_leaves_a_debt():
    clock = Clock()
    limits = limiter(clock, broker=RateLimit(10, 50))
    assert limits.admit("default", "default", "a", 1) is None
    early = limits.admit("default", "default", "a", 80)
    assert early is not None and "a batch of 80 events, more than the burst" in early.message
    clock.now += 0.1  # full again
    assert limits.admit("default", "default", "a", 80) is None  # taken: 30 tokens of debt
    throttled = limits.admit("default", "default", "a", 1)
    assert throttled is not None and throttled.retry_after == 4  # 30 to pay back and 1 to take, at 10 per second
    clock.now += 3.1
    assert limits.admit("default", "default", "a", 1) is None


def test_a_refused_request_takes_from_neither_bucket():
    clock = Clock()
    limits = limiter(clock, broker=RateLimit(1, 10), sender=RateLimit(1, 3))
    assert limits.admit("default", "default", "a", 3) is None
    throttled = limits.admit("default", "default", "a", 1)
    assert throttled is not None and throttled.limit == "sender" and "this sender may send" in throttled.message
    # The broker's bucket still holds the 7 tokens "a" left: its refusal took none of them.
    assert limits.admit("default", "default", "b", 3) is None
    assert limits.admit("default", "default", "c", 3) is None
    refused = limits.admit("default", "default", "d", 2)  # 1 token left in the broker's bucket
    assert refused is not None and refused.limit == "broker"
    assert limits.admit("default", "default", "d", 1) is None, "the sender's bucket lost nothing to that refusal"


def test_a_sender_has_one_bucket_over_every_broker():
    clock = Clock()
    limits = limiter(clock, sender=RateLimit(1, 2))
    assert limits.admit("shop", "orders", "a", 1) is None
    assert limits.admit("billing", "default", "a", 1) is None
    assert limits.admit("shop", "other", "a", 1) is not None
    assert limits.admit("shop", "other", "b", 1) is None


def test_no_limits_admit_everything_and_keep_no_buckets():
    limits = limiter(Clock())
    assert all(limits.admit("default", "default", f"s{i}", 10_000) is None for i in range(100))
    assert limits.senders == 0


def test_senders_buckets_are_bounded_the_least_recently_seen_forgotten_first():
    clock = Clock()
    limits = limiter(clock, sender=RateLimit(1, 1), max_senders=3)
    for name in ("a", "b", "c"):
        assert limits.admit("default", "default", name, 1) is None
    assert limits.admit("default", "default", "a", 1) is not None  # seen again: "b" is now the oldest
    assert limits.admit("default", "default", "d", 1) is None
    assert limits.senders == 3
    assert limits.admit("default", "default", "b", 1) is None, "forgotten: a full bucket again"
    assert limits.admit("default", "default", "a", 1) is not None, "remembered: still empty"
    for i in range(10 * RATE_LIMIT_SENDERS // 1000):
        limits.admit("default", "default", f"made-up-{i}", 1)
    assert limits.senders == 3
    assert RateSettings().max_senders == RATE_LIMIT_SENDERS


def broker(**spec: object) -> Broker:
    return Broker.model_validate({"apiVersion": "ripple.dev/v1alpha1", "kind": "Broker",
                                  "metadata": {"name": "default"}, "spec": spec})


def test_a_broker_s_own_limit_applies_alone_or_makes_the_installation_s_stricter():
    assert broker_rate(broker()) is None and broker_rate(None) is None
    assert broker_rate(broker(rateLimit={"eventsPerSecond": 5})) == RateLimit(5, 5)
    own = {("default", "slow"): RateLimit(5, 20), ("default", "greedy"): RateLimit(1000, 5000)}
    lookup = own.get
    alone = RateLimiter(RateSettings(), broker_limits=lambda ns, b: lookup((ns, b)), clock=Clock())
    assert alone.broker_limit("default", "slow") == RateLimit(5, 20)
    assert alone.broker_limit("default", "other") is None
    capped = RateLimiter(RateSettings(broker=RateLimit(100, 200)), broker_limits=lambda ns, b: lookup((ns, b)))
    assert capped.broker_limit("default", "slow") == RateLimit(5, 20)
    assert capped.broker_limit("default", "greedy") == RateLimit(100, 200)
    assert capped.broker_limit("default", "other") == RateLimit(100, 200)


def test_a_broker_whose_limit_changes_keeps_no_more_than_the_new_burst():
    clock = Clock()
    own = {("default", "default"): RateLimit(1, 10)}
    limits = RateLimiter(RateSettings(), broker_limits=lambda ns, b: own.get((ns, b)), clock=clock)
    assert limits.admit("default", "default", "a", 1) is None
    own[("default", "default")] = RateLimit(1, 2)
    assert limits.admit("default", "default", "a", 2) is None
    assert limits.admit("default", "default", "a", 1) is not None


def test_limits_that_cannot_work_are_refused():
    with pytest.raises(ValueError, match="events per second"):
        RateLimit(0, 1)
    with pytest.raises(ValueError, match="burst"):
        RateLimit(1, 0)
    with pytest.raises(ValueError, match="max_senders"):
        RateSettings(max_senders=0)


@pytest.mark.parametrize(("remote", "sender"), [
    ("10.1.2.3", "address:10.1.2.3"),
    ("2001:db8:1:2:aaaa::1", "address:2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9", "address:2001:db8:1:2::/64"),
    ("::ffff:10.1.2.3", "address:10.1.2.3"),
    ("fe80::1%eth0", "address:fe80::/64"),
    (None, UNKNOWN_CLIENT),
    ("", UNKNOWN_CLIENT),
    ("not an address", UNKNOWN_CLIENT),
])
def test_a_sender_without_a_proven_identity_is_its_address_and_an_ipv6_one_its_64(remote, sender):
    assert client_sender(remote) == sender


def test_a_rate_or_burst_past_the_bounds_is_refused_where_it_is_given():
    """A burst of hundreds of digits used to parse, then fail every request with OverflowError (a 500)."""
    with pytest.raises(ValueError, match="burst must be at most"):
        parse_rate("5:" + "9" * 400)
    with pytest.raises(ValueError, match="events per second must be > 0"):
        parse_rate("1e400")
    with pytest.raises(ValueError, match="events per second"):
        parse_rate("nan")
    assert parse_rate("2.5") == RateLimit(2.5, 3)
