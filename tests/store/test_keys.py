"""Delivery keys shared by dispatchers through a real JetStream: any dispatcher's JWKS checks every one's tokens."""

from __future__ import annotations

from ripple.signing import DeliverySigner, DeliveryVerifier, KeyRing, function_audience, trigger_subject
from ripple.store import EventStore
from ripple.store.keys import KEYS_BUCKET, KEYS_STREAM, SharedKeys

AUDIENCE = function_audience("shop", "validate")
SECRET = b"dispatchers-only-secret-of-the-test"


async def test_each_dispatcher_serves_every_dispatchers_public_keys(store: EventStore, nats_server) -> None:
    other_store = await EventStore.connect(nats_server.url)
    try:
        first, second = SharedKeys(store, KeyRing(), SECRET), SharedKeys(other_store, KeyRing(), SECRET)
        await first.start()
        await second.start()
        token = DeliverySigner(first.ring).token(AUDIENCE, trigger_subject("shop", "orders"))

        # A Function whose JWKS read reached the second dispatcher still accepts the first one's delivery.
        verifier = DeliveryVerifier(second.jwks, AUDIENCE)
        assert await verifier.check(f"Bearer {token}") is None
        kids = {key["kid"] for key in (await second.jwks())["keys"]}
        assert kids == {first.ring.signing_key().kid, second.ring.signing_key().kid}

        # Only public keys are stored: no entry holds the private part ("d") of a key.
        kv = await store.js.key_value(KEYS_BUCKET)
        for kid in kids:
            entry = await kv.get(kid)
            assert entry.value is not None and b'"d"' not in entry.value and b'"x"' in entry.value
        status = await kv.status()
        assert status.history == 1 and status.ttl is not None and status.ttl > 3600
    finally:
        await second.close()
        await other_store.close()


async def test_a_rotated_key_is_published_before_it_signs(store: EventStore) -> None:
    now = [1_800_000_000.0]
    ring = KeyRing(clock=lambda: now[0])
    keys = SharedKeys(store, ring, SECRET)
    await keys.start()
    first = ring.signing_key().kid
    now[0] += ring.rotation
    assert ring.signing_key().kid == first  # the new key is made, published, not used yet
    await keys.flush()
    info = await store.js.stream_info(KEYS_STREAM, subjects_filter=">")
    assert len(info.state.subjects or {}) == 2
    now[0] += ring.publish_ahead
    assert ring.signing_key().kid != first


async def test_the_jwks_falls_back_to_the_dispatchers_own_keys_without_nats(store: EventStore) -> None:
    keys = SharedKeys(store, KeyRing(), SECRET)
    await keys.start()
    await store.js.delete_key_value(KEYS_BUCKET)
    await store.close()
    jwks = await keys.jwks()
    assert [key["kid"] for key in jwks["keys"]] == [keys.ring.signing_key().kid]


async def test_a_key_put_in_the_bucket_by_anyone_else_is_not_served(store: EventStore) -> None:
    """NATS clients other than the dispatchers (a Function with the NATS password) can write the bucket: a key
    they put there without the dispatchers' secret signs nothing any Function accepts."""
    import orjson

    keys = SharedKeys(store, KeyRing(), SECRET)
    await keys.start()
    forger = KeyRing()
    key = forger.signing_key()
    kv = await store.js.key_value(KEYS_BUCKET)
    await kv.put(key.kid, orjson.dumps({"jwk": key.jwk(), "expires": key.created + 3600, "mac": "0" * 64}))
    await kv.put("unsigned", orjson.dumps({"jwk": {**key.jwk(), "kid": "unsigned"}, "expires": key.created + 3600}))
    served = {k["kid"] for k in (await keys.jwks())["keys"]}
    assert served == {keys.ring.signing_key().kid}
    forged = DeliverySigner(forger).token(AUDIENCE, trigger_subject("shop", "orders"))
    refused = await DeliveryVerifier(keys.jwks, AUDIENCE).check(f"Bearer {forged}")
    assert refused is not None and refused.status == 401
    # Another dispatcher with the same secret is served, one with another secret is not.
    other = SharedKeys(store, KeyRing(), b"another-secret-altogether")
    await other.start()
    keys._read_at = float("-inf")
    assert other.ring.signing_key().kid not in {k["kid"] for k in (await keys.jwks())["keys"]}


async def test_without_the_secret_a_dispatcher_shares_nothing(store: EventStore) -> None:
    keys = SharedKeys(store, KeyRing())
    await keys.start()
    assert [k["kid"] for k in (await keys.jwks())["keys"]] == [keys.ring.signing_key().kid]
    assert KEYS_STREAM not in [info.config.name for info in await store.js.streams_info()]
