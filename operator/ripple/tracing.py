"""W3C trace context on events, and OpenTelemetry spans around what each component does with them.

Every event carries a trace context (the CloudEvents distributed-tracing extension, ``traceparent`` and
``tracestate``): the producer's when it sent one, else one the ingress or the source starts. Replies, dead letters
and Sequence hand-offs stay in their cause's trace, so one trace id follows an event and everything it caused.

Spans are exported over OTLP when the standard variables ask for it (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``); the
exporter itself reads the rest (headers, timeout, protocol settings, ``OTEL_SERVICE_NAME``, sampler, batch
delays). When tracing is off, :func:`span` starts nothing and costs a generator: the trace context still travels,
so logs and event history name the trace either way.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "EXPORT_BATCH",
    "EXPORT_DELAY_MS",
    "TRACEPARENT",
    "TRACESTATE",
    "SpanKind",
    "TraceSpan",
    "configure",
    "enabled",
    "is_traceparent",
    "new_traceparent",
    "same_trace",
    "shutdown",
    "span",
    "trace_id_of",
]

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
MAX_TRACESTATE = 512
"""W3C lets ``tracestate`` grow to 32 members; the bytes are bounded so that a producer's cannot crowd the event."""
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16

SpanKind = Literal["server", "client", "producer", "consumer", "internal"]


def is_traceparent(value: object) -> bool:
    """Whether ``value`` is a W3C ``traceparent`` this code understands (version 00, non-zero ids)."""
    if not isinstance(value, str) or len(value) != 55 or not _TRACEPARENT.fullmatch(value):
        return False
    version, trace, parent, _ = value.split("-")
    return version == "00" and trace != _ZERO_TRACE and parent != _ZERO_SPAN


def trace_id_of(traceparent: object) -> str | None:
    return traceparent[3:35] if is_traceparent(traceparent) else None  # type: ignore[index]


def same_trace(a: object, b: object) -> bool:
    trace = trace_id_of(a)
    return trace is not None and trace == trace_id_of(b)


def new_traceparent(trace_id: str | None = None) -> str:
    """A sampled context with a new span id, in ``trace_id``'s trace, else in a new one."""
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


@dataclass(frozen=True)
class TraceSpan:
    """A span in progress (or, with tracing off, the context it would have been a child of)."""

    traceparent: str
    """The context to hand on: this span's when tracing is on, the parent's otherwise."""
    tracestate: str | None
    handle: Any = None
    """The OpenTelemetry span, when there is one."""

    def set(self, **attributes: str | int | float | bool | None) -> None:
        if self.handle is not None:
            for key, value in attributes.items():
                if value is not None:
                    self.handle.set_attribute(f"ripple.{key}", value)

    def fail(self, description: str) -> None:
        if self.handle is not None:
            self.handle.set_status(_State.api.Status(_State.api.StatusCode.ERROR, description[:200]))


class _State:
    tracer: Any = None
    provider: Any = None
    api: Any = None
    """``opentelemetry.trace``, imported only once tracing is on."""
    empty: Any = None
    """An empty context: a span without a parent starts a trace, whatever the current context holds."""
    kinds: dict[str, Any] = {}


def enabled() -> bool:
    return _State.tracer is not None


def _wanted(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")}
    if "otlp" not in exporters:
        return False
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def configure(component: str, environ: Mapping[str, str] | None = None) -> bool:
    """Start exporting this process's spans when the ``OTEL_*`` variables ask for it; whether it does.

    The service is ``OTEL_SERVICE_NAME`` when set, else ``ripple-<component>``. Spans leave in batches from the
    SDK's own thread, so exporting never waits on the event loop, and what is left is flushed at exit."""
    environ = os.environ if environ is None else environ
    if _State.tracer is not None or not _wanted(environ):
        return enabled()
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {"service.name": f"ripple-{component}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    batches = _batches(environ)
    provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(), max_export_batch_size=batches.get("max_export_batch_size"),
        schedule_delay_millis=batches.get("schedule_delay_millis")))
    _State.provider = provider
    _State.tracer = provider.get_tracer("ripple")
    _State.api, _State.empty = trace, Context()
    kind = trace.SpanKind
    _State.kinds = {"server": kind.SERVER, "client": kind.CLIENT, "producer": kind.PRODUCER,
                    "consumer": kind.CONSUMER, "internal": kind.INTERNAL}
    atexit.register(shutdown)
    log.info("tracing: exporting spans over OTLP as %s",
             environ.get("OTEL_SERVICE_NAME") or attributes["service.name"])
    return True


EXPORT_BATCH = 64
"""Spans per export, unless ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` says: the exporter encodes a batch in its own
thread while holding the GIL, so smaller batches sent more often stall the event loop for less at a time. Against
the SDK's 512 every 5 s this halved the end-to-end p99 with every span exported (``bench/tracing.py``)."""
EXPORT_DELAY_MS = 100


def _batches(environ: Mapping[str, str]) -> dict[str, int]:
    """Ripple's batch settings where the ``OTEL_BSP_*`` variables leave them to the SDK's defaults."""
    chosen = {}
    if not environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"):
        chosen["max_export_batch_size"] = EXPORT_BATCH
    if not environ.get("OTEL_BSP_SCHEDULE_DELAY"):
        chosen["schedule_delay_millis"] = EXPORT_DELAY_MS
    return chosen


def shutdown() -> None:
    """Flush and stop the exporter (idempotent)."""
    provider, _State.provider, _State.tracer = _State.provider, None, None
    if provider is not None:
        provider.shutdown()


@contextmanager
def span(name: str, *, parent: str | None, tracestate: str | None = None, kind: SpanKind = "internal",
         attributes: Mapping[str, str | int | float | bool | None] | None = None) -> Iterator[TraceSpan]:
    """A span named ``name``, child of the context ``parent`` (a ``traceparent``; a new trace when it is not one).

    With tracing off, the handle it yields carries ``parent`` itself (a new context when ``parent`` is not one),
    so the caller hands the same context on either way."""
    tracer = _State.tracer
    if tracer is None:
        yield TraceSpan(parent if parent is not None and is_traceparent(parent) else new_traceparent(), tracestate)
        return
    # Built by hand from the parsed header, and handed on the same way: the propagator's extract and inject,
    # and making the span current, cost as much again as the span itself (measured: 37 µs against 22 µs).
    api = _State.api
    if parent is not None and is_traceparent(parent):
        remote = api.SpanContext(int(parent[3:35], 16), int(parent[36:52], 16), is_remote=True,
                                 trace_flags=api.TraceFlags(int(parent[53:55], 16)),
                                 trace_state=api.TraceState.from_header([tracestate]) if tracestate else None)
        context = api.set_span_in_context(api.NonRecordingSpan(remote), _State.empty)
    else:
        context = _State.empty
    attrs = {f"ripple.{key}": value for key, value in (attributes or {}).items() if value is not None}
    handle = tracer.start_span(name, context=context, kind=_State.kinds[kind], attributes=attrs)
    own = handle.get_span_context()
    try:
        yield TraceSpan(f"00-{own.trace_id:032x}-{own.span_id:016x}-{own.trace_flags:02x}", tracestate, handle)
    except BaseException as exc:
        handle.set_status(api.Status(api.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:200]))
        raise
    finally:
        handle.end()
