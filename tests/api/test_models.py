"""The manifest models and ISO-8601 durations: defaults, the rules each field enforces and the messages given."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from ripple.api.durations import DURATION_PATTERN, parse_duration, seconds
from ripple.api.models import (
    API_VERSION,
    KINDS,
    Broker,
    BrokerSpec,
    DeliverySpec,
    Destination,
    EventPolicy,
    EventSource,
    Function,
    FunctionSpec,
    Parallel,
    Reference,
    ScaleSpec,
    Sequence,
    Trigger,
    TriggerSpec,
    default_broker,
)


def function(spec: dict[str, Any], **metadata: Any) -> Function:
    return Function.model_validate(
        {"apiVersion": API_VERSION, "kind": "Function", "metadata": {"name": "fn", **metadata}, "spec": spec}
    )


def trigger(spec: dict[str, Any], **metadata: Any) -> Trigger:
    return Trigger.model_validate(
        {"apiVersion": API_VERSION, "kind": "Trigger", "metadata": {"name": "tr", **metadata}, "spec": spec}
    )


def errors(exc: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    """Field path → message, the way manifests report them."""
    return {".".join(map(str, e["loc"])): e["msg"] for e in exc.value.errors()}


def refused(matcher: str, exc: pytest.ExceptionInfo[ValidationError]) -> bool:
    return any(re.search(matcher, f"{where}: {message}") for where, message in errors(exc).items())


# --- durations --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT0.5S", timedelta(seconds=0.5)),
        ("PT30S", timedelta(seconds=30)),
        ("PT0S", timedelta(0)),
        ("PT5M", timedelta(minutes=5)),
        ("PT1.5M", timedelta(seconds=90)),
        ("PT2H", timedelta(hours=2)),
        ("PT1H30M", timedelta(minutes=90)),
        ("PT1H1.5S", timedelta(hours=1, seconds=1.5)),
        ("P1D", timedelta(days=1)),
        ("P0D", timedelta(0)),
        ("P1.5D", timedelta(days=1, hours=12)),
        ("P7D", timedelta(days=7)),
        ("P1DT2H3M4S", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("PT36H", timedelta(hours=36)),
    ],
)
def test_iso8601_durations_of_days_hours_minutes_and_seconds_are_parsed(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert seconds(text) == expected.total_seconds()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "T1S",
        "1S",
        "5s",
        "30",
        "pt1s",
        " PT1S",
        "PT.5S",
        "PT1.S",
        "PT1S PT2S",
        "1 minute",
        "PTS",
        pytest.param("PT"),
        pytest.param("P1DT"),
    ],
)
def test_text_that_is_not_an_iso8601_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not an ISO-8601 duration such as PT0\.5S"):
        parse_duration(text)


@pytest.mark.parametrize(
    "text",
    [
        "P1M",
        "P1Y",
        "P1Y2M",
        "P1MT1S",
        "P2Y3DT4H",
        pytest.param("P0Y"),
        pytest.param(
            "P0M1D",
        ),
    ],
)
def test_durations_in_months_or_years_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="uses months or years; use days, hours, minutes or seconds"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["-PT1S", "-P1D"])
def test_negative_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is negative"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["P1000000000D", "P999999999DT24H", "PT99999999999999999999H", "PT" + "9" * 400 + "S"])
def test_durations_longer_than_a_timedelta_holds_are_refused(text: str) -> None:
    """isodate raised OverflowError for these, which pydantic does not turn into a validation error."""
    with pytest.raises(ValueError, match=r"is longer than the longest duration \(999999999 days\)"):
        parse_duration(text)


def _disagrees(text: str, why: str) -> Any:
    return pytest.param(
        text,
    )


@pytest.mark.parametrize(
    "text",
    [
        "PT0.5S",
        "PT30S",
        "PT5M",
        "PT1.5M",
        "PT1H30M",
        "P1D",
        "P0D",
        "P1.5D",
        "P1DT2H3M4S",
        "PT0S",
        "",
        "P",
        "5s",
        "pt1s",
        " PT1S",
        "PT.5S",
        "PT1.S",
        "P1M",
        "P1Y",
        "P1Y2M",
        "-PT1S",
        "PTS",
        _disagrees("PT", "the function accepts a bare T"),
        _disagrees("P1DT", "the function accepts a trailing T"),
        _disagrees("P1W", "the function accepts weeks, the pattern does not"),
        _disagrees("P1W2D", "the function accepts weeks, the pattern does not"),
        _disagrees("PT1,5S", "the function accepts a decimal comma, the pattern does not"),
        _disagrees("P0Y", "the function accepts zero years, the pattern refuses years"),
        _disagrees("PT1S\n", "the function accepts a trailing newline, the pattern (whole-string) does not"),
    ],
)
def test_the_crd_pattern_and_parse_duration_agree(text: str) -> None:
    try:
        parse_duration(text)
        parsed = True
    except ValueError:
        parsed = False

    # Kubernetes matches schema patterns against the whole value (RE2: '$' is the end of text).
    assert bool(re.fullmatch(DURATION_PATTERN, text)) is parsed


def test_duration_fields_carry_the_pattern_into_the_json_schema() -> None:
    schema = DeliverySpec.model_json_schema(by_alias=True)

    assert schema["properties"]["backoffDelay"]["pattern"] == DURATION_PATTERN
    assert schema["properties"]["timeout"]["pattern"] == DURATION_PATTERN


@pytest.mark.parametrize("field", ["backoffDelay", "timeout", "retryAfterMax", "maxEventAge"])
@pytest.mark.parametrize("value", ["5s", "P1M", "-PT1S", ""])
def test_duration_fields_refuse_bad_durations(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as exc:
        DeliverySpec.model_validate({field: value})

    assert field in errors(exc)


def test_duration_fields_keep_the_text_as_written() -> None:
    spec = DeliverySpec.model_validate({"backoffDelay": "PT1.5S", "maxEventAge": "P1DT12H"})

    assert spec.backoff_delay == "PT1.5S"
    assert spec.max_event_age == "P1DT12H"


# --- defaults ---------------------------------------------------------------------------------------------


def test_delivery_defaults() -> None:
    spec = DeliverySpec()

    assert spec.retry == 3
    assert spec.backoff_policy == "exponential"
    assert spec.backoff_delay == "PT0.2S"
    assert spec.timeout == "PT30S"
    assert spec.retry_after_max == "PT60S"
    assert spec.max_event_age is None
    assert spec.dead_letter_sink is None
    assert spec.format == "binary"
    assert spec.concurrency == 16


def test_scale_defaults() -> None:
    spec = ScaleSpec()

    assert (spec.min_scale, spec.max_scale, spec.target_concurrency, spec.idle_timeout) == (0, 10, 10, "PT60S")


def test_broker_defaults() -> None:
    spec = BrokerSpec()

    assert spec.retention.max_age == "P7D"
    assert spec.retention.max_bytes == -1
    assert spec.duplicate_window == "PT2M"


def test_function_and_trigger_spec_defaults() -> None:
    fn = FunctionSpec.model_validate({"handler": "main:handle", "image": "registry.example/fn:1"})
    tr = TriggerSpec.model_validate({"subscriber": {"uri": "http://sink.example/"}})

    assert fn.timeout == "PT30S"
    assert fn.env == []
    assert fn.scale == ScaleSpec()
    assert fn.source is None
    assert tr.broker == "default"
    assert tr.filter is None and tr.filters is None
    assert tr.delivery == DeliverySpec()


def test_metadata_namespace_defaults_to_default() -> None:
    fn = function({"handler": "m:h", "image": "i"})

    assert fn.key == ("default", "fn")
    assert fn.name == "fn" and fn.namespace == "default"


def test_default_broker() -> None:
    broker = default_broker("shop")

    assert broker.key == ("shop", "default")
    assert broker.api_version == API_VERSION
    assert broker.kind == "Broker"
    assert broker.spec == BrokerSpec()


def test_kinds_maps_each_kind_to_its_model() -> None:
    assert KINDS == {"Function": Function, "Trigger": Trigger, "Broker": Broker, "EventSource": EventSource,
                     "Sequence": Sequence, "Parallel": Parallel, "EventPolicy": EventPolicy}


@pytest.mark.parametrize(("policy", "delays"), [("exponential", [0.4, 0.8, 1.6]), ("linear", [0.2, 0.4, 0.6])])
def test_backoff_seconds_follow_the_policy(policy: str, delays: list[float]) -> None:
    spec = DeliverySpec(backoff_policy=policy, backoff_delay="PT0.2S")

    assert [spec.backoff_seconds(n) for n in (1, 2, 3)] == pytest.approx(delays)


# --- naming: camelCase in YAML, snake_case in Python --------------------------------------------------------


def test_fields_are_camel_case_in_manifests_and_snake_case_in_python() -> None:
    spec = DeliverySpec.model_validate(
        {"backoffPolicy": "linear", "retryAfterMax": "PT5S", "deadLetterSink": {"uri": "https://dlq.example/"}}
    )

    assert spec.backoff_policy == "linear"
    assert spec.retry_after_max == "PT5S"
    assert spec.dead_letter_sink == Destination(uri="https://dlq.example/")
    assert DeliverySpec(backoff_policy="linear") == DeliverySpec.model_validate({"backoffPolicy": "linear"})
    assert "backoffPolicy" in spec.model_dump(by_alias=True)


def test_models_are_frozen() -> None:
    spec = DeliverySpec()

    with pytest.raises(ValidationError):
        spec.retry = 5  # type: ignore[misc]


# --- Function ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        {"source": {"path": "handlers"}},
        {"source": {"inline": "def handle(event):\n    return None\n"}},
        {"image": "registry.example/fn:1"},
    ],
)
def test_a_function_has_exactly_one_code_source(code: dict[str, Any]) -> None:
    fn = function({"handler": "main:handle", **code})

    assert fn.spec.handler == "main:handle"


@pytest.mark.parametrize(
    ("code", "found"),
    [
        ({}, "none"),
        ({"source": {}}, "none"),
        ({"source": {"path": "a", "inline": "b"}}, r"\['source.path', 'source.inline'\]"),
        ({"source": {"path": "a"}, "image": "i"}, r"\['source.path', 'image'\]"),
        ({"source": {"inline": "b"}, "image": "i"}, r"\['source.inline', 'image'\]"),
        ({"source": {"path": "a", "inline": "b"}, "image": "i"}, r"\['source.path', 'source.inline', 'image'\]"),
    ],
)
def test_a_function_without_exactly_one_code_source_is_refused(code: dict[str, Any], found: str) -> None:
    with pytest.raises(ValidationError) as exc:
        function({"handler": "main:handle", **code})

    assert refused(rf"^spec: .*exactly one of source.path, source.inline, image must be set \(found {found}\)", exc)


@pytest.mark.parametrize("code", [{"source": {"path": ""}}, {"source": {"inline": ""}}, {"image": ""}])
def test_empty_code_sources_are_refused(code: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        function({"handler": "main:handle", **code})


@pytest.mark.parametrize("handler", ["main:handle", "pkg.module:handle", "_private:_fn", "a.b.c:D9"])
def test_handlers_are_module_colon_function(handler: str) -> None:
    assert function({"handler": handler, "image": "i"}).spec.handler == handler


@pytest.mark.parametrize("handler", ["main", "main:", ":handle", "main:a.b", "1main:handle", "main:handle()", "a-b:c"])
def test_malformed_handlers_are_refused(handler: str) -> None:
    with pytest.raises(ValidationError) as exc:
        function({"handler": handler, "image": "i"})

    assert "spec.handler" in errors(exc)


def test_env_vars_have_valid_names() -> None:
    fn = function({"handler": "m:h", "image": "i", "env": [{"name": "WAREHOUSE", "value": "berlin"}, {"name": "_X"}]})

    assert [(e.name, e.value) for e in fn.spec.env] == [("WAREHOUSE", "berlin"), ("_X", "")]
    with pytest.raises(ValidationError) as exc:
        function({"handler": "m:h", "image": "i", "env": [{"name": "1BAD"}]})
    assert "spec.env.0.name" in errors(exc)


@pytest.mark.parametrize(("low", "high"), [(0, 1), (3, 3), (0, 10)])
def test_scale_bounds_may_be_equal(low: int, high: int) -> None:
    assert ScaleSpec.model_validate({"minScale": low, "maxScale": high}).max_scale == high


def test_min_scale_above_max_scale_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        function({"handler": "m:h", "image": "i", "scale": {"minScale": 5, "maxScale": 2}})

    assert errors(exc) == {"spec.scale": "Value error, minScale must not exceed maxScale"}


@pytest.mark.parametrize(
    ("scale", "where"),
    [
        ({"minScale": -1}, "spec.scale.minScale"),
        ({"maxScale": 0}, "spec.scale.maxScale"),
        ({"targetConcurrency": 0}, "spec.scale.targetConcurrency"),
        ({"idleTimeout": "60s"}, "spec.scale.idleTimeout"),
    ],
)
def test_scale_fields_are_bounded(scale: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as exc:
        function({"handler": "m:h", "image": "i", "scale": scale})

    assert where in errors(exc)


# --- Trigger and Destination ------------------------------------------------------------------------------


def test_a_destination_is_a_ref_or_a_uri() -> None:
    by_ref = Destination.model_validate({"ref": {"kind": "Function", "name": "ship-order"}})
    by_uri = Destination.model_validate({"uri": "https://hooks.example/orders?x=1"})

    assert by_ref.ref == Reference(kind="Function", name="ship-order")
    assert by_ref.ref.namespace is None
    assert by_ref.ref.api_version == API_VERSION
    assert by_uri.uri == "https://hooks.example/orders?x=1"


@pytest.mark.parametrize(
    "dest", [{}, {"ref": {"kind": "Function", "name": "f"}, "uri": "http://x.example/"}, {"ref": None, "uri": None}]
)
def test_a_destination_needs_exactly_one_of_ref_and_uri(dest: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as exc:
        trigger({"subscriber": dest})

    assert refused(r"^spec\.subscriber: .*exactly one of ref, uri must be set", exc)


@pytest.mark.parametrize("uri", ["ftp://x.example/", "x.example", "/relative", "http://", "http://a b"])
def test_a_destination_uri_is_an_absolute_http_url(uri: str) -> None:
    with pytest.raises(ValidationError) as exc:
        trigger({"subscriber": {"uri": uri}})

    assert "spec.subscriber.uri" in errors(exc)


def test_a_destination_ref_must_be_a_function() -> None:
    with pytest.raises(ValidationError) as exc:
        trigger({"subscriber": {"ref": {"kind": "Broker", "name": "default"}}})

    assert "spec.subscriber.ref.kind" in errors(exc)


def test_a_trigger_needs_a_subscriber() -> None:
    with pytest.raises(ValidationError) as exc:
        trigger({"broker": "default"})

    assert "spec.subscriber" in errors(exc)


@pytest.mark.parametrize(
    ("delivery", "where"),
    [
        ({"retry": -1}, "spec.delivery.retry"),
        ({"retry": 101}, "spec.delivery.retry"),
        ({"retry": "many"}, "spec.delivery.retry"),
        ({"backoffPolicy": "fibonacci"}, "spec.delivery.backoffPolicy"),
        ({"format": "structured"}, "spec.delivery.format"),
        ({"concurrency": 0}, "spec.delivery.concurrency"),
        ({"concurrency": 1001}, "spec.delivery.concurrency"),
        ({"deadLetterSink": {}}, "spec.delivery.deadLetterSink"),
    ],
)
def test_delivery_fields_are_checked(delivery: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as exc:
        trigger({"subscriber": {"uri": "http://x.example/"}, "delivery": delivery})

    assert where in errors(exc)


@pytest.mark.parametrize(("retry", "concurrency"), [(0, 1), (100, 1000)])
def test_delivery_bounds_are_inclusive(retry: int, concurrency: int) -> None:
    spec = DeliverySpec.model_validate({"retry": retry, "concurrency": concurrency})

    assert (spec.retry, spec.concurrency) == (retry, concurrency)


def test_attribute_filters_are_strings() -> None:
    tr = trigger({"subscriber": {"uri": "http://x.example/"}, "filter": {"attributes": {"type": "order.placed"}}})

    assert tr.spec.filter is not None and tr.spec.filter.attributes == {"type": "order.placed"}
    with pytest.raises(ValidationError) as exc:
        trigger({"subscriber": {"uri": "http://x.example/"}, "filter": {"attributes": {"priority": 5}}})
    assert "spec.filter.attributes.priority" in errors(exc)


# --- Broker -----------------------------------------------------------------------------------------------


def test_broker_retention_max_bytes_is_minus_one_or_more() -> None:
    assert BrokerSpec.model_validate({"retention": {"maxBytes": 0}}).retention.max_bytes == 0
    with pytest.raises(ValidationError) as exc:
        BrokerSpec.model_validate({"retention": {"maxBytes": -2}})
    assert "retention.maxBytes" in errors(exc)


def test_a_broker_needs_no_spec() -> None:
    broker = Broker.model_validate({"apiVersion": API_VERSION, "kind": "Broker", "metadata": {"name": "orders"}})

    assert broker.spec == BrokerSpec()


# --- unknown fields and names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"spec": {"handler": "m:h", "image": "i", "replicas": 3}}, "spec.replicas"),
        ({"spec": {"handler": "m:h", "image": "i", "scale": {"min": 1}}}, "spec.scale.min"),
        ({"spec": {"handler": "m:h", "source": {"path": "a", "git": "x"}}}, "spec.source.git"),
        ({"spec": {"handler": "m:h", "image": "i", "env": [{"name": "A", "valueFrom": {}}]}}, "spec.env.0.valueFrom"),
        ({"spec": {"handler": "m:h", "image": "i"}, "status": {}}, "status"),
        ({"spec": {"handler": "m:h", "image": "i", "min_scale": 1}}, "spec.min_scale"),
    ],
)
def test_unknown_fields_are_refused(doc: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Function.model_validate({"apiVersion": API_VERSION, "kind": "Function", "metadata": {"name": "fn"}, **doc})

    assert errors(exc)[where] == "Extra inputs are not permitted"


def test_unknown_delivery_fields_are_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        trigger({"subscriber": {"uri": "http://x.example/"}, "delivery": {"retries": 3}})

    assert errors(exc) == {"spec.delivery.retries": "Extra inputs are not permitted"}


def test_metadata_may_carry_other_kubernetes_fields() -> None:
    fn = function({"handler": "m:h", "image": "i"}, uid="1234", resourceVersion="7", labels={"app": "shop"})

    assert fn.metadata.labels == {"app": "shop"}


@pytest.mark.parametrize("name", ["a", "fn", "order-flow", "a1", "1a", "0", "a--b", "a" * 63])
def test_dns_1123_labels_are_valid_names(name: str) -> None:
    assert function({"handler": "m:h", "image": "i"}, name=name, namespace=name).key == (name, name)


@pytest.mark.parametrize(
    "name", ["", "Order", "ORDER", "-a", "a-", "a_b", "a.b", "a b", "ä", "a" * 64, "order-flow-"], ids=repr
)
@pytest.mark.parametrize("field", ["name", "namespace"])
def test_names_that_are_not_dns_1123_labels_are_refused(name: str, field: str) -> None:
    metadata = {"name": "fn", field: name}

    with pytest.raises(ValidationError) as exc:
        Function.model_validate(
            {
                "apiVersion": API_VERSION,
                "kind": "Function",
                "metadata": metadata,
                "spec": {"handler": "m:h", "image": "i"},
            }
        )

    assert f"metadata.{field}" in errors(exc)


@pytest.mark.parametrize("name", ["Bad", "a_b"])
def test_reference_and_broker_names_are_dns_1123_labels(name: str) -> None:
    with pytest.raises(ValidationError) as exc:
        trigger({"broker": name, "subscriber": {"ref": {"kind": "Function", "name": name, "namespace": name}}})

    assert {"spec.broker", "spec.subscriber.ref.name", "spec.subscriber.ref.namespace"} <= set(errors(exc))


@pytest.mark.parametrize("api_version", ["ripple.dev/v1", "ripple.dev/v1beta1", "v1"])
def test_only_the_v1alpha1_api_version_is_accepted(api_version: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Function.model_validate(
            {"apiVersion": api_version, "kind": "Function", "metadata": {"name": "f"}, "spec": {"handler": "m:h"}}
        )

    assert "apiVersion" in errors(exc)


def test_the_kind_must_match_the_model() -> None:
    with pytest.raises(ValidationError) as exc:
        Function.model_validate(
            {"apiVersion": API_VERSION, "kind": "Trigger", "metadata": {"name": "f"}, "spec": {"handler": "m:h"}}
        )

    assert "kind" in errors(exc)
