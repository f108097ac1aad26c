"""The operator's own metrics, taken where they happen: each handler run counted by outcome and timed, each
admission review counted, and the watched objects tallied by their Ready condition. ``ripple.metrics`` defines
the series."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar

import kopf
from prometheus_client import Gauge

from ripple.metrics import (
    OPERATOR_ADMISSION_REVIEWS,
    OPERATOR_OBJECTS,
    OPERATOR_RECONCILE_SECONDS,
    OPERATOR_RECONCILES,
    child,
)

__all__ = ["READY_STATUSES", "Inventory", "admission", "ready_status", "reconciler"]

P = ParamSpec("P")
T = TypeVar("T")
READY_STATUSES = ("True", "False", "Unknown")


def reconciler(kind: str | None = None) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Count and time every run of an (async) Kopf handler of ``kind`` (None: the kind of the ``body`` it is
    given, for a handler of several kinds). Applied under Kopf's decorators; the wrapper keeps the handler's
    name, so the ids Kopf persists in its annotations stay as they were."""

    def wrap(handler: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(handler)
        async def observed(*args: P.args, **kwargs: P.kwargs) -> T:
            label = kind if kind is not None else str(kwargs["body"]["kind"])  # type: ignore[index]
            started, outcome = time.perf_counter(), "error"
            try:
                result = await handler(*args, **kwargs)
                outcome = "success"
                return result
            except kopf.TemporaryError:
                outcome = "retry"
                raise
            finally:
                child(OPERATOR_RECONCILES, label, outcome).inc()
                child(OPERATOR_RECONCILE_SECONDS, label).observe(time.perf_counter() - started)

        return observed

    return wrap


def admission(kind: str) -> Callable[[Callable[P, None]], Callable[P, None]]:
    """Count the answers of a (synchronous) validating handler: allowed, denied (it raised ``AdmissionError``),
    or error (it raised something else). Synchronous because Kopf looks through the wrapper to decide how to
    call it."""

    def wrap(handler: Callable[P, None]) -> Callable[P, None]:
        @functools.wraps(handler)
        def observed(*args: P.args, **kwargs: P.kwargs) -> None:
            result = "error"
            try:
                handler(*args, **kwargs)
                result = "allowed"
            except kopf.AdmissionError:
                result = "denied"
                raise
            finally:
                child(OPERATOR_ADMISSION_REVIEWS, kind, result).inc()

        return observed

    return wrap


def ready_status(status: Mapping[str, Any] | None) -> str:
    """The status of an object's Ready condition: True, False, or Unknown (also when it has none yet)."""
    for condition in (status or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") in READY_STATUSES:
            return str(condition["status"])
    return "Unknown"


class Inventory:
    """How many objects of each kind are Ready, not Ready, or Unknown, as the watch reports them: an object's
    latest status replaces its previous one, a deleted object leaves. Every kind starts with zeros, so a
    dashboard sees 0 rather than no series."""

    def __init__(self, kinds: tuple[str, ...], gauge: Gauge = OPERATOR_OBJECTS) -> None:
        self.gauge = gauge
        self._status: dict[tuple[str, str, str], str] = {}
        self._counts = {(kind, status): 0 for kind in kinds for status in READY_STATUSES}
        for kind, status in self._counts:
            gauge.labels(kind, status).set(0)

    def saw(self, kind: str, namespace: str, name: str, status: str) -> None:
        previous = self._status.get((kind, namespace, name))
        if previous == status:
            return
        if previous is not None:
            self._move(kind, previous, -1)
        self._status[(kind, namespace, name)] = status
        self._move(kind, status, 1)

    def gone(self, kind: str, namespace: str, name: str) -> None:
        previous = self._status.pop((kind, namespace, name), None)
        if previous is not None:
            self._move(kind, previous, -1)

    def count(self, kind: str, status: str) -> int:
        return self._counts.get((kind, status), 0)

    def _move(self, kind: str, status: str, by: int) -> None:
        self._counts[(kind, status)] = self._counts.get((kind, status), 0) + by
        self.gauge.labels(kind, status).set(self._counts[(kind, status)])
