"""The dispatchers' public delivery keys, shared in a JetStream key-value bucket.

Each dispatcher signs with its own in-memory key (:mod:`ripple.signing`); Functions read one JWKS from whichever
dispatcher their Service picks. So each dispatcher puts the public half of every key it makes in
:data:`KEYS_BUCKET`, and serves the JWKS as its own keys plus the bucket's. Entries expire with the bucket's TTL:
a key's time signing, then its tokens' life, then the skew allowed. Only public keys are stored.

Anything that can write to NATS can write to the bucket, so each entry carries an HMAC-SHA256 under a secret only
the dispatchers hold (:data:`SECRET_ENV`, a file the chart mounts into dispatcher pods alone); an entry without a
valid one is ignored. Without the secret a dispatcher shares nothing and serves its own keys only (one dispatcher).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import time
from pathlib import Path

import nats.errors
import nats.js.errors
import orjson
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from ripple.signing import LEEWAY, PUBLISH_AHEAD, KeyRing, SigningKey
from ripple.store.jetstream import EventStore

__all__ = ["KEYS_BUCKET", "READ_TIMEOUT", "SECRET_ENV", "SharedKeys", "sharing_secret"]

log = logging.getLogger(__name__)
KEYS_BUCKET = "ripple-delivery-keys"
KEYS_STREAM = f"KV_{KEYS_BUCKET}"
KEYS_PREFIX = f"$KV.{KEYS_BUCKET}."
READ_TIMEOUT = 2.0
SECRET_ENV = "RIPPLE_DELIVERY_KEYS_SECRET_FILE"
"""A file holding the secret the dispatchers authenticate each other's public keys with (16 bytes or more)."""
MIN_SECRET_BYTES = 16
CACHE_FOR = 1.0
"""Seconds one read of the bucket serves the JWKS: Functions read it only for a key they do not know yet."""


class SharedKeys:
    """Publishes a :class:`KeyRing`'s keys to the bucket and serves the JWKS of every dispatcher's."""

    def __init__(self, store: EventStore, ring: KeyRing, secret: bytes | None = None) -> None:
        self.store = store
        self.ring = ring
        self.secret = secret
        self.ttl = ring.rotation + ring.lifetime + LEEWAY + PUBLISH_AHEAD
        self._tasks: set[asyncio.Task[None]] = set()
        self._read_at = float("-inf")
        ring.on_new_key = self._spawn_publish

    async def start(self) -> None:
        """Make the first key and publish it before anything is signed with it (it signs at once)."""
        self.ring.signing_key()
        await asyncio.gather(*self._tasks)

    async def flush(self) -> None:
        """Wait until every key made so far is published (or given up on)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn_publish(self, key: SigningKey) -> None:
        if self.secret is None:
            return
        task = asyncio.get_running_loop().create_task(self._publish(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, key: SigningKey) -> None:
        record: dict[str, object] = {"jwk": key.jwk(), "expires": key.created + self.ttl}
        record["mac"] = self._mac(record)
        value = orjson.dumps(record)
        for attempt in range(5):  # within the key's publish-ahead time, then logged: tokens it signs are refused
            try:
                kv = await self._bucket()
                async with asyncio.timeout(READ_TIMEOUT):
                    await kv.put(key.kid, value)
                return
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("cannot publish delivery key %s yet (%s: %s)", key.kid, type(exc).__name__, exc)
                await asyncio.sleep(0.5 * (attempt + 1))
        log.error("delivery key %s is not published: Functions reading another dispatcher's JWKS will refuse "
                  "its deliveries", key.kid)

    async def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Every dispatcher's current public keys; this one's alone when the bucket cannot be read."""
        if self.secret is not None and time.monotonic() - self._read_at >= CACHE_FOR:
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    await self._read()
                self._read_at = time.monotonic()
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("cannot read the dispatchers' delivery keys (%s: %s)", type(exc).__name__, exc)
        return self.ring.jwks()

    async def _read(self) -> None:
        # The bucket's stream lists its subjects (one per key) in one request; the KV client's keys() watches the
        # bucket instead, which can end before it has seen every key.
        await self._bucket()
        info = await self.store.js.stream_info(KEYS_STREAM, subjects_filter=f"{KEYS_PREFIX}>")
        for subject in (info.state.subjects or {}):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                message = await self.store.js.get_last_msg(KEYS_STREAM, subject)
                try:
                    record = orjson.loads(message.data or b"")
                    mac = record.pop("mac")
                    if not isinstance(mac, str) or not hmac.compare_digest(mac, self._mac(record)):
                        log.warning("ignoring delivery key entry %s: not signed by a dispatcher", subject[:80])
                        continue
                    self.ring.add_public(dict(record["jwk"]), float(record["expires"]))
                except (ValueError, KeyError, TypeError, AttributeError):
                    log.warning("ignoring malformed delivery key entry %s", subject[:80])

    def _mac(self, record: dict[str, object]) -> str:
        assert self.secret is not None
        return hmac.new(self.secret, orjson.dumps(record, option=orjson.OPT_SORT_KEYS), hashlib.sha256).hexdigest()

    async def _bucket(self) -> KeyValue:
        # Looked up each time (it is rare): the store replaces its connection, and a bucket handle holds one.
        try:
            return await self.store.js.key_value(KEYS_BUCKET)
        except nats.js.errors.BucketNotFoundError:
            config = KeyValueConfig(bucket=KEYS_BUCKET, history=1, storage=StorageType.FILE,
                                    replicas=self.store.own_replicas(), ttl=self.ttl,
                                    description="Ripple: the dispatchers' public delivery-token keys")
            with contextlib.suppress(nats.js.errors.BadRequestError):
                return await self.store.js.create_key_value(config)
            return await self.store.js.key_value(KEYS_BUCKET)


def sharing_secret(environ: dict[str, str] | None = None) -> bytes | None:
    """The dispatchers' shared secret from :data:`SECRET_ENV`; ``ValueError`` naming it when it cannot be used."""
    where = (os.environ if environ is None else environ).get(SECRET_ENV, "").strip()
    if not where:
        return None
    try:
        secret = Path(where).read_bytes().strip()
    except OSError as exc:
        raise ValueError(f"{SECRET_ENV}: {exc}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"{SECRET_ENV}: the secret must be {MIN_SECRET_BYTES} bytes or more")
    return secret
