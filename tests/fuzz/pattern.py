"""Fuzz harness for event patterns (``ripple.filters.pattern.compile``): a Trigger's ``pattern`` filter, an
EventBridge-style JSON document from the Trigger's author, matched against every event the broker holds.

An input is the pattern as JSON on its first line, optionally followed by an event as JSON on the next ones;
input that is not JSON is skipped (the pattern reaches Ripple already parsed). The JSON is read by the standard
library's pure-Python scanner, which the runner instruments, so that coverage leads the fuzzer into JSON.
:class:`PatternError` is the refusal; anything else, when compiling or matching the fixed events or the
input's, is a crash. A pattern that matches an event with scalar attributes must not have constraints (used
by the trigger index) that it breaks.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
from collections.abc import Mapping
from typing import Any

from ripple.events import CloudEvent
from ripple.filters import pattern

from .invariants import check_constraints

REFUSALS: tuple[type[Exception], ...] = (pattern.PatternError,)

EVENTS: tuple[Mapping[str, Any], ...] = (
    CloudEvent.create(
        {
            "specversion": "1.0",
            "id": "7",
            "source": "https://files.example/eu",
            "type": "com.example.file.uploaded",
            "subject": "dir/photos/Cat.PNG",
            "datacontenttype": "application/json",
            "size": 2048,
            "public": True,
        },
        b'{"name": "Cat.PNG", "size": 2048, "ratio": 0.75, "owner": null, "ip": "10.0.0.33", "ip6": "2001:db8::7",'
        b' "tags": ["pets", "cats"], "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}], "meta": {"x": [[1]]}}',
    ).as_mapping(),
    {"specversion": "1.0", "id": "1", "source": "s", "type": "t", "n": -1.5e300, "big": 2**70, "z": None},
)


def _decoder() -> json.JSONDecoder:
    decoder = json.JSONDecoder()
    decoder.parse_string = json.decoder.py_scanstring
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    return decoder


_DECODER = _decoder()


def _json(text: bytes) -> Any:
    try:
        return _DECODER.decode(text.decode(json.detect_encoding(text), "surrogatepass"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


def fuzz_one(data: bytes) -> None:
    first, _, rest = data.partition(b"\n")
    document = _json(first)
    if document is None:
        return
    try:
        compiled = pattern.compile(document)
    except REFUSALS:
        return
    constraints = compiled.constraints()
    extra = _json(rest) if rest.strip() else None
    for event in (*EVENTS, *([extra] if isinstance(extra, dict) else [])):
        if compiled.matches(event) and all(_scalar(event[name]) for name in event if name != "data"):
            check_constraints(constraints, event, f"pattern {first!r}")


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
