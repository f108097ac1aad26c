"""Ripple's generated CRDs (crds/*.yaml) as a real kube-apiserver enforces them: no mocks.

Invalid manifests are sent with ``kubectl create --dry-run=server`` and must be refused naming exactly the offending
field; valid ones are accepted, defaults are filled in by the server, and the kubectl niceties (short names, the
``ripple`` category, printer columns, ``kubectl explain``) work.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.k8s.conftest import REPO, ControlPlane

pytestmark = pytest.mark.k8s

API_VERSION = "ripple.dev/v1alpha1"
DRY_RUN_NAMESPACE = "default"  # dry runs persist nothing, and this namespace always exists
ORDER_FLOW = REPO / "functions" / "order-flow" / "order-flow.yaml"


def manifest(kind: str, spec: dict[str, Any] | None, name: str = "x") -> dict[str, Any]:
    document: dict[str, Any] = {
        "apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, "namespace": DRY_RUN_NAMESPACE},
    }
    if spec is not None:
        document["spec"] = spec
    return document


FUNCTION = manifest("Function", {"handler": "main:handle", "source": {"inline": "def handle(event):\n    pass\n"}})
TRIGGER = manifest("Trigger", {"subscriber": {"ref": {"kind": "Function", "name": "handler"}}})
BROKER = manifest("Broker", {})
WEBHOOK = manifest("EventSource", {"sink": {"ref": {"kind": "Broker", "name": "default"}}, "webhook": {}})
PING = manifest("EventSource", {"sink": {"ref": {"kind": "Broker", "name": "default"}},
                                "ping": {"schedule": "*/5 * * * *"}})
KUBERNETES = manifest("EventSource", {"sink": {"ref": {"kind": "Broker", "name": "default"}},
                                      "kubernetes": {"resources": [{"apiVersion": "v1", "kind": "ConfigMap"}]}})
POSTGRES = manifest("EventSource", {"sink": {"ref": {"kind": "Broker", "name": "default"}},
                                    "postgres": {"connectionSecretRef": {"name": "pg", "key": "dsn"},
                                                 "tables": ["public.orders"]}})
STORAGE = manifest("EventSource", {"sink": {"uri": "http://127.0.0.1:8080/shop/default"},
                                   "storage": {"endpoint": "http://127.0.0.1:9000", "bucket": "uploads"}})
NATS = manifest("EventSource", {"sink": {"ref": {"kind": "Function", "name": "handler"}},
                                "nats": {"url": "nats://127.0.0.1:4222", "subject": "orders.>"}})
SEQUENCE = manifest("Sequence", {"steps": [{"name": "pay", "ref": {"kind": "Function", "name": "pay"}},
                                          {"uri": "http://127.0.0.1:9/ship"}]})
PARALLEL = manifest("Parallel", {"branches": [{"filter": {"attributes": {"type": "order.placed"}},
                                              "subscriber": {"ref": {"kind": "Function", "name": "pay"}}}]})

DELETE = object()
"""A value for ``changed`` that removes the key."""


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``base`` with dotted paths (``__`` for dots, as keywords cannot hold them) set or deleted."""
    document = copy.deepcopy(base)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = document
        for key in parents:
            target = target.setdefault(key, {})
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return document


def case(case_id: str, document: dict[str, Any], field: str, message: str, validate: str = "strict") -> Any:
    """An invalid manifest, the one field path the server must name, and part of its message.

    ``validate="ignore"`` is for an object where a list belongs: kubectl's default strict field validation refuses
    it earlier with 'unknown field "spec.env.A"', before the schema check this test is after.
    """
    return pytest.param(document, field, message, validate, id=case_id)


DURATION_MESSAGE = "should match '^P("
NAME_MESSAGE = "should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"
URI_MESSAGE = r"should match '^https?://[^\s]+$'"
TOO_LONG_NAME = "a" * 64

