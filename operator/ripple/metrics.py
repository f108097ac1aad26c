"""Prometheus metrics of Ripple's components, all defined here: the data plane's, served at ``GET /metrics`` by the
ingress and the dispatcher, and the operator's (``ripple_operator_*``), served on its ``--metrics-port``."""

from __future__ import annotations

import functools
from typing import TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

__all__ = [
    "COLD_STARTS",
    "DELIVERIES",
    "DELIVERY_SECONDS",
    "FILTERED",
    "FUNCTION_PENDING",
    "FUNCTION_REPLICAS",
    "INGRESS_AUTH",
    "INGRESS_EVENTS",
    "INGRESS_REQUESTS",
    "INGRESS_THROTTLED",
    "OPERATOR_ADMISSION_REVIEWS",
    "OPERATOR_LEADER",
    "OPERATOR_OBJECTS",
    "OPERATOR_RECONCILES",
    "OPERATOR_RECONCILE_SECONDS",
    "POISON_EVENTS",
    "REPLIES",
    "SOURCE_EVENTS",
    "TASK_RESTARTS",
    "child",
    "serve_metrics",
]

INGRESS_AUTH = Counter(
    "ripple_ingress_auth_total",
    "Requests to brokers an EventPolicy guards, by outcome: allowed, unauthenticated (401) or forbidden (403).",
    ["namespace", "broker", "outcome"],
)
INGRESS_REQUESTS = Counter(
    "ripple_ingress_requests_total",
    "Requests answered by the ingress, by broker and HTTP status; requests to brokers that do not exist are "
    "counted under namespace and broker '_unknown', so made-up names cannot grow the metrics.",
    ["namespace", "broker", "code"],
)
INGRESS_THROTTLED = Counter(
    "ripple_ingress_throttled_total",
    "Requests to a broker answered 429 (nothing stored) by the rate limit they met: broker or sender. Only brokers "
    "that exist have series (requests to others are 404 first).",
    ["namespace", "broker", "limit"],
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
# Set by the autoscaler that leads (the others have no series), at each tick: what it measured and decided.
FUNCTION_PENDING = Gauge(
    "ripple_function_pending_events",
    "Events waiting for or held by a Function's triggers (namespace/name): the demand the autoscaler scales by.",
    ["function"],
)
FUNCTION_REPLICAS = Gauge(
    "ripple_function_replicas", "Replicas the autoscaler asks for a Function (namespace/name).", ["function"]
)

OPERATOR_RECONCILES = Counter(
    "ripple_operator_reconciles_total",
    "Handler runs of the operator by kind and outcome: success, retry (it asked to be run again later: something "
    "it needs is missing or unavailable) or error (it raised; Kopf retries it too).",
    ["kind", "outcome"],
)
OPERATOR_RECONCILE_SECONDS = Histogram(
    "ripple_operator_reconcile_seconds", "Time one handler run of the operator took, by kind.", ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
OPERATOR_OBJECTS = Gauge(
    "ripple_operator_objects",
    "Objects the leading operator watches, by kind and the status of their Ready condition (True, False, Unknown).",
    ["kind", "ready"],
)
OPERATOR_ADMISSION_REVIEWS = Counter(
    "ripple_operator_admission_reviews_total",
    "Admission reviews the operator's webhook answered, by kind and result: allowed, denied, error.",
    ["kind", "result"],
)
OPERATOR_LEADER = Gauge(
    "ripple_operator_leader", "1 while this operator replica holds the lease and reconciles, 0 while it stands by."
)


async def serve_metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


@functools.lru_cache(maxsize=4096)
def _child(metric: MetricWrapperBase, labels: tuple[str, ...]) -> MetricWrapperBase:
    return metric.labels(*labels)


def child(metric: M, *labels: str) -> M:
    """``metric.labels(*labels)``, remembered: on the hot path the lookup under the metric's lock cost more
    than the increment itself. Every label set is bounded (brokers, triggers, outcomes), as is the cache."""
    return _child(metric, labels)  # type: ignore[return-value]
