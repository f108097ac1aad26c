"""Webhook sources end to end over real HTTP into a real JetStream: signatures, content modes, dedup, the broker
unavailable and the sender's retry, limits, and no secret in any answer or log line."""

from __future__ import annotations

import json
import logging
import time

import pytest

from ripple.events.http import encode_batch, encode_binary, encode_structured
from ripple.local.nats_server import NatsServer
from ripple.sources.signatures import hex_hmac
from tests.sources.conftest import SECRET
from tests.support import event, eventually

KEY = SECRET.encode()


def manifest(scheme: str | None, *, header: str | None = None, path: str = "/") -> str:
    signature = ""
    if scheme is not None:
        signature = f"    signature: {{scheme: {scheme}, secretRef: {{name: hooks, key: key}}"
        signature += f", header: {header}}}\n" if header else "}\n"
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: hooks}}\nstringData: {{key: {SECRET}}}\n---\n"
        "apiVersion: ripple.dev/v1alpha1\nkind: EventSource\nmetadata: {name: hooks}\nspec:\n"
        "  sink: {ref: {kind: Broker, name: default}}\n"
        f"  webhook:\n    path: {path}\n    eventType: com.example.hook\n{signature}"
    )


BODY = json.dumps({"id": "evt_1", "type": "checkout.session.completed", "repository": {"full_name": "a/b"}}).encode()


def signed(scheme: str, body: bytes = BODY, *, key: bytes = KEY, at: float | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if scheme == "github":
        headers |= {"X-Hub-Signature-256": f"sha256={hex_hmac(key, body)}", "X-GitHub-Event": "push",
                    "X-GitHub-Delivery": "d-1"}
    elif scheme == "stripe":
        t = str(int(time.time() if at is None else at))
        headers["Stripe-Signature"] = f"t={t},v1={hex_hmac(key, t.encode() + b'.' + body)}"
    elif scheme == "hmac-sha256":
        headers["X-Ripple-Signature"] = hex_hmac(key, body)
    else:
        headers["Authorization"] = f"Bearer {key.decode()}"
    return headers


SCHEMES = ["github", "stripe", "hmac-sha256", "token"]


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_every_scheme_accepts_valid_and_refuses_wrong_or_missing_signatures(serve_sources, scheme, caplog):
    caplog.set_level(logging.DEBUG)
    async with serve_sources(manifest(scheme)) as served:
        url = f"{served.url}/sources/default/hooks"
        post = served.session.post
        async with post(url, data=BODY, headers=signed(scheme, key=b"not-the-secret")) as wrong:
            assert wrong.status == 401
            answer = await wrong.text()
        headers = {k: v for k, v in signed(scheme).items() if k in ("Content-Type", "X-GitHub-Event")}
        async with post(url, data=BODY, headers=headers) as missing:
            assert missing.status == 401 and "missing" in (await missing.json())["error"]
        assert await served.stored() == 0  # nothing of a refused request is stored
        async with post(url, data=BODY, headers=signed(scheme)) as valid:
            assert valid.status == 202, await valid.text()
        assert await served.stored() == 1
        status = served.sources.status()["default/hooks"]
        assert (status["sent"], status["refused"]) == (1, 2)
    assert SECRET not in answer and SECRET not in caplog.text


async def test_a_stale_stripe_timestamp_is_refused(serve_sources):
    async with serve_sources(manifest("stripe")) as served:
        url = f"{served.url}/sources/default/hooks"
        async with served.session.post(url, data=BODY, headers=signed("stripe", at=time.time() - 600)) as stale:
            assert stale.status == 401 and "tolerance" in (await stale.json())["error"]
        assert await served.stored() == 0


async def test_a_github_delivery_sent_twice_is_stored_once(serve_sources):
    async with serve_sources(manifest("github")) as served:
        for _ in range(2):
            async with served.session.post(f"{served.url}/sources/default/hooks", data=BODY,
                                           headers=signed("github")) as answer:
                assert answer.status == 202
        assert await served.stored() == 1


@pytest.mark.parametrize("encode", [encode_binary, encode_structured, lambda e: encode_batch([e, event("e2")])],
                         ids=["binary", "structured", "batch"])
async def test_a_cloudevent_passes_through_in_each_content_mode(serve_sources, encode):
    async with serve_sources(manifest(None, path="/in")) as served:
        headers, body = encode(event("e1", type="com.example.sent", data={"n": 1}))
        async with served.session.post(f"{served.url}/sources/default/hooks/in", data=body,
                                       headers=headers) as answer:
            assert answer.status == 202
        stored = (await served.events())[0]
        assert (stored["id"], stored["type"], stored["source"]) == ("e1", "com.example.sent", "/tests")


async def test_other_requests_become_events_of_the_event_type(serve_sources):
    async with serve_sources(manifest(None)) as served:
        url = f"{served.url}/sources/default/hooks"
        async with served.session.post(url, data=b"plain", headers={"Content-Type": "text/plain",
                                                                   "Idempotency-Key": "k-1"}) as answer:
            assert answer.status == 202
        (stored,) = await served.events()
        assert (stored["id"], stored["type"]) == ("k-1", "com.example.hook")
        assert stored["source"] == "/apis/ripple.dev/v1alpha1/namespaces/default/eventsources/hooks"


async def test_the_broker_unavailable_answers_503_and_the_retried_request_succeeds(serve_sources,
                                                                                   nats_server: NatsServer, store):
    async with serve_sources(manifest("github")) as served:
        url = f"{served.url}/sources/default/hooks"
        await nats_server.stop()
        async with served.session.post(url, data=BODY, headers=signed("github")) as answer:
            assert answer.status == 503 and answer.headers["Retry-After"] == "1"
        await nats_server.start()
        await eventually(lambda: store.connected, timeout=20)

        async def retried() -> bool:
            async with served.session.post(url, data=BODY, headers=signed("github")) as again:
                return again.status == 202

        await eventually(retried, timeout=20, interval=0.5)
        assert await served.stored() == 1
        assert served.sources.status()["default/hooks"]["lastError"] is not None


async def test_limits_methods_and_the_handshake(serve_sources):
    async with serve_sources(manifest(None), max_body=1024) as served:
        url = f"{served.url}/sources/default/hooks"
        async with served.session.post(url, data=b"x" * 2048) as too_large:
            assert too_large.status == 413
        async with served.session.get(url) as get:
            assert get.status == 405 and get.headers["Allow"] == "POST, OPTIONS"
        async with served.session.options(url, headers={"WebHook-Request-Origin": "hooks.example"}) as options:
            assert options.status == 200 and options.headers["WebHook-Allowed-Origin"] == "hooks.example"
        async with served.session.post(f"{served.url}/sources/default/other", data=b"{}") as unknown:
            assert unknown.status == 404
        assert await served.stored() == 0
