"""The trace-context rules: what a ``traceparent`` is, and that spans hand on the right context with tracing on
(a real SDK, exporting to memory) and off."""

from __future__ import annotations

import pytest

from ripple import tracing
from ripple.tracing import is_traceparent, new_traceparent, same_trace, span, trace_id_of

GOOD = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("value", [
    GOOD.upper(), GOOD[:-1], GOOD + "0", "01" + GOOD[2:], "00-" + "0" * 32 + GOOD[35:], GOOD[:36] + "0" * 16 + "-01",
    None, 7, "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
])
def test_what_is_not_a_traceparent(value):
    assert not is_traceparent(value)


def test_a_new_context_is_sampled_and_can_join_a_trace():
    fresh = new_traceparent()
    assert is_traceparent(fresh) and fresh.endswith("-01")
    joined = new_traceparent(trace_id_of(GOOD))
    assert same_trace(joined, GOOD) and joined != GOOD
    assert not same_trace(fresh, GOOD) and not same_trace(None, None)


def test_with_tracing_off_a_span_hands_on_its_parent_or_starts_a_context():
    assert not tracing.enabled()
    with span("x", parent=GOOD) as kept:
        kept.set(anything=1)
        kept.fail("nothing to record")
    assert kept.traceparent == GOOD and kept.handle is None
    with span("x", parent="garbage") as started:
        pass
    assert is_traceparent(started.traceparent) and not same_trace(started.traceparent, GOOD)


@pytest.mark.parametrize(("environ", "wanted"), [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "console,otlp"}, True),
])
def test_tracing_is_on_only_when_the_otel_variables_ask(environ, wanted):
    assert tracing._wanted(environ) is wanted
    if not wanted:
        assert tracing.configure("test", environ) is False and not tracing.enabled()


def test_with_tracing_on_a_span_is_a_child_of_its_parent_and_hands_on_itself(monkeypatch):
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing._State, "tracer", provider.get_tracer("test"))
    monkeypatch.setattr(tracing._State, "api", trace)
    monkeypatch.setattr(tracing._State, "empty", Context())
    monkeypatch.setattr(tracing._State, "kinds", {"client": SpanKind.CLIENT, "server": SpanKind.SERVER})
    with span("deliver", parent=GOOD, tracestate="vendor=1", kind="client", attributes={"attempt": 2}) as child:
        child.set(status=503)
        child.fail("answered 503")
    (finished,) = exporter.get_finished_spans()
    assert finished.name == "deliver" and finished.kind == SpanKind.CLIENT
    assert f"{finished.context.trace_id:032x}" == trace_id_of(GOOD)
    assert f"{finished.parent.span_id:016x}" == GOOD[36:52]
    assert child.traceparent == f"00-{finished.context.trace_id:032x}-{finished.context.span_id:016x}-01"
    assert child.tracestate == "vendor=1"
    assert finished.attributes == {"ripple.attempt": 2, "ripple.status": 503}
    assert not finished.status.is_ok


def test_a_span_without_a_parent_starts_a_trace_and_one_that_raises_is_an_error(monkeypatch):
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing._State, "tracer", provider.get_tracer("test"))
    monkeypatch.setattr(tracing._State, "api", trace)
    monkeypatch.setattr(tracing._State, "empty", Context())
    monkeypatch.setattr(tracing._State, "kinds", {"server": SpanKind.SERVER})
    with pytest.raises(RuntimeError), span("ingress", parent="not-a-context", kind="server") as root:
        raise RuntimeError("store lost")
    (finished,) = exporter.get_finished_spans()
    assert finished.parent is None and is_traceparent(root.traceparent)
    assert finished.status.description == "RuntimeError: store lost"


def test_ripple_batches_spans_small_unless_told_otherwise():
    assert tracing._batches({}) == {"max_export_batch_size": tracing.EXPORT_BATCH,
                                    "schedule_delay_millis": tracing.EXPORT_DELAY_MS}
    told = {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512", "OTEL_BSP_SCHEDULE_DELAY": "5000"}
    assert tracing._batches(told) == {}, "the SDK reads the variables itself"
