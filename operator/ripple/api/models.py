"""Typed models of Ripple's manifests (group ``ripple.dev``, version ``v1alpha1``).

These models are the one definition of the API: local mode validates manifests with them and the CRD schemas
are generated from them, so the two cannot drift. Field names are camelCase in YAML, snake_case in Python.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from ripple.api.durations import DURATION_PATTERN, Duration, seconds
from ripple.api.schedules import Schedule, ScheduleError
from ripple.defaults import MAX_BURST, MAX_EVENTS_PER_SECOND, MAX_REPLAY_RATE, REPLAY_RATE
from ripple.filters import Filter, FilterError, compile_filter

__all__ = [
    "ADDRESSABLE_KINDS",
    "API_VERSION",
    "GROUP",
    "KINDS",
    "TLS_KEYS",
    "VERSION",
    "AttributesFilter",
    "Broker",
    "BrokerRateLimit",
    "BrokerSpec",
    "CeOverrides",
    "DeliverySpec",
    "Destination",
    "EnvVar",
    "EventPolicy",
    "EventPolicySpec",
    "EventSource",
    "EventSourceSpec",
    "Function",
    "FunctionSource",
    "FunctionSpec",
    "KubernetesSource",
    "Model",
    "NatsSource",
    "ObjectMeta",
    "OidcSender",
    "Parallel",
    "ParallelBranch",
    "ParallelSpec",
    "PingSource",
    "Placement",
    "PolicySender",
    "PolicyTarget",
    "PostgresSource",
    "Reference",
    "ReplaySpec",
    "Resource",
    "ResourceSelector",
    "Retention",
    "ScaleSpec",
    "SecretKeyRef",
    "Sequence",
    "SequenceSpec",
    "SequenceStep",
    "ServiceAccountSender",
    "Sink",
    "SinkReference",
    "StorageSource",
    "TokenSender",
    "Trigger",
    "TriggerSpec",
    "WebhookSignature",
    "WebhookSource",
    "WebhookTls",
    "backoff",
    "default_broker",
]

GROUP = "ripple.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_STEPS = 100
MAX_BRANCHES = 100
Name = Annotated[str, Field(pattern=DNS_LABEL, max_length=63, description="A DNS-1123 label.")]


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, use_attribute_docstrings=True
    )


class ObjectMeta(Model):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    name: Name
    namespace: Name = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


# --- Function -------------------------------------------------------------------------------------------------


class EnvVar(Model):
    """An environment variable of the function's process."""

    name: str = Field(min_length=1, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    """Environment variable name."""
    value: str = ""
    """Value given to the function process."""


class FunctionSource(Model):
    path: str | None = Field(default=None, min_length=1)
    """Local mode: a directory, relative to the manifest file, put on the function's import path."""
    inline: str | None = Field(default=None, min_length=1)
    """Python source of the handler module, inline in the manifest."""


class ScaleSpec(Model):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "self.minScale <= self.maxScale", "message": "minScale must not exceed maxScale",
         "fieldPath": ".minScale"},
    ]})

    min_scale: int = Field(default=0, ge=0)
    """Replicas kept even when idle; 0 lets the function scale to zero."""
    max_scale: int = Field(default=10, ge=1)
    """Upper bound on replicas."""
    target_concurrency: int = Field(default=10, ge=1)
    """In-flight events one replica should handle at once."""
    idle_timeout: Duration = "PT60S"
    """Scale to zero after no events for this long."""

    @model_validator(mode="after")
    def _bounds(self) -> ScaleSpec:
        if self.min_scale > self.max_scale:
            raise ValueError("minScale must not exceed maxScale")
        return self


HANDLER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class FunctionSpec(Model):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "(has(self.source) && has(self.source.path) ? 1 : 0) + (has(self.source) && has(self.source.inline)"
                " ? 1 : 0) + (has(self.image) ? 1 : 0) == 1",
        "message": "exactly one of source.path, source.inline, image must be set",
    }]})

    handler: str = Field(pattern=HANDLER_PATTERN)
    """The handler as ``module:function``; it receives one event and may return a reply event."""
    source: FunctionSource | None = None
    """Where the code comes from, when not from ``image``."""
    image: str | None = Field(default=None, min_length=1)
    """A container image built on the Ripple runtime image."""
    env: list[EnvVar] = Field(default_factory=list)
    """Environment of the function process."""
    timeout: Duration = "PT30S"
    """Longest time one call of the handler may take."""
    scale: ScaleSpec = Field(default_factory=ScaleSpec)
    """Scaling bounds and targets."""

    @model_validator(mode="after")
    def _one_code_source(self) -> FunctionSpec:
        given = [
            name
            for name, value in (
                ("source.path", self.source and self.source.path),
                ("source.inline", self.source and self.source.inline),
                ("image", self.image),
            )
            if value
        ]
        if len(given) != 1:
            raise ValueError(f"exactly one of source.path, source.inline, image must be set (found {given or 'none'})")
        return self


