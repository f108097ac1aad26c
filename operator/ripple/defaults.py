"""Defaults that several layers and the command line share, each named once here.

A module that owns a setting imports its default from here; nothing else spells the value out.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ACTIVATION_TIMEOUT",
    "DATA_DIR",
    "DEFAULT_POLICIES",
    "DELIVERY_AUTH_MODES",
    "DISPATCHER_LABELS",
    "MAX_BATCH",
    "MAX_BODY",
    "MAX_BURST",
    "MAX_EVENTS_PER_SECOND",
    "MAX_FANOUT",
    "MAX_REPLAY_RATE",
    "OPERATOR_METRICS_PORT",
    "RATE_LIMIT_SENDERS",
    "REPLAY_RATE",
    "SCALE_DOWN_DELAY",
    "WEBHOOK_CONFIGURATION",
]

MAX_BODY = 1024 * 1024
"""Largest request body the ingress accepts, in bytes (after decompression)."""
MAX_BATCH = 1000
"""Most events in one batched request (``application/cloudevents-batch+json``): more is 413. A 1 MiB body holds
some 15,000 minimal events, each validated, stamped and stored, and rate limits count events: a bound per request
keeps one request's cost, and the debt it can leave in a token bucket, known."""
RATE_LIMIT_SENDERS = 10_000
MAX_EVENTS_PER_SECOND = 1_000_000
"""The largest rate a rate limit may have (``--rate-limit-*``, ``Broker.spec.rateLimit``), in events per second."""
MAX_BURST = 10_000_000
"""The largest burst a rate limit may have, in events."""
"""Senders whose token buckets the ingress remembers at most (the least recently seen go first), so that made-up
identities or addresses cannot grow its memory."""
MAX_FANOUT = 100
"""Most triggers of one broker that one event may be delivered to: a trigger that would let some event reach
more is not started (not Ready in a cluster, refused in local mode), so every trigger that runs gets every event
it matches."""
ACTIVATION_TIMEOUT = 60.0
"""Seconds a delivery waits for a Function woken from zero to become ready."""
SCALE_DOWN_DELAY = 2.0
"""Seconds demand must stay lower before a Function loses replicas."""
DATA_DIR = Path(".ripple")
"""Where ``ripple dev`` keeps its NATS store and state, relative to the working directory."""
REPLAY_RATE = 100
"""Events per second a replay re-delivers, unless told otherwise: a bound, so that replaying a day of events
cannot swamp the trigger's subscriber."""
MAX_REPLAY_RATE = 10_000
"""The highest rate a replay may be given."""
WEBHOOK_CONFIGURATION = "validate.ripple.dev"
"""The webhook configuration the operator registers its admission webhook into, unless told another (a second
release of Ripple in the same cluster needs its own)."""
OPERATOR_METRICS_PORT = 8082
"""Where ``ripple operator`` serves ``GET /metrics``, leader and standbys alike (0: nowhere). Next to the liveness
port the chart gives it (8081)."""
DISPATCHER_LABELS = {"app.kubernetes.io/component": "dispatcher", "app.kubernetes.io/part-of": "ripple"}
"""Labels of the dispatcher's pods, which the NetworkPolicy of each Function admits, unless told others (the chart
names its own release's dispatcher exactly)."""

DELIVERY_AUTH_MODES = ("required", "optional", "off")
"""What a Function's runtime does with delivery tokens (``ripple.signing``): refuse requests without a valid one,
check only those sent, or ignore them."""

DEFAULT_POLICIES = ("open", "namespace")
"""What guards a broker no EventPolicy names (``ripple ingress --default-policy``): nothing, or its namespace's own
ServiceAccounts (the chart's default in a cluster)."""
