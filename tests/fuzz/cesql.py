"""Fuzz harness for CESQL (``ripple.filters.cesql.compile``): a Trigger's ``cesql`` filter, compiled from
whatever its author wrote and evaluated for every event the broker holds.

An input is the expression's text (UTF-8; other bytes become surrogate escapes). :class:`CesqlError` is the
refusal; anything else, when compiling or when evaluating against the fixed events below, is a crash. An
evaluation must also return a CESQL value and a known error kind, and an expression that is true for an event
must not have constraints (used by the trigger index) that the event breaks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ripple.events import CloudEvent
from ripple.filters import cesql
from ripple.filters.cesql.ast import INT_MAX, INT_MIN

from .invariants import FuzzFinding, check_constraints

REFUSALS: tuple[type[Exception], ...] = (cesql.CesqlError,)

EVENTS: tuple[Mapping[str, Any], ...] = (
    CloudEvent.create(
        {
            "specversion": "1.0",
            "id": "order-1",
            "source": "/shop/orders",
            "type": "com.example.order.placed",
            "subject": "eu/42",
            "time": "2024-05-01T12:00:00Z",
            "datacontenttype": "application/json",
            "priority": 5,
            "express": True,
            "region": "EU",
            "count": "05",
            "flag": "TRUE",
            "empty": " ",
        },
        b'{"total": 12.5, "items": ["a", "b"]}',
    ).as_mapping(),
    {"specversion": "1.0", "id": "x", "source": "s", "type": "t", "big": 2**40, "ratio": 0.5, "none": None},
    {},
)


def fuzz_one(data: bytes) -> None:
    source = data.decode("utf-8", "surrogateescape")
    try:
        expression = cesql.compile(source)
    except REFUSALS:
        return
    constraints = expression.constraints()
    for event in EVENTS:
        value, error = expression.evaluate(event)
        if type(value) not in (bool, int, str) or (type(value) is int and not INT_MIN <= value <= INT_MAX):
            raise FuzzFinding(f"{source!r} evaluated to {value!r}, not a CESQL value")
        if error is not None and error not in cesql.ERROR_KINDS:
            raise FuzzFinding(f"{source!r} gave the unknown error kind {error!r}")
        if value is True and error is None:
            check_constraints(constraints, event, f"CESQL {source!r}")
