"""Names of streams, subjects and consumers in JetStream: the layout every component agrees on.

One stream per broker holds its events on ``ripple.<ns>.<broker>.e.<type>``. The event type keeps its dots as
subject tokens, so a consumer can select one type exactly (``...e.order.placed``) or a dotted family
(``...e.order.>``) on the server. Each token is percent-encoded so that characters NATS reserves (``*``, ``>``,
whitespace) and empty tokens cannot break the subject.

A trigger whose filter does not pin ``type`` reads ``ripple.<ns>.<broker>.t.<trigger>`` instead, where the
broker's router puts a copy of each event its filter matches (the router tests each event once against an index
of such triggers, so the cost stays flat as they multiply). Events redriven to a single trigger use
``ripple.<ns>.<broker>.r.<trigger>``. Dead letters live in a second stream per broker, on
``rippledlq.<ns>.<broker>.<trigger>``, so that their retention is separate from the live log.

A Sequence or Parallel runs as hops, each read like a trigger from ``...t.<hop>`` by its own durable consumer.
A hop's name starts with ``_`` (no Kubernetes name can), so it never meets a Trigger's: ``_seq_<name>_<i>`` is
step *i*'s input, ``_seq_<name>_<i>_err`` its error route, ``_seq_<name>_reply`` the Sequence's reply,
``_par_<name>`` a Parallel's input (copied to each matching branch) and ``_par_<name>_<i>`` branch *i*.
"""

from __future__ import annotations

import functools
from urllib.parse import quote

__all__ = [
    "CONSUMER_PREFIX",
    "ROUTER_CONSUMER",
    "all_events_subject",
    "broker_prefix",
    "broker_subjects",
    "consumer_name",
    "dead_letter_stream_name",
    "dead_letter_subject",
    "dead_letter_subjects",
    "event_subject",
    "hop_subject",
    "is_hop",
    "parallel_branch",
    "parallel_entry",
    "parallel_reply",
    "parse_stream_name",
    "redrive_subject",
    "routed_subject",
    "sequence_error",
    "sequence_reply",
    "sequence_step",
    "stream_name",
    "trigger_subjects",
    "type_token",
]

_TOKEN_SAFE = "-_~:/+=@,;!$&'()"


def stream_name(namespace: str, broker: str) -> str:
    # Kubernetes names never contain '_', so the separator keeps names unique.
    return f"RIPPLE_{namespace}_{broker}"


def parse_stream_name(name: str) -> tuple[str, str] | None:
    """(namespace, broker) of a broker's event stream, ``None`` for any other stream."""
    prefix, _, rest = name.partition("_")
    namespace, _, broker = rest.partition("_")
    if prefix != "RIPPLE" or not namespace or not broker or namespace == "DLQ" or "_" in broker:
        return None
    return namespace, broker


def dead_letter_stream_name(namespace: str, broker: str) -> str:
    return f"RIPPLE_DLQ_{namespace}_{broker}"


def broker_prefix(namespace: str, broker: str) -> str:
    return f"ripple.{namespace}.{broker}"


@functools.lru_cache(maxsize=4096)
def type_token(event_type: str) -> str:
    """The subject tokens for an event type: its dot-separated parts, each percent-encoded (empty → ``%``)."""
    return ".".join(quote(part, safe=_TOKEN_SAFE) if part else "%" for part in event_type.split("."))


def event_subject(namespace: str, broker: str, event_type: str) -> str:
    return f"{broker_prefix(namespace, broker)}.e.{type_token(event_type)}"


def all_events_subject(namespace: str, broker: str) -> str:
    return f"{broker_prefix(namespace, broker)}.e.>"


def redrive_subject(namespace: str, broker: str, trigger: str) -> str:
    return f"{broker_prefix(namespace, broker)}.r.{trigger}"


def routed_subject(namespace: str, broker: str, trigger: str) -> str:
    return f"{broker_prefix(namespace, broker)}.t.{trigger}"


def broker_subjects(namespace: str, broker: str) -> list[str]:
    prefix = broker_prefix(namespace, broker)
    return [f"{prefix}.e.>", f"{prefix}.t.*", f"{prefix}.r.*"]


def dead_letter_subject(namespace: str, broker: str, trigger: str) -> str:
    return f"rippledlq.{namespace}.{broker}.{trigger}"


def dead_letter_subjects(namespace: str, broker: str) -> list[str]:
    return [f"rippledlq.{namespace}.{broker}.*"]


def trigger_subjects(namespace: str, broker: str, trigger: str, types: frozenset[str] | None) -> list[str]:
    """What a trigger's consumer reads: its pinned types straight from the log (else what the router sends it),
    plus events redriven to it alone."""
    if types is None:
        events = [routed_subject(namespace, broker, trigger)]
    else:
        events = sorted(event_subject(namespace, broker, t) for t in types)
    return [*events, redrive_subject(namespace, broker, trigger)]


def sequence_step(sequence: str, index: int) -> str:
    return f"_seq_{sequence}_{index}"


def sequence_error(sequence: str, index: int) -> str:
    return f"_seq_{sequence}_{index}_err"


def sequence_reply(sequence: str) -> str:
    return f"_seq_{sequence}_reply"


def parallel_entry(parallel: str) -> str:
    return f"_par_{parallel}"


def parallel_branch(parallel: str, index: int) -> str:
    return f"_par_{parallel}_{index}"


def parallel_reply(parallel: str, index: int) -> str:
    return f"_par_{parallel}_{index}_reply"


def is_hop(name: str) -> bool:
    """Whether a trigger name is one of a Sequence's or Parallel's hops."""
    return name.startswith("_")


def hop_subject(namespace: str, broker: str, hop: str) -> str:
    """Where a hop's input is stored: the subject its consumer reads, as a routed trigger's."""
    return routed_subject(namespace, broker, hop)


CONSUMER_PREFIX = "trigger-"


def consumer_name(trigger: str) -> str:
    return f"{CONSUMER_PREFIX}{trigger}"


ROUTER_CONSUMER = "router"
ADVISORY_STREAM = "RIPPLE_ADVISORIES"
"""Where JetStream's max-deliveries advisories are kept, so that none is missed while no dispatcher listens."""
MAX_DELIVERIES_ADVISORIES = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"
BACKSTOP_CONSUMER = "backstop"