# --- Trigger --------------------------------------------------------------------------------------------------


ADDRESSABLE_KINDS = ("Sequence", "Parallel")
"""Kinds besides Function a destination can name: delivering to one stores the event at its address."""


class Reference(Model):
    kind: Literal["Function", "Sequence", "Parallel"]
    """Kind of the referenced object: a Function, or a Sequence or Parallel (the event enters it)."""
    name: Name
    """Name of the referenced object."""
    namespace: Name | None = None
    """Namespace of the referenced object; defaults to the referrer's."""
    api_version: str = API_VERSION
    """API version of the referenced object."""

    def key(self, namespace: str) -> tuple[str, str]:
        """``(namespace, name)`` of the referenced object, as seen from an object in ``namespace``."""
        return self.namespace or namespace, self.name


class Destination(Model):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "has(self.ref) != has(self.uri)", "message": "exactly one of ref, uri must be set"},
    ]})

    ref: Reference | None = None
    """An addressable object in the cluster."""
    uri: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    """An absolute http(s) URL."""

    @model_validator(mode="after")
    def _one_target(self) -> Destination:
        if (self.ref is None) == (self.uri is None):
            raise ValueError("exactly one of ref, uri must be set")
        return self

    def target(self, namespace: str) -> str | tuple[str, str]:
        """Where this points, seen from an object in ``namespace``: the URI as given, or the referenced
        Function's ``(namespace, name)``. Every resolver starts here and differs only in how it finds a
        Function's address (a fixed table, a ready replica, the Function's Service)."""
        if self.uri is not None:
            return self.uri
        assert self.ref is not None  # the validator holds exactly one of uri and ref
        return self.ref.key(namespace)


