"""An OTLP/HTTP trace receiver, run as its own process: ``python -m tests.otlp_receiver PORT FILE``.

It answers ``POST /v1/traces`` as a collector does (protobuf ``ExportTraceServiceRequest``, optionally gzip) and
appends one JSON line per span to FILE: service, name, kind, trace and span ids, parent id and attributes."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _value(any_value: object) -> object:
    kind = any_value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(any_value, kind) if kind else None


def spans(request: ExportTraceServiceRequest) -> list[dict[str, object]]:
    found = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.append({
                    "service": resource.get("service.name"), "name": span.name, "kind": KINDS.get(span.kind),
                    "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                    "parent_id": span.parent_span_id.hex() or None, "status": span.status.code,
                    "attributes": {a.key: _value(a.value) for a in span.attributes},
                })
    return found


def app(out: Path) -> web.Application:
    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        with out.open("a") as file:
            for span in spans(message):
                file.write(json.dumps(span) + "\n")
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    application = web.Application(client_max_size=16 * 1024 * 1024)
    application.router.add_post("/v1/traces", traces)
    return application


if __name__ == "__main__":
    port, out = int(sys.argv[1]), Path(sys.argv[2])
    print(f"otlp receiver listening on {port}", flush=True)
    web.run_app(app(out), host="127.0.0.1", port=port, print=None)
