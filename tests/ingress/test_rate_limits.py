"""Rate limits at a real ingress against a real nats-server: past a broker's or a sender's bucket the answer is 429
with Retry-After and a message naming the limit, nothing is stored, and the refusal is counted; the buckets count
events, not requests. The clock is the test's, so nothing depends on how fast the machine is."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import REGISTRY

from ripple._aio import free_port
from ripple.api.loading import load_manifests
from ripple.api.models import BrokerSpec, EventPolicy
from ripple.cli.ingress import run_ingress
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.ingress.limits import RateLimit, RateLimiter, RateSettings
from ripple.ingress.policies import PolicyBook, secret_digests
from ripple.local.nats_server import NatsServer
from ripple.store import EventStore
from tests.ingress.test_ingress import BATCH, BINARY, post, stored
from tests.support import serve

TOKENS = {"alice": "alice-token-0123456789", "bob": "bob-token-abcdefghijkl"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def throttled(broker: str, limit: str) -> float:
    return metric("ripple_ingress_throttled_total", namespace="default", broker=broker, limit=limit)


def batch(*ids: str) -> str:
    return json.dumps([{"specversion": "1.0", "id": i, "source": "/src", "type": "order.placed"} for i in ids])


async def rate_limited(store: EventStore, limiter: RateLimiter, **settings: object) -> AsyncIterator[str]:
    await store.ensure_broker("default", "other", BrokerSpec())
    known = {("default", "default"), ("default", "other")}
    ingress = IngressSettings(brokers=lambda ns, b: (ns, b) in known, rates=limiter, **settings)  # type: ignore[arg-type]
    async with serve(create_ingress_app(store, ingress)) as url:
        yield url + "/default"


@pytest.fixture
async def broker_limited(store: EventStore, clock: Clock) -> AsyncIterator[str]:
    """Brokers default/default and default/other, each taking 1 event per second, 3 at once."""
    async for url in rate_limited(store, RateLimiter(RateSettings(broker=RateLimit(1, 3)), clock=clock)):
        yield url


async def test_past_a_broker_s_limit_is_429_with_retry_after_and_nothing_is_stored(broker_limited, http, store,
                                                                                    clock):
    before, answered = throttled("default", "broker"), metric("ripple_ingress_requests_total", namespace="default",
                                                              broker="default", code="429")
    for i in range(3):
        assert (await post(http, f"{broker_limited}/default", **{**BINARY, "ce-id": f"e{i}"}))[0] == 202
    async with http.post(f"{broker_limited}/default", headers={**BINARY, "ce-id": "over"}) as answer:
        assert answer.status == 429 and answer.headers["Retry-After"] == "1"
        message = (await answer.json())["error"]
    assert message == ("rate limited: broker 'default/default' takes at most 1 events per second (burst 3); "
                       "retry in 1 s")
    assert [e.id for e in await stored(store)] == ["e0", "e1", "e2"]
    assert throttled("default", "broker") == before + 1
    assert metric("ripple_ingress_requests_total", namespace="default", broker="default", code="429") == answered + 1
    assert (await post(http, f"{broker_limited}/other", **BINARY))[0] == 202, "each broker has its own bucket"
    clock.now += 1
    assert (await post(http, f"{broker_limited}/default", **{**BINARY, "ce-id": "later"}))[0] == 202


async def test_a_batch_costs_one_token_per_event(store, http, clock):
    async for url in rate_limited(store, RateLimiter(RateSettings(broker=RateLimit(10, 5)), clock=clock)):
        batched = {"Content-Type": BATCH}
        assert (await post(http, f"{url}/default", batch(*"abcde"), **batched))[0] == 202  # the whole burst at once
        async with http.post(f"{url}/default", data=batch("f", "g"), headers=batched) as answer:
            assert answer.status == 429 and answer.headers["Retry-After"] == "1"
        clock.now += 0.1  # one token back: not enough for two events
        assert (await post(http, f"{url}/default", batch("f", "g"), **batched))[0] == 429
        clock.now += 0.1
        assert (await post(http, f"{url}/default", batch("f", "g"), **batched))[0] == 202
        assert [e.id for e in await stored(store)] == [*"abcdefg"]


async def test_a_batch_larger_than_the_burst_waits_for_a_full_bucket_and_then_is_taken(store, http, clock):
    async for url in rate_limited(store, RateLimiter(RateSettings(broker=RateLimit(2, 4)), clock=clock)):
        batched = {"Content-Type": BATCH}
        assert (await post(http, f"{url}/default", batch("first"), **batched))[0] == 202
        status, body = await post(http, f"{url}/default", batch(*"abcdef"), **batched)
        assert status == 429
        assert "a batch of 6 events, more than the burst, is taken only when none of the burst is used" in body["error"]
        clock.now += 0.5  # full again
        assert (await post(http, f"{url}/default", batch(*"abcdef"), **batched))[0] == 202
        async with http.post(f"{url}/default", headers=BINARY) as answer:  # 2 tokens of debt, then 1 to take
            assert answer.status == 429 and answer.headers["Retry-After"] == "2"
        assert [e.id for e in await stored(store)] == ["first", *"abcdef"]


async def test_a_sender_without_a_proven_identity_is_its_address_over_every_broker(store, http, clock):
    before = throttled("other", "sender")
    async for url in rate_limited(store, RateLimiter(RateSettings(sender=RateLimit(1, 2)), clock=clock)):
        assert (await post(http, f"{url}/default", **{**BINARY, "ce-id": "a"}))[0] == 202
        assert (await post(http, f"{url}/other", **{**BINARY, "ce-id": "b"}))[0] == 202
        status, body = await post(http, f"{url}/other", **{**BINARY, "ce-id": "c"})
        assert status == 429 and body["error"].startswith("rate limited: this sender may send at most 1 events")
    assert throttled("other", "sender") == before + 1
    assert throttled("other", "broker") == 0


async def test_senders_an_event_policy_proved_each_have_their_own_bucket(store, http, clock):
    policy = EventPolicy.model_validate({
        "apiVersion": "ripple.dev/v1alpha1", "kind": "EventPolicy", "metadata": {"name": "partners"},
        "spec": {"to": [{"broker": "default"}],
                 "from": [{"token": {"secretRef": {"name": name, "key": "token"}}} for name in TOKENS]}})
    book = PolicyBook([policy], secret_digests(lambda ns, name, key: TOKENS[name].encode()))
    limiter = RateLimiter(RateSettings(sender=RateLimit(1, 1)), clock=clock)
    async for url in rate_limited(store, limiter, policies=book):
        alice, bob = ({"Authorization": f"Bearer {TOKENS[name]}"} for name in ("alice", "bob"))
        assert (await post(http, f"{url}/default", **{**BINARY, "ce-id": "a1"}, **alice))[0] == 202
        assert (await post(http, f"{url}/default", **{**BINARY, "ce-id": "a2"}, **alice))[0] == 429
        assert (await post(http, f"{url}/default", **{**BINARY, "ce-id": "b1"}, **bob))[0] == 202, "same address"
        for _ in range(3):  # refused by the policy before any limit: no tokens taken, and 401 rather than 429
            assert (await post(http, f"{url}/default", **BINARY))[0] == 401
        assert (await post(http, f"{url}/other", **{**BINARY, "ce-id": "open"}))[0] == 202, "the address's bucket"
        assert [e.id for e in await stored(store)] == ["a1", "b1"]
        assert limiter.senders == 3


async def test_requests_to_unknown_brokers_are_404_and_never_reach_a_limit(broker_limited, http):
    for _ in range(5):
        assert (await post(http, f"{broker_limited}/nope", **BINARY))[0] == 404
    assert REGISTRY.get_sample_value("ripple_ingress_throttled_total",
                                     {"namespace": "default", "broker": "nope", "limit": "broker"}) is None
    assert (await post(http, f"{broker_limited}/default", **BINARY))[0] == 202


async def test_run_ingress_applies_a_broker_s_own_limit_and_the_batch_limit(nats_server: NatsServer, tmp_path: Path):
    manifest = tmp_path / "brokers.yaml"
    manifest.write_text("apiVersion: ripple.dev/v1alpha1\nkind: Broker\nmetadata: {name: default}\n"
                        "spec: {rateLimit: {eventsPerSecond: 0.001, burst: 2}}\n")
    port = free_port("127.0.0.1")
    task = asyncio.create_task(run_ingress(nats_server.url, load_manifests([manifest]), host="127.0.0.1", port=port,
                                           max_body=64 * 1024, max_batch=3,
                                           rates=RateSettings(broker=RateLimit(1000, 1000))))
    url = f"http://127.0.0.1:{port}/default/default"
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 10
            while True:
                try:
                    status, body = await post(http, url, batch(*"abcd"), **{"Content-Type": BATCH})
                    break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline and not task.done()
                    await asyncio.sleep(0.05)
            assert (status, body["error"]) == (413, "the batch holds 4 events, over the limit of 3 events per request")
            assert (await post(http, url, batch("a", "b"), **{"Content-Type": BATCH}))[0] == 202
            status, body = await post(http, url, **BINARY)
            assert status == 429 and "at most 0.001 events per second (burst 2)" in body["error"]
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
