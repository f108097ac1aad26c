"""Sending a source's events: retried by ``spec.delivery``, dead-lettered past its limits, never dropped.

A ping tick, a Kubernetes change or a core NATS message has no sender that would retry it, so the source does:
attempts are settled by the trigger's rules (``dispatch/policy.py``), and an event they give up on goes to the
dead-letter sink (``spec.delivery.deadLetterSink``) with the ``rippleerror*`` extensions, else to the dead-letter
stream of the broker it was meant for. When no dead-letter place takes it either, the source keeps trying (the
wait capped at :data:`MAX_KEEP_WAIT`) rather than forget it: its upstream, a watch or a schedule, waits too.

A webhook sends each request's events once (:meth:`SourceDelivery.send_once`): its sender retries on 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from ripple.dispatch.client import DeliveryResult
from ripple.dispatch.dead_letter import dead_letter_event, undecodable_event
from ripple.dispatch.policy import CONNECTION_ERROR, Action, DeliveryPolicy, decide, is_success, parse_retry_after
from ripple.events.model import CloudEvent
from ripple.metrics import SOURCE_EVENTS, child
from ripple.sources.sink import Sink
from ripple.tracing import TRACEPARENT, TraceSpan, span

__all__ = ["MAX_KEEP_WAIT", "MAX_UNDECODABLE", "DeadLetterKeeper", "Sending", "SourceDelivery", "SourceStats"]

log = logging.getLogger(__name__)

MAX_KEEP_WAIT = 30.0
"""Longest wait between attempts to keep a dead letter that nothing has taken yet."""
MAX_UNDECODABLE = 256 * 1024
"""Bytes of an unusable upstream message (or of a too-large event's data) kept in its dead letter."""
TOO_LARGE = 413
DeadLetterKeeper = Callable[[CloudEvent], Awaitable[bool]]
"""Keeps a dead letter somewhere durable (a broker's dead-letter stream); ``False`` when it could not."""


@dataclass
class SourceStats:
    """What ``ripple status`` shows of one source."""

    sent: int = 0
    retried: int = 0
    dead_lettered: int = 0
    refused: int = 0
    last_error: str | None = None
    last_error_at: float | None = None

    def failed(self, error: str) -> None:
        self.last_error, self.last_error_at = error, time.time()


class SourceDelivery:
    """One EventSource's way to its sink, with its ``delivery`` compiled once."""

    def __init__(self, name: str, sink: Sink, policy: DeliveryPolicy, *, dead_letter_sink: Sink | None = None,
                 keep: DeadLetterKeeper | None = None, stats: SourceStats | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.name = name
        """``namespace/name`` of the EventSource (labels the metric; stamped on its dead letters)."""
        self.sink = sink
        self.policy = policy
        self.dead_letter_sink = dead_letter_sink
        self.keep = keep
        self.stats = stats or SourceStats()
        self._sleep = sleep
        self._sent = child(SOURCE_EVENTS, name, "sent")
        self._retried = child(SOURCE_EVENTS, name, "retried")
        self._dead_lettered = child(SOURCE_EVENTS, name, "dead-lettered")
        self._unavailable = child(SOURCE_EVENTS, name, "unavailable")

    def count(self, outcome: str, amount: int = 1) -> None:
        child(SOURCE_EVENTS, self.name, outcome).inc(amount)

    def _span(self, event: CloudEvent) -> AbstractContextManager[TraceSpan]:
        """The span of sending ``event``; an event without a trace context starts a trace with it."""
        parent = event.get(TRACEPARENT)
        return span(f"source {self.name}", parent=parent if isinstance(parent, str) else None, kind="producer",
                    attributes={"source": self.name, "event_id": event.id, "event_type": event.type})

    @staticmethod
    def _traced(event: CloudEvent, trace: TraceSpan) -> CloudEvent:
        if event.get(TRACEPARENT) is not None:
            return event
        return event.with_attributes(**{TRACEPARENT: trace.traceparent})

    async def send_once(self, event: CloudEvent) -> DeliveryResult:
        """One attempt, counted: the caller answers its upstream by the result."""
        with self._span(event) as trace:
            result = await self.sink.send(self._traced(event, trace))
            trace.set(status=result.status)
        if is_success(result.status):
            self._sent.inc()
            self.stats.sent += 1
        else:
            self._unavailable.inc()
            self.stats.failed(_describe(result))
        return result

    async def deliver(self, event: CloudEvent) -> bool:
        """Send ``event`` until the sink accepts it (``True``) or it is kept as a dead letter (``False``).

        Every attempt carries the same trace context, so the broker's dedup keeps one event in one trace."""
        with self._span(event) as trace:
            return await self._deliver(self._traced(event, trace))

    async def _deliver(self, event: CloudEvent) -> bool:
        attempt = 0
        first = time.monotonic()
        while True:
            attempt += 1
            result = await self.sink.send(event)
            if is_success(result.status):
                self._sent.inc()
                self.stats.sent += 1
                return True
            decision = decide(self.policy, status=result.status, attempt=attempt,
                              retry_after=parse_retry_after(result.headers.get("Retry-After")),
                              event_age=time.monotonic() - first)
            self.stats.failed(_describe(result))
            if decision.action is Action.RETRY:
                self._retried.inc()
                self.stats.retried += 1
                log.info("source %s: event %s not accepted by %s (%s); retrying in %.2fs", self.name, event.id,
                         self.sink.name, _describe(result), decision.delay)
                await self._sleep(decision.delay)
                continue
            await self._keep(event, result, decision.reason)
            return False

    async def keep_undecodable(self, payload: bytes, reason: str, *, ident: str) -> None:
        """Keep an upstream message no event can be made of (its bytes as data) as a dead letter."""
        namespace, _, name = self.name.partition("/")
        event = undecodable_event(payload[:MAX_UNDECODABLE], namespace=namespace, broker=name, sequence=0)
        event = event.with_attributes(id=ident)
        await self._keep(event, DeliveryResult(CONNECTION_ERROR, error=reason), reason)

    async def _keep(self, event: CloudEvent, result: DeliveryResult, reason: str) -> None:
        if result.status == TOO_LARGE and event.data is not None and len(event.data) > MAX_UNDECODABLE:
            # Refused for its size, it would be refused as a dead letter too and be retried for ever: its data
            # is cut to what a dead letter can hold, and the reason says so.
            reason = f"{reason}; data cut to {MAX_UNDECODABLE} of {len(event.data)} bytes"
            event = CloudEvent.create(event.attributes, event.data[:MAX_UNDECODABLE])
        letter = dead_letter_event(event, result, destination=self.sink.name, trigger=self.name, reason=reason)
        wait = self.policy.backoff_delay or 0.1
        while True:
            if await self._to_dead_letter_sink(letter) or (self.keep is not None and await self._kept(letter)):
                self._dead_lettered.inc()
                self.stats.dead_lettered += 1
                log.warning("source %s: event %s dead-lettered: %s", self.name, event.id, reason)
                return
            log.warning("source %s: no dead-letter place took event %s yet; retrying in %.1fs", self.name,
                        event.id, wait)
            await self._sleep(wait)
            wait = min(wait * 2, MAX_KEEP_WAIT)

    async def _to_dead_letter_sink(self, letter: CloudEvent) -> bool:
        if self.dead_letter_sink is None:
            return False
        result = await self.dead_letter_sink.send(letter)
        if not is_success(result.status):
            log.warning("source %s: dead-letter sink %s did not accept (%s)", self.name, self.dead_letter_sink.name,
                        _describe(result))
        return is_success(result.status)

    async def _kept(self, letter: CloudEvent) -> bool:
        assert self.keep is not None
        try:
            return await self.keep(letter)
        except Exception as exc:  # the last stop of an event: nothing may escape from it
            log.warning("source %s: dead-letter stream failed (%s: %s)", self.name, type(exc).__name__, exc)
            return False


class Sending:
    """Sends running in the background, at most ``limit`` at once: :meth:`submit` waits for room, which holds the
    reader back. :meth:`close` cancels what is still being sent; ids are stable, so what a restarted reader sends
    again is stored once."""

    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task[object]] = set()

    async def submit(self, send: Callable[[], Awaitable[object]], name: str | None = None) -> None:
        await self._slots.acquire()
        task = asyncio.ensure_future(send())
        if name is not None:
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _describe(result: DeliveryResult) -> str:
    return f"status {result.status}" if result.status else (result.error or "no answer")
