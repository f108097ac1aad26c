"""A ``coordination.k8s.io`` Lease: one holder at a time among a component's replicas in a cluster, as
Kubernetes' own controllers elect their leader.

Taking the lease is creating it, or replacing it once its holder let ``leaseDurationSeconds`` pass without
renewing; keeping it is replacing it with a new ``renewTime``. Every write carries the ``resourceVersion`` that was
read, so of two replicas racing for an expired lease the API server lets one through and answers the other 409.
A holder that cannot renew counts itself out before the lease expires, so two never lead at once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from ripple.supervision import RenewedLease

__all__ = ["KubeLease"]

log = logging.getLogger(__name__)
LEASE_TTL = 15.0


class KubeLease(RenewedLease):
    """The Lease ``namespace/name``; :meth:`run` keeps trying to take it and renews it while held."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str, holder: str, *,
                 ttl: float = LEASE_TTL) -> None:
        super().__init__(ttl)
        self.leases = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.holder = holder

    def _spec(self, now: datetime, acquired: datetime | None, transitions: int) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(holder_identity=self.holder, lease_duration_seconds=max(1, round(self.ttl)),
                                  acquire_time=acquired or now, renew_time=now, lease_transitions=transitions)

    async def attempt(self) -> bool:
        """Take the lease, or renew it when held; whether this replica holds it afterwards."""
        started, now = time.monotonic(), datetime.now(UTC)
        try:
            try:
                lease = await self.leases.read_namespaced_lease(self.name, self.namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                                      spec=self._spec(now, None, 0))
                await self.leases.create_namespaced_lease(self.namespace, body)
            else:
                spec = lease.spec or client.V1LeaseSpec()
                mine = spec.holder_identity == self.holder
                renewed = spec.renew_time or spec.acquire_time
                expired = renewed is None or renewed + timedelta(seconds=spec.lease_duration_seconds or 0) < now
                if not mine and not expired:
                    return self._lost()
                transitions = (spec.lease_transitions or 0) + (0 if mine else 1)
                lease.spec = self._spec(now, spec.acquire_time if mine else None, transitions)
                await self.leases.replace_namespaced_lease(self.name, self.namespace, lease)
                if not mine:
                    log.info("lease %s/%s: taken by %s from %s", self.namespace, self.name, self.holder,
                             spec.holder_identity)
        except ApiException as exc:
            if exc.status in (409, 422):  # another replica wrote first
                return self._lost()
            log.warning("lease %s/%s: %s (%s)", self.namespace, self.name, exc.status, exc.reason)
            return self.held()
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
            log.warning("lease %s/%s: cannot reach the API server: %s", self.namespace, self.name, exc)
            return self.held()
        return self._confirmed(started)

    async def release(self) -> None:
        """Give the lease up on a clean stop: the others need not wait for it to expire."""
        if not self.held():
            return
        self._lost()
        with contextlib.suppress(ApiException, OSError, TimeoutError, aiohttp.ClientError):
            lease = await self.leases.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is not None and lease.spec.holder_identity == self.holder:
                lease.spec.lease_duration_seconds = 1
                lease.spec.renew_time = datetime.now(UTC) - timedelta(seconds=2)
                await self.leases.replace_namespaced_lease(self.name, self.namespace, lease)
