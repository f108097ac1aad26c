"""Log lines as JSON, one object per line (``--log-format json``), for a cluster's log pipeline: what a person reads
in the text format, plus the fields a query needs (which trigger, which event, which attempt, which trace).

A record carries those fields as ``extra`` (``log.info(..., extra=fields(trigger=..., event_id=...))``); the text
format ignores them, so one call serves both."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

__all__ = ["FIELDS", "JsonFormatter", "fields", "trace_id"]

FIELDS = ("namespace", "broker", "trigger", "event_id", "attempt", "outcome", "status", "latency_ms", "trace_id",
          "error")
"""The structured fields a record may carry, in the order they are written."""
_KEY = "ripple_fields"
MAX_MESSAGE = 8192
"""A message longer than this is cut: a log line stays a line a pipeline accepts."""


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: the given structured fields (None ones left out)."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValueError(f"not log fields: {sorted(unknown)}")
    return {_KEY: {k: v for k, v in values.items() if v is not None}}


def trace_id(traceparent: object) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<32 hex>-<16 hex>-<2 hex>``), or None when it is not one."""
    if not isinstance(traceparent, str):
        return None
    parts = traceparent.split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or parts[1] == "0" * 32:
        return None
    try:
        int(parts[1], 16)
    except ValueError:
        return None
    return parts[1].lower()


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "component", "logger", "message", <fields>..., "exception"}`` per record."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "component": self.component,
            "logger": record.name,
            "message": message[:MAX_MESSAGE],
        }
        extra = getattr(record, _KEY, None)
        if isinstance(extra, dict):
            line.update((name, extra[name]) for name in FIELDS if name in extra)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)[:MAX_MESSAGE]
        return json.dumps(line, default=str, ensure_ascii=False)