class DeliverySpec(Model):
    retry: int = Field(default=3, ge=0, le=100)
    """Attempts after the first before the event is dead-lettered."""
    backoff_policy: Literal["linear", "exponential"] = "exponential"
    """linear waits backoffDelay*n before retry n; exponential waits backoffDelay*2^n."""
    backoff_delay: Duration = "PT0.2S"
    """Base delay of the backoff policy."""
    timeout: Duration = "PT30S"
    """Longest time one delivery attempt may take."""
    retry_after_max: Duration = "PT60S"
    """Cap on a subscriber's Retry-After (429 and 503 answers)."""
    max_event_age: Duration | None = None
    """Stop retrying an event older than this (measured from its arrival at the broker)."""
    dead_letter_sink: Destination | None = None
    """Where undeliverable events go; without it they go to the broker's dead-letter stream."""
    format: Literal["binary", "json"] = "binary"
    """HTTP content mode of deliveries: binary (ce- headers) or json (structured)."""
    concurrency: int = Field(default=16, ge=1, le=1000)
    """Deliveries in flight at once for this trigger."""

    def backoff_seconds(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` (1 for the first retry)."""
        return backoff(seconds(self.backoff_delay), self.backoff_policy, retry_number)


def backoff(base: float, policy: Literal["linear", "exponential"], retry_number: int) -> float:
    """linear: ``base * n`` before retry n; exponential: ``base * 2**n``."""
    return base * retry_number if policy == "linear" else base * 2.0**retry_number


class AttributesFilter(Model):
    attributes: dict[str, str] = Field(default_factory=dict)
    """Exact match on attributes and extensions, all must hold (an empty value matches any value)."""


RFC3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"


class ReplaySpec(Model):
    """Events the broker already stored that a trigger is to receive as well, once: from ``since`` ago (or a
    time), or from a stream sequence, up to ``until`` or what the broker held when the replay began."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "has(self.since) != has(self.fromSeq)", "message": "exactly one of since, fromSeq must be set"},
    ]})

    since: str | None = Field(default=None, pattern=f"{DURATION_PATTERN}|{RFC3339}")
    """How far back to start: a duration before the trigger's first start (``PT1H``) or an RFC 3339 time."""
    from_seq: int | None = Field(default=None, ge=1)
    """The broker stream's sequence to start from."""
    until: str | None = Field(default=None, pattern=RFC3339)
    """The last stored time to replay (RFC 3339); default: what the broker held when the replay began."""
    rate: int = Field(default=REPLAY_RATE, ge=1, le=MAX_REPLAY_RATE)
    """Replayed events per second, at most, so that a replay cannot swamp the trigger's subscriber."""

    @model_validator(mode="after")
    def _one_start(self) -> ReplaySpec:
        if (self.since is None) == (self.from_seq is None):
            raise ValueError("exactly one of since, fromSeq must be set")
        return self


class TriggerSpec(Model):
    broker: Name = "default"
    """The broker whose events this trigger receives."""
    filter: AttributesFilter | None = None
    """Knative-compatible attribute filter."""
    filters: list[dict[str, Any]] | None = None
    """Subscriptions API filter expressions, all of which must hold; wins over filter when both are set."""
    subscriber: Destination
    """Where matching events are delivered."""
    delivery: DeliverySpec = Field(default_factory=DeliverySpec)
    """Retry, timeout and dead-letter settings."""
    replay: ReplaySpec | None = None
    """Start this trigger with events stored before it (each replay runs once, marked ``ripplereplay``)."""

    @functools.cached_property
    def compiled_filter(self) -> Filter:
        """The filter, compiled once (``filters`` wins over ``filter``); raises :class:`FilterError`."""
        attributes = self.filter.attributes if self.filter is not None else None
        return compile_filter(attributes, self.filters)


# --- Broker ---------------------------------------------------------------------------------------------------


class Retention(Model):
    max_age: Duration = "P7D"
    """Events older than this are removed from the broker's log."""
    max_bytes: int = Field(default=-1, ge=-1)
    """Size cap of the broker's log in bytes; -1 for no cap (oldest removed first when set)."""


class Placement(Model):
    tags: list[str] = Field(min_length=1, max_length=16)
    """Server tags (nats-server ``server_tags``) every replica's server must have."""


class BrokerRateLimit(Model):
    events_per_second: float = Field(gt=0, le=MAX_EVENTS_PER_SECOND)
    """Events per second the ingress takes for the broker, from all its producers together (per ingress replica)."""
    burst: int | None = Field(default=None, ge=1, le=MAX_BURST)
    """Events it takes at once after a quiet spell; unset: one second's worth."""


class BrokerSpec(Model):
    retention: Retention = Field(default_factory=Retention)
    """How long and how much the broker keeps."""
    rate_limit: BrokerRateLimit | None = None
    """The broker's own rate limit at the ingress (past it, 429 with Retry-After): where the installation sets one
    (``--rate-limit-broker``), this may only make it stricter; unset: the installation's."""
    duplicate_window: Duration = "PT2M"
    """A re-sent event with the same source and id inside this window is stored once."""
    replicas: Literal[1, 3, 5] | None = None
    """Copies JetStream keeps of the broker's events, dead letters and consumers (Raft-replicated: 3 survive the
    loss of one server, 5 of two); unset: the installation's default (1 in local mode; the chart's operator says
    3 when its NATS is a cluster). Changing it on a live broker moves the stream to the new count."""
    placement: Placement | None = None
    """Where the replicas may go: only servers with every one of these tags."""


# --- Resources ------------------------------------------------------------------------------------------------


class Resource(Model):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    api_version: Literal["ripple.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: str
    metadata: ObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def key(self) -> tuple[str, str]:
        return self.metadata.namespace, self.metadata.name


class Function(Resource):
    """A Function: Python code that handles CloudEvents, scaled from zero with its demand."""

    kind: Literal["Function"]
    spec: FunctionSpec


class Trigger(Resource):
    """A Trigger: delivers a broker's events that pass its filter to a subscriber, with retries and dead letters."""

    kind: Literal["Trigger"]
    spec: TriggerSpec


class Broker(Resource):
    """A Broker: a durable event log that accepts CloudEvents over HTTP and feeds its triggers."""

    kind: Literal["Broker"]
    spec: BrokerSpec = Field(default_factory=BrokerSpec)


# --- EventSource ----------------------------------------------------------------------------------------------


class SinkReference(Reference):
    kind: Literal["Broker", "Function"]  # type: ignore[assignment]
    """Kind of the referenced object."""


class Sink(Destination):
    ref: SinkReference | None = None
    """A Broker (usual) or a Function."""


class SecretKeyRef(Model):
    name: Name
    """Name of a Secret in the source's namespace."""
    key: str = Field(min_length=1)
    """Key within the Secret."""


class CeOverrides(Model):
    extensions: dict[str, str] = Field(
        default_factory=dict,
        json_schema_extra={"x-kubernetes-validations": [
            {"rule": "self.all(k, k.matches('^[a-z0-9]+$'))", "message": "extension names use only a-z and 0-9"},
        ]},
    )
    """Extension attributes added to every event the source emits (names use a-z and 0-9)."""

    @model_validator(mode="after")
    def _names(self) -> CeOverrides:
        bad = [name for name in self.extensions if not re.fullmatch(r"[a-z0-9]+", name)]
        if bad:
            raise ValueError(f"extension names use only a-z and 0-9: {bad}")
        return self


SIGNATURE_SCHEMES = ("github", "stripe", "hmac-sha256", "token")


class WebhookSignature(Model):
    """How a webhook proves that a request comes from its sender; a request that fails is answered 401."""

    scheme: Literal["github", "stripe", "hmac-sha256", "token"]
    """github: X-Hub-Signature-256; stripe: Stripe-Signature (timestamped); hmac-sha256: a hex HMAC-SHA256 of the
    body in ``header``; token: a bearer token in ``header``."""
    secret_ref: SecretKeyRef
    """The shared secret (the HMAC key, or the token)."""
    header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    """Header carrying the signature (hmac-sha256: X-Ripple-Signature; token: Authorization); github and stripe
    use theirs."""
    tolerance: Duration = "PT5M"
    """stripe: how far the signed timestamp may be from now."""


TLS_KEYS = ("tls.crt", "tls.key")


class WebhookTls(Model):
    secret_name: Name
    """A ``kubernetes.io/tls`` Secret (``tls.crt``, ``tls.key``) in the source's namespace, e.g. cert-manager's."""


class WebhookSource(Model):
    path: str = Field(default="/", pattern=r"^/[^\s]*$")
    """URL path the source listens on."""
    event_type: str = Field(default="dev.ripple.webhook", min_length=1)
    """CloudEvents type of the events made from requests (CloudEvents sent as such keep theirs)."""
    signature: WebhookSignature | None = None
    """How requests are verified; without it the endpoint is open (the EventSource's status says so)."""
    tls: WebhookTls | None = None
    """Serve HTTPS with this certificate (in a cluster; reloaded when the Secret is renewed)."""


CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly|every \S+)|(\S+\s+){4}\S+)$"


class PingSource(Model):
    schedule: str = Field(pattern=CRON_PATTERN)
    """Cron schedule (five fields, or @hourly, @every 30s, ...)."""
    timezone: str = "UTC"
    """IANA time zone the schedule is read in."""
    data: str = ""
    """Payload of each event."""
    content_type: str = "application/json"
    """Content type of the payload."""
    catch_up: Duration | None = None
    """On start, also fire the ticks missed within this long (none by default: missed ticks are not replayed)."""

    @model_validator(mode="after")
    def _schedule(self) -> PingSource:
        try:
            Schedule(self.schedule, self.timezone)
        except ScheduleError as exc:
            raise ValueError(str(exc)) from None
        return self


class ResourceSelector(Model):
    """A kind of Kubernetes object to watch."""

    api_version: str = Field(min_length=1)
    """API version of the watched kind, e.g. v1 or apps/v1."""
    kind: str = Field(min_length=1)
    """Kind to watch, e.g. ConfigMap."""
    label_selector: str | None = None
    """Only objects matching this label selector."""


class KubernetesSource(Model):
    resources: list[ResourceSelector] = Field(min_length=1)
    """Kinds to watch; each add, update and delete becomes an event."""
    mode: Literal["Reference", "Resource"] = "Reference"
    """Reference: the event carries the object's reference; Resource: the whole object."""
    namespaces: list[Name] = Field(default_factory=list)
    """Namespaces to watch; empty means the source's own."""


def _all_row_changes() -> list[Literal["INSERT", "UPDATE", "DELETE"]]:
    return ["INSERT", "UPDATE", "DELETE"]


class PostgresSource(Model):
    connection_secret_ref: SecretKeyRef
    """Secret key holding a libpq connection string."""
    tables: list[str] = Field(min_length=1)
    """Tables whose row changes become events (schema.table)."""
    operations: list[Literal["INSERT", "UPDATE", "DELETE"]] = Field(
        default_factory=_all_row_changes, min_length=1
    )
    """Which changes become events."""
    publication: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """An existing publication to read; without it the source creates ripple_<namespace>_<name> for tables."""
    slot: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,63}$")
    """The logical replication slot; without it ripple_<namespace>_<name>, created if missing."""


def _created_only() -> list[Literal["created", "deleted"]]:
    return ["created"]


class StorageSource(Model):
    endpoint: str = Field(pattern=r"^https?://[^\s]+$")
    """S3-compatible endpoint URL."""
    bucket: str = Field(min_length=3, max_length=63)
    """Bucket to watch."""
    events: list[Literal["created", "deleted"]] = Field(default_factory=_created_only, min_length=1)
    """Object events that become CloudEvents."""
    prefix: str = ""
    """Only object keys with this prefix."""
    credentials_secret_ref: SecretKeyRef | None = None
    """Access key and secret, as a Secret key holding 'ACCESS_KEY:SECRET_KEY'."""
    mode: Literal["poll", "notifications"] = "poll"
    """poll: list the bucket every pollInterval, with a checkpoint; notifications: accept the server's S3 event
    notifications (AWS, SNS, MinIO formats) over HTTP."""
    poll_interval: Duration = "PT10S"
    """poll: time between listings."""
    initial_listing: Literal["skip", "emit"] = "skip"
    """poll: a new source takes the bucket as it is as its starting point (skip), or announces every object (emit)."""
    region: str = Field(default="us-east-1", min_length=1)
    """Region of the bucket (S3-compatible servers mostly ignore it)."""
    signature: WebhookSignature | None = None
    """notifications: how requests are verified (the webhook schemes); without it the endpoint is open."""


class NatsSource(Model):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "has(self.stream) == has(self.durable)",
         "message": "stream and durable are set together or not at all"},
        {"rule": "!has(self.stream) || !has(self.queueGroup)", "message": "queueGroup is for core NATS only"},
    ]})

    url: str = Field(pattern=r"^(nats|tls)://[^\s]+$")
    """NATS server URL."""
    subject: str = Field(min_length=1)
    """Subject to subscribe to (wildcards allowed)."""
    queue_group: str | None = None
    """Share messages among the source's replicas."""
    credentials_secret_ref: SecretKeyRef | None = None
    """Credentials file content."""
    stream: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,255}$")
    """A JetStream stream holding the subject: messages are then read by the ``durable`` consumer and acked only
    after the sink accepted them (at least once); without it the subscription is core NATS (at most once)."""
    durable: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,255}$")
    """Name of the durable JetStream consumer (with ``stream``), so a restarted adapter resumes where it left."""

    @model_validator(mode="after")
    def _jetstream(self) -> NatsSource:
        if (self.stream is None) != (self.durable is None):
            raise ValueError("stream and durable are set together (JetStream) or not at all (core NATS)")
        if self.stream is not None and self.queue_group is not None:
            raise ValueError("queueGroup is for core NATS; a durable JetStream consumer is shared by its replicas")
        return self


SOURCE_KINDS = ("webhook", "ping", "kubernetes", "postgres", "storage", "nats")


class EventSourceSpec(Model):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": " + ".join(f"(has(self.{k}) ? 1 : 0)" for k in SOURCE_KINDS) + " == 1",
        "message": f"exactly one of {', '.join(SOURCE_KINDS)} must be set",
    }]})

    sink: Sink
    """Where the events go."""
    ce_overrides: CeOverrides | None = None
    """Changes applied to every event before it is sent."""
    delivery: DeliverySpec = Field(default_factory=DeliverySpec)
    """Retries and dead-letter sink of the events the source sends (a webhook's sender retries its own)."""
    webhook: WebhookSource | None = None
    """Events from HTTP requests."""
    ping: PingSource | None = None
    """Events on a schedule."""
    kubernetes: KubernetesSource | None = None
    """Events from changes of Kubernetes objects."""
    postgres: PostgresSource | None = None
    """Events from row changes in PostgreSQL."""
    storage: StorageSource | None = None
    """Events from object uploads and deletes in S3-compatible storage."""
    nats: NatsSource | None = None
    """Events from messages on a NATS subject."""

    @property
    def kind(self) -> str:
        """Which kind of source this is: ``webhook``, ``ping``, ``kubernetes``, ``postgres``, ``storage``, ``nats``."""
        return next(kind for kind in SOURCE_KINDS if getattr(self, kind) is not None)

    def secret_refs(self) -> list[tuple[str, SecretKeyRef]]:
        """Every Secret key the source names, with its field path."""
        refs: list[tuple[str, SecretKeyRef | None]] = []
        if self.webhook is not None and self.webhook.signature is not None:
            refs.append(("spec.webhook.signature.secretRef", self.webhook.signature.secret_ref))
        if self.webhook is not None and self.webhook.tls is not None:
            name = self.webhook.tls.secret_name
            refs += [("spec.webhook.tls.secretName", SecretKeyRef(name=name, key=key)) for key in TLS_KEYS]
        if self.postgres is not None:
            refs.append(("spec.postgres.connectionSecretRef", self.postgres.connection_secret_ref))
        if self.storage is not None:
            refs.append(("spec.storage.credentialsSecretRef", self.storage.credentials_secret_ref))
            if self.storage.signature is not None:
                refs.append(("spec.storage.signature.secretRef", self.storage.signature.secret_ref))
        if self.nats is not None:
            refs.append(("spec.nats.credentialsSecretRef", self.nats.credentials_secret_ref))
        return [(path, ref) for path, ref in refs if ref is not None]

    @model_validator(mode="after")
    def _one_kind(self) -> EventSourceSpec:
        given = [k for k in SOURCE_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"exactly one of {', '.join(SOURCE_KINDS)} must be set (found {given or 'none'})")
        return self


class EventSource(Resource):
    """An EventSource: turns webhooks, schedules, Kubernetes objects, databases, uploads or NATS into CloudEvents."""

    kind: Literal["EventSource"]
    spec: EventSourceSpec


# --- Sequence and Parallel ----------------------------------------------------------------------------------


class SequenceStep(Destination):
    """One step of a Sequence: a subscriber (``ref`` to a Function, or ``uri``) with its own delivery."""

    name: Name | None = None
    """A name for the step in status, traces and dead letters (else its 0-based index)."""
    delivery: DeliverySpec = Field(default_factory=DeliverySpec)
    """Retries, timeout and dead-letter sink of this step."""
    on_error: Destination | None = None
    """Where the event this step failed on goes instead of the dead letter (a compensation step)."""


class SequenceSpec(Model):
    broker: Name = "default"
    """The broker whose JetStream keeps every hand-off between steps."""
    steps: list[SequenceStep] = Field(min_length=1, max_length=MAX_STEPS)
    """Step i's reply is step i+1's input; a step that answers 2xx without an event ends the chain."""
    reply: Destination | None = None
    """Where the last step's reply goes; without it, back to the broker for triggers to pick up."""

    @model_validator(mode="after")
    def _unique_names(self) -> SequenceSpec:
        names = [step.name for step in self.steps if step.name is not None]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"step names must be unique: {repeated}")
        return self


class ParallelBranch(Model):
    """One branch of a Parallel: the events that pass its filter go to its subscriber."""

    name: Name | None = None
    """A name for the branch in status and dead letters (else its 0-based index)."""
    filter: AttributesFilter | None = None
    """Knative-compatible attribute filter; without filter and filters the branch takes every event."""
    filters: list[dict[str, Any]] | None = None
    """Subscriptions API filter expressions (as a Trigger's), all of which must hold."""
    subscriber: Destination
    """Where the branch's events are delivered."""
    delivery: DeliverySpec = Field(default_factory=DeliverySpec)
    """Retries, timeout and dead-letter sink of this branch."""
    reply: Destination | None = None
    """Where this branch's replies go (else the Parallel's reply)."""

    @functools.cached_property
    def compiled_filter(self) -> Filter:
        """The branch's filter, compiled once; raises :class:`FilterError`."""
        attributes = self.filter.attributes if self.filter is not None else None
        return compile_filter(attributes, self.filters)


class ParallelSpec(Model):
    broker: Name = "default"
    """The broker whose JetStream keeps each branch's events."""
    branches: list[ParallelBranch] = Field(min_length=1, max_length=MAX_BRANCHES)
    """Every branch whose filter the event passes gets it."""
    reply: Destination | None = None
    """Where branch replies go unless the branch names its own; without it, back to the broker."""


class Sequence(Resource):
    """A Sequence: steps that each get the previous step's reply, every hand-off durable in JetStream."""

    kind: Literal["Sequence"]
    spec: SequenceSpec


class Parallel(Resource):
    """A Parallel: branches that each get the events passing their filter, with their own delivery and replies."""

    kind: Literal["Parallel"]
    spec: ParallelSpec


# --- EventPolicy ----------------------------------------------------------------------------------------------

class PolicyTarget(Model):
    """A broker the policy admits its senders to."""

    broker: Name
    """A broker of the policy's namespace."""


class ServiceAccountSender(Model):
    """A Kubernetes ServiceAccount."""

    namespace: Name
    """The ServiceAccount's namespace."""
    name: Name
    """The ServiceAccount's name."""


class OidcSender(Model):
    """Holders of JWTs an OIDC issuer signed for an audience."""

    issuer: str = Field(pattern=r"^https://[^\s]+$|^http://(127\.0\.0\.1|localhost)(:[0-9]+)?(/[^\s]*)?$")
    """The issuer (``iss``); its keys are read from ``<issuer>/.well-known/openid-configuration``. HTTPS, except
    an issuer on this machine (for trying it locally)."""
    audience: str = Field(min_length=1, max_length=512)
    """The audience (``aud``) tokens must be issued for."""
    claims: dict[str, str] = Field(default_factory=dict, max_length=16)
    """Claims that must hold exactly these string values (e.g. ``sub``, ``email``, a group)."""


class TokenSender(Model):
    """Holders of a static bearer token."""

    secret_ref: SecretKeyRef
    """A Secret of the policy's namespace holding the bearer token (at least 16 bytes) an outside producer sends."""


class PolicySender(Model):
    """One kind of allowed sender; exactly one of its fields is set."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "[has(self.serviceAccount), has(self.oidc), has(self.token)].filter(x, x).size() == 1",
         "message": "exactly one of serviceAccount, oidc, token must be set"},
    ]})

    service_account: ServiceAccountSender | None = None
    """A Kubernetes ServiceAccount, its bearer token checked with a TokenReview for the broker's audience."""
    oidc: OidcSender | None = None
    """Holders of a JWT from an OIDC issuer (signature, ``iss``, ``aud``, ``exp`` and the claims checked)."""
    token: TokenSender | None = None
    """Holders of a static bearer token."""

    @model_validator(mode="after")
    def _one_kind(self) -> PolicySender:
        if sum(x is not None for x in (self.service_account, self.oidc, self.token)) != 1:
            raise ValueError("exactly one of serviceAccount, oidc, token must be set")
        return self


class EventPolicySpec(Model):
    to: list[PolicyTarget] = Field(default_factory=list, max_length=64)
    """The brokers of this namespace the policy admits senders to; empty: every broker of the namespace."""
    from_: list[PolicySender] = Field(alias="from", min_length=1, max_length=64)
    """Who may send; any one of them will do."""
    filters: list[dict[str, Any]] | None = Field(default=None, max_length=16)
    """What they may send: Subscriptions API filter expressions (as a Trigger's, e.g. ``prefix: {type: order.}``
    or ``cesql: ...``) that every event of a request must pass, else the request is refused (403)."""

    @functools.cached_property
    def compiled_filter(self) -> Filter:
        """The filter, compiled once (no filters: every event); raises :class:`FilterError`."""
        return compile_filter(None, self.filters)

    @model_validator(mode="after")
    def _filters_compile(self) -> EventPolicySpec:
        try:
            _ = self.compiled_filter
        except FilterError as exc:
            raise ValueError(f"filters: {exc}") from None
        return self


class EventPolicy(Resource):
    """Who may send events to a namespace's brokers, and what: a broker that any policy names admits only the
    senders some policy allows."""

    kind: Literal["EventPolicy"]
    spec: EventPolicySpec


KINDS: dict[str, type[Resource]] = {
    "Function": Function,
    "Trigger": Trigger,
    "Broker": Broker,
    "EventSource": EventSource,
    "Sequence": Sequence,
    "Parallel": Parallel,
    "EventPolicy": EventPolicy,
}


def default_broker(namespace: str) -> Broker:
    return Broker.model_validate(
        {"apiVersion": API_VERSION, "kind": "Broker", "metadata": {"name": "default", "namespace": namespace}}
    )