INVALID = [
    # --- Function
    case("fn-no-spec", manifest("Function", None), "spec", "Required value"),
    case("fn-missing-handler", changed(FUNCTION, spec__handler=DELETE), "spec.handler", "Required value"),
    case("fn-handler-no-colon", changed(FUNCTION, spec__handler="main.handle"), "spec.handler", "should match"),
    case("fn-handler-dash-in-module", changed(FUNCTION, spec__handler="my-module:handle"), "spec.handler",
         "should match"),
    case("fn-handler-no-function", changed(FUNCTION, spec__handler="main:"), "spec.handler", "should match"),
    case("fn-handler-two-colons", changed(FUNCTION, spec__handler="a:b:c"), "spec.handler", "should match"),
    case("fn-handler-not-string", changed(FUNCTION, spec__handler=5), "spec.handler", "must be of type string"),
    case("fn-no-code", changed(FUNCTION, spec__source=DELETE), "spec",
         "exactly one of source.path, source.inline, image must be set"),
    case("fn-empty-source", changed(FUNCTION, spec__source={}), "spec",
         "exactly one of source.path, source.inline, image must be set"),
    case("fn-source-and-image", changed(FUNCTION, spec__image="ghcr.io/acme/fn:1"), "spec",
         "exactly one of source.path, source.inline, image must be set"),
    case("fn-path-and-inline", changed(FUNCTION, spec__source__path="src"), "spec",
         "exactly one of source.path, source.inline, image must be set"),
    case("fn-empty-image", changed(FUNCTION, spec__source=DELETE, spec__image=""), "spec.image",
         "should be at least 1 chars long"),
    case("fn-empty-inline", changed(FUNCTION, spec__source__inline=""), "spec.source.inline",
         "should be at least 1 chars long"),
    case("fn-timeout-go-style", changed(FUNCTION, spec__timeout="30s"), "spec.timeout", DURATION_MESSAGE),
    case("fn-timeout-months", changed(FUNCTION, spec__timeout="P1M"), "spec.timeout", DURATION_MESSAGE),
    case("fn-timeout-number", changed(FUNCTION, spec__timeout=30), "spec.timeout", "must be of type string"),
    case("fn-min-above-max", changed(FUNCTION, spec__scale={"minScale": 5, "maxScale": 2}), "spec.scale.minScale",
         "minScale must not exceed maxScale"),
    case("fn-min-above-default-max", changed(FUNCTION, spec__scale={"minScale": 20}), "spec.scale.minScale",
         "minScale must not exceed maxScale"),
    case("fn-max-zero", changed(FUNCTION, spec__scale={"minScale": 0, "maxScale": 0}), "spec.scale.maxScale",
         "should be greater than or equal to 1"),
    case("fn-min-negative", changed(FUNCTION, spec__scale={"minScale": -1}), "spec.scale.minScale",
         "should be greater than or equal to 0"),
    case("fn-target-concurrency-zero", changed(FUNCTION, spec__scale={"targetConcurrency": 0}),
         "spec.scale.targetConcurrency", "should be greater than or equal to 1"),
    case("fn-idle-timeout-seconds", changed(FUNCTION, spec__scale={"idleTimeout": "60"}), "spec.scale.idleTimeout",
         DURATION_MESSAGE),
    case("fn-scale-not-object", changed(FUNCTION, spec__scale=3), "spec.scale", "must be of type object"),
    case("fn-env-name-digit", changed(FUNCTION, spec__env=[{"name": "1ST", "value": "x"}]), "spec.env[0].name",
         "should match"),
    case("fn-env-name-space", changed(FUNCTION, spec__env=[{"name": "A", "value": "1"}, {"name": "MY VAR"}]),
         "spec.env[1].name", "should match"),
    case("fn-env-missing-name", changed(FUNCTION, spec__env=[{"value": "x"}]), "spec.env[0].name", "Required value"),
    case("fn-env-as-map", changed(FUNCTION, spec__env={"A": "1"}), "spec.env", "must be of type array", "ignore"),
    case("fn-name-uppercase", changed(FUNCTION, metadata__name="Validate_Order"), "metadata.name",
         "RFC 1123 subdomain"),
    # --- Trigger
    case("trig-no-spec", manifest("Trigger", None), "spec", "Required value"),
    case("trig-missing-subscriber", manifest("Trigger", {"broker": "default"}), "spec.subscriber", "Required value"),
    case("trig-subscriber-empty", changed(TRIGGER, spec__subscriber={}), "spec.subscriber",
         "exactly one of ref, uri must be set"),
    case("trig-subscriber-ref-and-uri", changed(TRIGGER, spec__subscriber__uri="http://127.0.0.1:9000/"),
         "spec.subscriber", "exactly one of ref, uri must be set"),
    case("trig-ref-kind-broker", changed(TRIGGER, spec__subscriber__ref__kind="Broker"), "spec.subscriber.ref.kind",
         'Unsupported value: "Broker": supported values: "Function"'),
    case("trig-ref-missing-kind", changed(TRIGGER, spec__subscriber__ref__kind=DELETE), "spec.subscriber.ref.kind",
         "Required value"),
    case("trig-ref-missing-name", changed(TRIGGER, spec__subscriber__ref__name=DELETE), "spec.subscriber.ref.name",
         "Required value"),
    case("trig-ref-name-invalid", changed(TRIGGER, spec__subscriber__ref__name="Ship_Order"),
         "spec.subscriber.ref.name", NAME_MESSAGE),
    case("trig-ref-namespace-invalid", changed(TRIGGER, spec__subscriber__ref__namespace="Shop"),
         "spec.subscriber.ref.namespace", NAME_MESSAGE),
    case("trig-uri-ftp", changed(TRIGGER, spec__subscriber={"uri": "ftp://example.com/"}), "spec.subscriber.uri",
         URI_MESSAGE),
    case("trig-uri-relative", changed(TRIGGER, spec__subscriber={"uri": "/shop/default"}), "spec.subscriber.uri",
         URI_MESSAGE),
    case("trig-uri-with-space", changed(TRIGGER, spec__subscriber={"uri": "http://a b/"}), "spec.subscriber.uri",
         URI_MESSAGE),
    case("trig-broker-uppercase", changed(TRIGGER, spec__broker="Default"), "spec.broker", NAME_MESSAGE),
    case("trig-broker-too-long", changed(TRIGGER, spec__broker=TOO_LONG_NAME), "spec.broker",
         "may not be more than 63"),
    case("trig-backoff-policy", changed(TRIGGER, spec__delivery={"backoffPolicy": "random"}),
         "spec.delivery.backoffPolicy", 'Unsupported value: "random": supported values: "linear", "exponential"'),
    case("trig-backoff-policy-case", changed(TRIGGER, spec__delivery={"backoffPolicy": "Linear"}),
         "spec.delivery.backoffPolicy", "Unsupported value"),
    case("trig-format", changed(TRIGGER, spec__delivery={"format": "structured"}), "spec.delivery.format",
         'Unsupported value: "structured": supported values: "binary", "json"'),
    case("trig-retry-negative", changed(TRIGGER, spec__delivery={"retry": -1}), "spec.delivery.retry",
         "should be greater than or equal to 0"),
    case("trig-retry-over-100", changed(TRIGGER, spec__delivery={"retry": 101}), "spec.delivery.retry",
         "should be less than or equal to 100"),
    case("trig-retry-string", changed(TRIGGER, spec__delivery={"retry": "3"}), "spec.delivery.retry",
         "must be of type integer"),
    case("trig-retry-fraction", changed(TRIGGER, spec__delivery={"retry": 1.5}), "spec.delivery.retry",
         "must be of type integer"),
    case("trig-concurrency-zero", changed(TRIGGER, spec__delivery={"concurrency": 0}), "spec.delivery.concurrency",
         "should be greater than or equal to 1"),
    case("trig-concurrency-over-1000", changed(TRIGGER, spec__delivery={"concurrency": 1001}),
         "spec.delivery.concurrency", "should be less than or equal to 1000"),
    case("trig-backoff-delay-go-style", changed(TRIGGER, spec__delivery={"backoffDelay": "500ms"}),
         "spec.delivery.backoffDelay", DURATION_MESSAGE),
    case("trig-backoff-delay-bare-t", changed(TRIGGER, spec__delivery={"backoffDelay": "PT"}),
         "spec.delivery.backoffDelay", DURATION_MESSAGE),
    case("trig-backoff-delay-lowercase", changed(TRIGGER, spec__delivery={"backoffDelay": "pt0.5s"}),
         "spec.delivery.backoffDelay", DURATION_MESSAGE),
    case("trig-timeout-negative", changed(TRIGGER, spec__delivery={"timeout": "-PT1S"}), "spec.delivery.timeout",
         DURATION_MESSAGE),
    case("trig-retry-after-max-minutes-without-t", changed(TRIGGER, spec__delivery={"retryAfterMax": "P5M"}),
         "spec.delivery.retryAfterMax", DURATION_MESSAGE),
    case("trig-max-event-age-years", changed(TRIGGER, spec__delivery={"maxEventAge": "P1Y"}),
         "spec.delivery.maxEventAge", DURATION_MESSAGE),
    case("trig-dead-letter-empty", changed(TRIGGER, spec__delivery={"deadLetterSink": {}}),
         "spec.delivery.deadLetterSink", "exactly one of ref, uri must be set"),
    case("trig-dead-letter-ref-and-uri", changed(TRIGGER, spec__delivery={"deadLetterSink": {
        "ref": {"kind": "Function", "name": "dead-letters"}, "uri": "http://127.0.0.1:9000/"}}),
         "spec.delivery.deadLetterSink", "exactly one of ref, uri must be set"),
    case("trig-dead-letter-ref-kind", changed(TRIGGER, spec__delivery={"deadLetterSink": {
        "ref": {"kind": "Service", "name": "dead-letters"}}}), "spec.delivery.deadLetterSink.ref.kind",
         "Unsupported value"),
    case("trig-dead-letter-uri", changed(TRIGGER, spec__delivery={"deadLetterSink": {"uri": "dead-letters"}}),
         "spec.delivery.deadLetterSink.uri", URI_MESSAGE),
    case("trig-filter-attribute-number", changed(TRIGGER, spec__filter={"attributes": {"type": 5}}),
         "spec.filter.attributes.type", "must be of type string"),
    case("trig-filters-not-list", changed(TRIGGER, spec__filters={"exact": {"type": "order.placed"}}),
         "spec.filters", "must be of type array", "ignore"),
    case("trig-filters-item-not-object", changed(TRIGGER, spec__filters=["type = 'x'"]), "spec.filters[0]",
         "must be of type object"),
    # --- Broker
    case("brk-max-age-words", changed(BROKER, spec__retention={"maxAge": "7 days"}), "spec.retention.maxAge",
         DURATION_MESSAGE),
    case("brk-max-age-weeks", changed(BROKER, spec__retention={"maxAge": "P1W"}), "spec.retention.maxAge",
         DURATION_MESSAGE),
    case("brk-max-bytes-below-minus-one", changed(BROKER, spec__retention={"maxBytes": -2}),
         "spec.retention.maxBytes", "should be greater than or equal to -1"),
    case("brk-retention-not-object", changed(BROKER, spec__retention="P7D"), "spec.retention",
         "must be of type object"),
    case("brk-duplicate-window", changed(BROKER, spec__duplicateWindow="PT2X"), "spec.duplicateWindow",
         DURATION_MESSAGE),
    case("brk-name-too-long", changed(BROKER, metadata__name="b" * 254), "metadata.name", "must be no more than 253"),
    case("brk-replicas-even", changed(BROKER, spec__replicas=2), "spec.replicas", "Unsupported value"),
    case("brk-placement-no-tags", changed(BROKER, spec__placement={"tags": []}), "spec.placement.tags",
         "should have at least 1 items"),
    # --- EventSource
    case("src-no-spec", manifest("EventSource", None), "spec", "Required value"),
    case("src-no-kind", changed(PING, spec__ping=DELETE), "spec",
         "exactly one of webhook, ping, kubernetes, postgres, storage, nats must be set"),
    case("src-two-kinds", changed(PING, spec__webhook={}), "spec",
         "exactly one of webhook, ping, kubernetes, postgres, storage, nats must be set"),
    case("src-missing-sink", changed(PING, spec__sink=DELETE), "spec.sink", "Required value"),
    case("src-sink-empty", changed(PING, spec__sink={}), "spec.sink", "exactly one of ref, uri must be set"),
    case("src-sink-ref-and-uri", changed(PING, spec__sink__uri="http://127.0.0.1:8080/"), "spec.sink",
         "exactly one of ref, uri must be set"),
    case("src-sink-kind-trigger", changed(PING, spec__sink__ref__kind="Trigger"), "spec.sink.ref.kind",
         'supported values: "Broker", "Function"'),
    case("src-sink-uri", changed(PING, spec__sink={"uri": "broker.shop.svc"}), "spec.sink.uri", URI_MESSAGE),
    case("src-ping-four-fields", changed(PING, spec__ping={"schedule": "*/5 * * *"}), "spec.ping.schedule",
         "should match"),
    case("src-ping-words", changed(PING, spec__ping={"schedule": "every minute"}), "spec.ping.schedule",
         "should match"),
    case("src-ping-unknown-macro", changed(PING, spec__ping={"schedule": "@fortnightly"}), "spec.ping.schedule",
         "should match"),
    case("src-ping-missing-schedule", changed(PING, spec__ping={"data": "{}"}), "spec.ping.schedule",
         "Required value"),
    case("src-webhook-relative-path", changed(WEBHOOK, spec__webhook={"path": "hooks/github"}),
         "spec.webhook.path", "should match"),
    case("src-webhook-empty-event-type", changed(WEBHOOK, spec__webhook={"eventType": ""}), "spec.webhook.eventType",
         "should be at least 1 chars long"),
    case("src-webhook-secret-without-key", changed(WEBHOOK, spec__webhook={"signature": {
        "scheme": "github", "secretRef": {"name": "hmac"}}}), "spec.webhook.signature.secretRef.key", "Required value"),
    case("src-webhook-unknown-scheme", changed(WEBHOOK, spec__webhook={"signature": {
        "scheme": "md5", "secretRef": {"name": "hmac", "key": "k"}}}), "spec.webhook.signature.scheme",
         "Unsupported value"),
    case("src-webhook-signature-without-secret", changed(WEBHOOK, spec__webhook={"signature": {"scheme": "stripe"}}),
         "spec.webhook.signature.secretRef", "Required value"),
    case("src-kubernetes-no-resources", changed(KUBERNETES, spec__kubernetes__resources=[]),
         "spec.kubernetes.resources", "should have at least 1 items"),
    case("src-kubernetes-missing-resources", changed(KUBERNETES, spec__kubernetes={"mode": "Resource"}),
         "spec.kubernetes.resources", "Required value"),
    case("src-kubernetes-resource-without-kind", changed(KUBERNETES, spec__kubernetes__resources=[
        {"apiVersion": "v1"}]), "spec.kubernetes.resources[0].kind", "Required value"),
    case("src-kubernetes-mode", changed(KUBERNETES, spec__kubernetes__mode="Full"), "spec.kubernetes.mode",
         'supported values: "Reference", "Resource"'),
    case("src-kubernetes-namespace-invalid", changed(KUBERNETES, spec__kubernetes__namespaces=["kube_system"]),
         "spec.kubernetes.namespaces[0]", NAME_MESSAGE),
    case("src-postgres-operation", changed(POSTGRES, spec__postgres__operations=["INSERT", "TRUNCATE"]),
         "spec.postgres.operations[1]", 'supported values: "INSERT", "UPDATE", "DELETE"'),
    case("src-postgres-operation-lowercase", changed(POSTGRES, spec__postgres__operations=["insert"]),
         "spec.postgres.operations[0]", "Unsupported value"),
    case("src-postgres-no-operations", changed(POSTGRES, spec__postgres__operations=[]), "spec.postgres.operations",
         "should have at least 1 items"),
    case("src-postgres-no-tables", changed(POSTGRES, spec__postgres__tables=[]), "spec.postgres.tables",
         "should have at least 1 items"),
    case("src-postgres-missing-secret", changed(POSTGRES, spec__postgres__connectionSecretRef=DELETE),
         "spec.postgres.connectionSecretRef", "Required value"),
    case("src-storage-bucket-short", changed(STORAGE, spec__storage__bucket="ab"), "spec.storage.bucket",
         "should be at least 3 chars long"),
    case("src-storage-bucket-long", changed(STORAGE, spec__storage__bucket=TOO_LONG_NAME), "spec.storage.bucket",
         "may not be more than 63"),
    case("src-storage-endpoint", changed(STORAGE, spec__storage__endpoint="s3.amazonaws.com"),
         "spec.storage.endpoint", URI_MESSAGE),
    case("src-storage-event", changed(STORAGE, spec__storage__events=["modified"]), "spec.storage.events[0]",
         'supported values: "created", "deleted"'),
    case("src-storage-missing-bucket", changed(STORAGE, spec__storage__bucket=DELETE), "spec.storage.bucket",
         "Required value"),
    case("src-nats-http-url", changed(NATS, spec__nats__url="http://127.0.0.1:4222"), "spec.nats.url",
         r"should match '^(nats|tls)://[^\s]+$'"),
    case("src-nats-empty-subject", changed(NATS, spec__nats__subject=""), "spec.nats.subject",
         "should be at least 1 chars long"),
    case("src-nats-stream-without-durable", changed(NATS, spec__nats__stream="ORDERS"), "spec.nats",
         "stream and durable are set together or not at all"),
    case("src-nats-jetstream-queue-group", changed(NATS, spec__nats__stream="ORDERS", spec__nats__durable="r",
                                                   spec__nats__queueGroup="q"), "spec.nats",
         "queueGroup is for core NATS only"),
    case("src-delivery-retry-negative", changed(NATS, spec__delivery={"retry": -1}), "spec.delivery.retry",
         "should be greater than or equal to 0"),
    case("seq-empty-steps", changed(SEQUENCE, spec__steps=[]), "spec.steps", "should have at least 1 items"),
    case("seq-step-without-target", changed(SEQUENCE, spec__steps=[{"name": "pay"}]), "spec.steps[0]",
         "exactly one of ref, uri must be set"),
    case("seq-step-unknown-kind", changed(SEQUENCE, spec__steps=[{"ref": {"kind": "Broker", "name": "x"}}]),
         "spec.steps[0].ref.kind", "Unsupported value"),
    case("par-no-branches", changed(PARALLEL, spec__branches=[]), "spec.branches", "should have at least 1 items"),
    case("par-branch-without-subscriber", changed(PARALLEL, spec__branches=[{"filter": {"attributes": {}}}]),
         "spec.branches[0].subscriber", "Required value"),
    case("src-ce-overrides-number", changed(NATS, spec__ceOverrides={"extensions": {"tenant": 7}}),
         "spec.ceOverrides.extensions.tenant", "must be of type string"),
]

