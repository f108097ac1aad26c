"""The cluster's EventPolicies, for the ingress: watched, with the token digests the operator put in their
status, and rebuilt into one :class:`PolicyBook` whenever one changes. A policy whose Secret the operator could not
read still guards its brokers: its token matches nobody (fail closed)."""

from __future__ import annotations

from collections.abc import Sequence

from kubernetes_asyncio import client

from ripple.api.models import EventPolicy
from ripple.events.model import CloudEvent
from ripple.ingress.policies import PolicyBook, Refusal, Sender, status_digests
from ripple.kube.objects import RippleObjects
from ripple.kube.tokens import KubeTokenReviewer

__all__ = ["ClusterPolicies"]


class ClusterPolicies:
    """A :class:`~ripple.ingress.policies.SenderCheck` over the cluster's current EventPolicies."""

    def __init__(self, api: client.ApiClient, *, default: str = "open") -> None:
        """``default``: what guards a broker no policy names (``open``, or ``namespace``: its namespace's own
        ServiceAccounts, the chart's default)."""
        self.reviewer = KubeTokenReviewer(api)
        self.default = default
        self.objects = RippleObjects(api, EventPolicy, on_change=self._rebuild, status_matters=True)
        self.book = PolicyBook([], status_digests({}), reviewer=self.reviewer, default=default)

    def _rebuild(self) -> None:
        policies = [p for p in self.objects.items.values() if isinstance(p, EventPolicy)]
        self.book = PolicyBook(policies, status_digests(self.objects.statuses), reviewer=self.reviewer,
                               default=self.default)

    async def check(self, namespace: str, broker: str, authorization: str | None,
                    events: Sequence[CloudEvent]) -> Refusal | Sender | None:
        return await self.book.check(namespace, broker, authorization, events)

    async def run(self) -> None:
        await self.objects.run()
