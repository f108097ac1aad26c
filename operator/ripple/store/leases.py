"""A lease on a JetStream key-value entry: exactly one holder at a time among processes sharing a NATS, so that
work only one replica may do (the autoscaler's decisions) is done by one, and taken over when it dies.

The bucket keeps one revision per key and forgets a key ``ttl`` seconds after its last write. Taking the lease
is creating the key (which fails while someone holds it); keeping it is updating it on the revision one wrote
last (which fails once someone else took it); a holder that stops renewing loses it when the key expires, and the
next ``create`` by another process succeeds. A holder that cannot renew within ``ttl`` counts itself out before
anyone else can count itself in, so two never lead at once.
"""

from __future__ import annotations

import contextlib
import logging
import time

import nats.errors
import nats.js.errors
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from ripple.store.jetstream import EventStore
from ripple.supervision import RenewedLease

__all__ = ["LEASE_BUCKET", "LEASE_TTL", "KvLease"]

log = logging.getLogger(__name__)

LEASE_BUCKET = "ripple-leases"
LEASE_TTL = 10.0
"""Seconds a lease lasts without renewal: how long a dead holder keeps the others waiting, at most."""


class KvLease(RenewedLease):
    """One named lease; :meth:`run` keeps trying to take it and, once held, renews it every ``ttl / 3``."""

    def __init__(self, store: EventStore, name: str, holder: str, *, ttl: float = LEASE_TTL) -> None:
        super().__init__(ttl)
        self.store = store
        self.name = name
        self.holder = holder
        self._revision: int | None = None

    def held(self) -> bool:
        """Whether this process holds the lease now (a renewal it could not confirm in time counts as lost)."""
        return self._revision is not None and super().held()

    async def _bucket(self) -> KeyValue:
        try:
            return await self.store.js.key_value(LEASE_BUCKET)
        except nats.js.errors.BucketNotFoundError:
            config = KeyValueConfig(bucket=LEASE_BUCKET, history=1, ttl=self.ttl, storage=StorageType.FILE,
                                    replicas=self.store.own_replicas(),
                                    description="Ripple: leases, so that one replica at a time does a job")
            with contextlib.suppress(nats.js.errors.BadRequestError):  # created meanwhile by another process
                return await self.store.js.create_key_value(config)
            return await self.store.js.key_value(LEASE_BUCKET)

    async def attempt(self) -> bool:
        """Take the lease, or renew it when held; whether this process holds it afterwards."""
        started = time.monotonic()
        try:
            kv = await self._bucket()
            if self._revision is None:
                self._revision = await kv.create(self.name, self.holder.encode())
                log.info("lease %s: taken by %s", self.name, self.holder)
            else:
                self._revision = await kv.update(self.name, self.holder.encode(), last=self._revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            if self._revision is not None:
                log.warning("lease %s: lost by %s (taken by another)", self.name, self.holder)
            self._revision = None
            return False
        except (nats.errors.Error, nats.js.errors.Error, OSError, TimeoutError) as exc:
            if self._revision is not None and not self.held():
                log.warning("lease %s: lost by %s (could not renew: %s)", self.name, self.holder, exc)
                self._revision = None
            return self.held()
        # Counted from before the write: the key expires ttl after the server stored it, never earlier.
        return self._confirmed(started)

    async def release(self) -> None:
        """Give the lease up (a clean stop), so the next holder need not wait for it to expire."""
        if self._revision is None:
            return
        revision, self._revision = self._revision, None
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, OSError, TimeoutError):
            kv = await self._bucket()
            await kv.delete(self.name, last=revision)