VALID = [
    pytest.param(FUNCTION, id="fn-inline"),
    pytest.param(changed(FUNCTION, spec__source={"path": "validate"}, spec__handler="pkg.mod:handle_event"),
                 id="fn-path-dotted-module"),
    pytest.param(changed(FUNCTION, spec__source=DELETE, spec__image="ghcr.io/acme/orders:1.2"), id="fn-image"),
    pytest.param(changed(FUNCTION, spec__env=[{"name": "WAREHOUSE", "value": "berlin"}, {"name": "a.b-c_D"}],
                         spec__timeout="PT0.5S",
                         spec__scale={"minScale": 3, "maxScale": 3, "targetConcurrency": 1, "idleTimeout": "P1DT2H"}),
                 id="fn-env-scale"),
    pytest.param(TRIGGER, id="trig-ref"),
    pytest.param(changed(TRIGGER, spec__broker="orders", spec__subscriber={"uri": "https://example.com/hook?x=1"},
                         spec__filter={"attributes": {"type": "order.placed", "source": ""}},
                         spec__filters=[{"cesql": "type LIKE 'order.%'"}, {"any": [{"exact": {"type": "a"}}]}],
                         spec__delivery={
                             "retry": 0, "backoffPolicy": "linear", "backoffDelay": "PT1H30M", "timeout": "PT2M",
                             "retryAfterMax": "P1D", "maxEventAge": "PT12H", "format": "json", "concurrency": 1000,
                             "deadLetterSink": {"uri": "http://127.0.0.1:9000/dlq"}}),
                 id="trig-everything"),
    pytest.param(changed(TRIGGER, spec__subscriber__ref__namespace="other", spec__delivery={
        "retry": 100, "concurrency": 1,
        "deadLetterSink": {"ref": {"kind": "Function", "name": "dead-letters", "namespace": "other"}}}),
                 id="trig-cross-namespace"),
    pytest.param(manifest("Broker", None), id="brk-no-spec"),
    pytest.param(BROKER, id="brk-empty-spec"),
    pytest.param(changed(BROKER, spec__retention={"maxAge": "P30D", "maxBytes": 1 << 30}, spec__duplicateWindow="PT0S"),
                 id="brk-retention"),
    pytest.param(changed(WEBHOOK, spec__webhook={"path": "/hooks/github", "eventType": "com.github.push",
                                                 "signature": {"scheme": "github",
                                                               "secretRef": {"name": "hmac", "key": "token"}}},
                         spec__ceOverrides={"extensions": {"tenant": "acme"}}), id="src-webhook"),
    pytest.param(PING, id="src-ping-cron"),
    pytest.param(changed(PING, spec__ping={"schedule": "@every 30s", "timezone": "Europe/Berlin", "data": "{}"}),
                 id="src-ping-every"),
    pytest.param(changed(PING, spec__ping={"schedule": "@hourly"}), id="src-ping-hourly"),
    pytest.param(changed(KUBERNETES, spec__kubernetes={
        "resources": [{"apiVersion": "apps/v1", "kind": "Deployment", "labelSelector": "app=shop"}],
        "mode": "Resource", "namespaces": ["shop", "default"]}), id="src-kubernetes"),
    pytest.param(changed(POSTGRES, spec__postgres__operations=["INSERT"]), id="src-postgres"),
    pytest.param(changed(STORAGE, spec__storage__events=["created", "deleted"], spec__storage__prefix="in/",
                         spec__storage__credentialsSecretRef={"name": "s3", "key": "keys"}), id="src-storage"),
    pytest.param(changed(NATS, spec__nats__url="tls://nats.example.com:4222", spec__nats__queueGroup="workers"),
                 id="src-nats"),
    pytest.param(SEQUENCE, id="seq"),
    pytest.param(PARALLEL, id="par"),
    pytest.param(changed(NATS, spec__nats__stream="ORDERS", spec__nats__durable="ripple",
                         spec__delivery={"retry": 5, "deadLetterSink": {"uri": "http://dl.example/"}}),
                 id="src-nats-jetstream"),
]


