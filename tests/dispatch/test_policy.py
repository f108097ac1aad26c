"""The settle rules as a table: which answers ack, retry or dead-letter, and how long retries wait."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ripple.api.models import DeliverySpec
from ripple.dispatch.policy import Action, decide, is_retryable, parse_retry_after


@pytest.mark.parametrize("status", [0, 404, 408, 409, 429, 500, 502, 503, 504, 599])
def test_retryable_statuses(status):
    assert is_retryable(status)


@pytest.mark.parametrize("status", [400, 401, 403, 405, 410, 413, 415, 422, 301, 302])
def test_not_retryable_statuses(status):
    assert not is_retryable(status)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_success_acks(status):
    assert decide(DeliverySpec(), status=status, attempt=1).action is Action.ACK


def test_linear_backoff_grows_by_the_delay():
    spec = DeliverySpec(retry=3, backoff_policy="linear", backoff_delay="PT0.5S")
    delays = [decide(spec, status=500, attempt=n).delay for n in (1, 2, 3)]
    assert delays == [0.5, 1.0, 1.5]


def test_exponential_backoff_doubles():
    spec = DeliverySpec(retry=3, backoff_policy="exponential", backoff_delay="PT0.5S")
    delays = [decide(spec, status=500, attempt=n).delay for n in (1, 2, 3)]
    assert delays == [1.0, 2.0, 4.0]


def test_retries_exhausted_dead_letter():
    spec = DeliverySpec(retry=2)
    assert decide(spec, status=503, attempt=2).action is Action.RETRY
    decision = decide(spec, status=503, attempt=3)
    assert decision.action is Action.DEAD_LETTER and "exhausted" in decision.reason


def test_zero_retries_dead_letter_at_once():
    assert decide(DeliverySpec(retry=0), status=500, attempt=1).action is Action.DEAD_LETTER


def test_client_errors_dead_letter_without_retry():
    decision = decide(DeliverySpec(retry=5), status=400, attempt=1)
    assert decision.action is Action.DEAD_LETTER and "not retryable" in decision.reason


def test_retry_after_replaces_backoff_and_is_capped():
    spec = DeliverySpec(retry=3, backoff_delay="PT0.1S", retry_after_max="PT5S")
    assert decide(spec, status=429, attempt=1, retry_after=3).delay == 3
    assert decide(spec, status=503, attempt=1, retry_after=60).delay == 5
    assert decide(spec, status=500, attempt=1, retry_after=3).delay == pytest.approx(0.2)


def test_max_event_age_stops_retries():
    spec = DeliverySpec(retry=10, backoff_delay="PT1S", max_event_age="PT10S")
    assert decide(spec, status=500, attempt=1, event_age=5).action is Action.RETRY
    decision = decide(spec, status=500, attempt=1, event_age=9.5)
    assert decision.action is Action.DEAD_LETTER and "maxEventAge" in decision.reason


def test_parse_retry_after_forms():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
