"""Prometheus metrics of the data plane, served at ``GET /metrics`` by the ingress and the dispatcher."""

from __future__ import annotations

import functools
from typing import TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

__all__ = [
    "COLD_STARTS",
    "DELIVERIES",
    "DELIVERY_SECONDS",
    "FILTERED",
    "INGRESS_EVENTS",
    "INGRESS_REQUESTS",
    "POISON_EVENTS",
    "REPLIES",
    "SOURCE_EVENTS",
    "TASK_RESTARTS",
    "child",
    "serve_metrics",
]

INGRESS_REQUESTS = Counter(
    "ripple_ingress_requests_total",
    "Requests answered by the ingress, by broker and HTTP status; requests to brokers that do not exist are "
    "counted under namespace and broker '_unknown', so made-up names cannot grow the metrics.",
    ["namespace", "broker", "code"],
)
INGRESS_EVENTS = Counter(
    "ripple_ingress_events_stored_total", "Events stored in JetStream by the ingress.", ["namespace", "broker"]
)
DELIVERIES = Counter(
    "ripple_deliveries_total", "Delivery attempts by trigger and outcome (ack, retry, dead-letter).",
    ["trigger", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "ripple_delivery_seconds", "Time one delivery attempt took, answer included.", ["trigger"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
REPLIES = Counter(
    "ripple_replies_total", "Reply events by trigger: stored, or dropped (no hops or fan-out budget left).",
    ["trigger", "result"],
)
FILTERED = Counter("ripple_filtered_total", "Events a trigger read but its filter did not match.", ["trigger"])
TASK_RESTARTS = Counter(
    "ripple_task_restarts_total", "Supervised long-running tasks restarted after a failure, by kind of task.", ["task"]
)
POISON_EVENTS = Counter(
    "ripple_poison_events_total",
    "Events whose handling raised, by stage: decode, filter, delivery, reply, router-decode, router-filter.",
    ["stage"],
)
SOURCE_EVENTS = Counter(
    "ripple_source_events_total",
    "Events of EventSources (namespace/name) by outcome: sent (the sink accepted), retried, dead-lettered, "
    "refused (a webhook request that failed its signature), rejected (not usable as an event), unavailable "
    "(the sink did not accept; the webhook sender was told to retry).",
    ["source", "outcome"],
)
COLD_STARTS = Counter("ripple_cold_starts_total", "Functions woken from zero replicas.", ["function"])


async def serve_metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


@functools.lru_cache(maxsize=4096)
def _child(metric: MetricWrapperBase, labels: tuple[str, ...]) -> MetricWrapperBase:
    return metric.labels(*labels)


def child(metric: M, *labels: str) -> M:
    """``metric.labels(*labels)``, remembered: on the hot path the lookup under the metric's lock cost more
    than the increment itself. Every label set is bounded (brokers, triggers, outcomes), as is the cache."""
    return _child(metric, labels)  # type: ignore[return-value]