# --- helpers ----------------------------------------------------------------------------------------------------


def dry_run(control_plane: ControlPlane, document: dict[str, Any], *flags: str) -> Any:
    return control_plane.kubectl(
        "create", "--dry-run=server", *flags, "-f", "-", input=json.dumps(document), check=False
    )


_NOT_CHECKED = "some validation rules were not checked because the object was invalid"


def invalid_fields(stderr: str, field: str) -> dict[str, str]:
    """Field path -> message of each error in kubectl's 'The X "y" is invalid: ...' output.

    Leaves out the path-less notes that come with a schema error of ``field``: that CEL rules were skipped, and
    (for a fraction where an integer belongs) a repetition of the type error.
    """
    match = re.search(r' is invalid: (.*)', stderr, re.DOTALL)
    assert match, f"not a validation error:\n{stderr}"
    body = match.group(1).strip()
    errors = [line[2:] for line in body.splitlines() if line.startswith("* ")] if body.startswith("*") else [body]
    fields = {}
    for error in errors:
        path, _, message = error.partition(": ")
        if path == "<nil>" and (_NOT_CHECKED in message or f" in {field}" in message):
            continue
        fields[path] = message
    return fields


def wait_until(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


# --- invalid manifests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("document", "field", "message", "validate"), INVALID)
def test_invalid_manifest_is_refused_naming_the_field(
    crds_installed: ControlPlane, document: dict[str, Any], field: str, message: str, validate: str
) -> None:
    result = dry_run(crds_installed, document, f"--validate={validate}")

    assert result.returncode != 0, f"accepted:\n{yaml.safe_dump(document)}\n{result.stdout}"
    errors = invalid_fields(result.stderr, field)
    assert list(errors) == [field], f"expected exactly one error, at {field}:\n{result.stderr}"
    assert message in errors[field], result.stderr


def test_there_are_many_invalid_cases_of_every_kind() -> None:
    kinds = [param.values[0]["kind"] for param in INVALID]
    assert len(INVALID) >= 25
    assert min(kinds.count(kind) for kind in ("Function", "Trigger", "Broker", "EventSource")) >= 5


@pytest.mark.parametrize(
    ("document", "field"),
    [
        pytest.param(changed(TRIGGER, spec__subscribers={"uri": "http://x/"}), "spec.subscribers", id="spec-typo"),
        pytest.param(changed(TRIGGER, spec__delivery={"retries": 3}), "spec.delivery.retries", id="nested-typo"),
        pytest.param(changed(FUNCTION, spec__scale={"maxReplicas": 3}), "spec.scale.maxReplicas", id="fn-scale"),
        pytest.param(changed(PING, spec__ping__cron="* * * * *"), "spec.ping.cron", id="src-ping"),
        pytest.param(changed(BROKER, spec__retention={"maxAge": "P1D", "maxMessages": 5}),
                     "spec.retention.maxMessages", id="brk-retention"),
    ],
)
def test_unknown_fields_are_refused_with_strict_validation(
    crds_installed: ControlPlane, document: dict[str, Any], field: str
) -> None:
    result = crds_installed.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(document), check=False
    )

    assert result.returncode != 0, result.stdout
    assert f'unknown field "{field}"' in result.stderr


def test_unknown_fields_are_pruned_without_strict_validation(crds_installed: ControlPlane) -> None:
    document = changed(TRIGGER, spec__delivery={"retries": 3, "retry": 1}, spec__colour="blue")

    result = dry_run(crds_installed, document, "--validate=ignore", "-o", "json")

    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout)["spec"]
    assert "colour" not in spec
    assert "retries" not in spec["delivery"]
    assert spec["delivery"]["retry"] == 1


# --- valid manifests and defaults -------------------------------------------------------------------------------


@pytest.mark.parametrize("document", VALID)
def test_valid_manifest_is_accepted(crds_installed: ControlPlane, document: dict[str, Any]) -> None:
    result = dry_run(crds_installed, document, "--validate=strict")

    assert result.returncode == 0, f"refused:\n{yaml.safe_dump(document)}\n{result.stderr}"
    assert "created (server dry run)" in result.stdout


def defaulted(control_plane: ControlPlane, document: dict[str, Any]) -> dict[str, Any]:
    result = dry_run(control_plane, document, "-o", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_server_fills_trigger_defaults(crds_installed: ControlPlane) -> None:
    spec = defaulted(crds_installed, changed(TRIGGER, spec__delivery={}))["spec"]

    assert spec["broker"] == "default"
    assert spec["subscriber"]["ref"] == {"apiVersion": API_VERSION, "kind": "Function", "name": "handler"}
    assert spec["delivery"] == {
        "retry": 3, "backoffPolicy": "exponential", "backoffDelay": "PT0.2S", "timeout": "PT30S",
        "retryAfterMax": "PT60S", "format": "binary", "concurrency": 16,
    }


def test_absent_objects_are_defaulted_as_local_mode_does(crds_installed: ControlPlane) -> None:
    """Objects that the models build by default (delivery, scale, a Broker's spec) are filled by the server too."""
    trigger = defaulted(crds_installed, TRIGGER)["spec"]
    function = defaulted(crds_installed, FUNCTION)["spec"]
    broker = defaulted(crds_installed, manifest("Broker", None))

    assert trigger["delivery"]["retry"] == 3 and trigger["delivery"]["backoffPolicy"] == "exponential"
    assert trigger["broker"] == "default"
    assert function["scale"] == {"minScale": 0, "maxScale": 10, "targetConcurrency": 10, "idleTimeout": "PT60S"}
    assert function["timeout"] == "PT30S"
    assert broker["spec"] == {"retention": {"maxAge": "P7D", "maxBytes": -1}, "duplicateWindow": "PT2M"}


def test_server_fills_function_broker_and_source_defaults(crds_installed: ControlPlane) -> None:
    function = defaulted(crds_installed, changed(FUNCTION, spec__scale={}, spec__env=[{"name": "A"}]))["spec"]
    broker = defaulted(crds_installed, changed(BROKER, spec__retention={}))["spec"]
    webhook = defaulted(crds_installed, WEBHOOK)["spec"]
    ping = defaulted(crds_installed, PING)["spec"]
    storage = defaulted(crds_installed, STORAGE)["spec"]

    assert function["scale"] == {"minScale": 0, "maxScale": 10, "targetConcurrency": 10, "idleTimeout": "PT60S"}
    assert function["env"] == [{"name": "A", "value": ""}]
    assert broker == {"retention": {"maxAge": "P7D", "maxBytes": -1}, "duplicateWindow": "PT2M"}
    assert webhook["webhook"] == {"path": "/", "eventType": "dev.ripple.webhook"}
    assert webhook["sink"]["ref"]["apiVersion"] == API_VERSION
    assert ping["ping"] == {"schedule": "*/5 * * * *", "timezone": "UTC", "data": "", "contentType": "application/json"}
    assert storage["storage"]["prefix"] == ""
    assert storage["storage"]["events"] == ["created"]


# --- the order-flow example and kubectl niceties ----------------------------------------------------------------


def order_flow_in(namespace: str) -> str:
    documents = list(yaml.safe_load_all(ORDER_FLOW.read_text()))
    for document in documents:
        document["metadata"]["namespace"] = namespace
    return yaml.safe_dump_all(documents)


EVENT_SOURCE = changed(WEBHOOK, metadata__name="orders-webhook", spec__webhook={"path": "/orders"})


@pytest.fixture(scope="module")
def shop(crds_installed: ControlPlane) -> Iterator[str]:
    """A namespace holding the order-flow example and a webhook EventSource."""
    name = f"shop-{secrets.token_hex(3)}"
    crds_installed.kubectl("create", "namespace", name)
    try:
        crds_installed.kubectl("apply", "--validate=strict", "-f", "-", input=order_flow_in(name))
        crds_installed.kubectl("apply", "--validate=strict", "-f", "-",
                               input=json.dumps(changed(EVENT_SOURCE, metadata__namespace=name)))
        yield name
    finally:
        crds_installed.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


ORDER_FLOW_NAMES = {
    "broker.ripple.dev/default",
    "function.ripple.dev/validate-order",
    "function.ripple.dev/ship-order",
    "function.ripple.dev/dead-letters",
    "trigger.ripple.dev/validate-placed-orders",
    "trigger.ripple.dev/ship-validated-orders",
}


def test_order_flow_example_applies(crds_installed: ControlPlane, namespace: str) -> None:
    result = crds_installed.kubectl("apply", "--validate=strict", "-f", "-", input=order_flow_in(namespace))

    assert {line.split()[0] for line in result.stdout.splitlines()} == ORDER_FLOW_NAMES
    stored = crds_installed.get_json("trigger", "ship-validated-orders", "-n", namespace)["spec"]
    assert stored["broker"] == "default"
    assert stored["delivery"] == {
        "retry": 2, "backoffPolicy": "exponential", "backoffDelay": "PT0.2S", "timeout": "PT30S",
        "retryAfterMax": "PT60S", "format": "binary", "concurrency": 16,
        "deadLetterSink": {"ref": {"apiVersion": API_VERSION, "kind": "Function", "name": "dead-letters"}},
    }
    broker = crds_installed.get_json("broker", "default", "-n", namespace)["spec"]
    assert broker == {"retention": {"maxAge": "P1D", "maxBytes": -1}, "duplicateWindow": "PT2M"}


def test_short_names(crds_installed: ControlPlane, shop: str) -> None:
    result = crds_installed.kubectl("get", "fn,trig,brk,evsrc", "-n", shop, "-o", "name")

    assert set(result.stdout.split()) == {*ORDER_FLOW_NAMES, "eventsource.ripple.dev/orders-webhook"}


def test_ripple_category(crds_installed: ControlPlane, shop: str) -> None:
    result = crds_installed.kubectl("get", "ripple", "-n", shop, "-o", "name")

    assert set(result.stdout.split()) == {*ORDER_FLOW_NAMES, "eventsource.ripple.dev/orders-webhook"}


@pytest.mark.parametrize(
    ("resource", "columns"),
    [
        ("triggers", ["NAME", "READY", "REASON", "BROKER", "SUBSCRIBER", "AGE"]),
        ("functions", ["NAME", "READY", "REASON", "URL", "AGE"]),
        ("eventsources", ["NAME", "READY", "REASON", "KIND", "SINK", "URL", "AGE"]),
    ],
)
def test_printer_columns(crds_installed: ControlPlane, shop: str, resource: str, columns: list[str]) -> None:
    lines = crds_installed.kubectl("get", resource, "-n", shop).stdout.splitlines()

    assert lines[0].split() == columns
    assert len(lines) > 1


def test_trigger_broker_column(crds_installed: ControlPlane, shop: str) -> None:
    lines = crds_installed.kubectl("get", "trig", "validate-placed-orders", "-n", shop).stdout.splitlines()
    header = lines[0].split()
    # READY, REASON and SUBSCRIBER are empty until the operator writes status: find BROKER by position.
    start = lines[0].index("BROKER")
    assert lines[1][start:].split()[0] == "default", lines
    assert header[0] == "NAME" and lines[1].startswith("validate-placed-orders")


@pytest.mark.parametrize(
    ("field", "description"),
    [
        ("triggers.spec.delivery.retry", "Attempts after the first before the event is dead-lettered."),
        ("trig.spec.delivery.backoffPolicy", "linear waits backoffDelay*n before retry n"),
        ("functions.spec.handler", "The handler as ``module:function``"),
        ("evsrc.spec.ping.schedule", "Cron schedule (five fields, or @hourly, @every 30s, ...)."),
        ("brokers.spec.retention.maxBytes", "Size cap of the broker's log in bytes"),
    ],
)
def test_explain_shows_model_descriptions(crds_installed: ControlPlane, field: str, description: str) -> None:
    # The CRD's OpenAPI document is published a moment after it is Established.
    def explained() -> str:
        result = crds_installed.kubectl("explain", field, check=False)
        text = " ".join(result.stdout.split())
        return text if result.returncode == 0 and description in text else ""

    text = wait_until(f"kubectl explain {field}", explained)
    assert f"FIELD: {field.rsplit('.', 1)[-1]}" in text
