"""Pipelined JetStream publishing on one NATS connection: every message sent at once, each acknowledgement
matched to its message by the reply subject.

nats-py's ``publish_async`` does the same, but waits for a semaphore through ``asyncio.wait_for`` for every
message, which costs a task per event (a sixth of the ingress's CPU in batch mode, profiled); it also builds a
full ``PubAck`` from each acknowledgement with the standard ``json`` module. Here a message costs one future and
one ``publish``; how many are outstanding is bounded by the callers (each request's events, each delivery's
reply), and every future is removed when its caller stops waiting, answered or not.

The time limit is kept by one sweep over the oldest waiting messages instead of a timer per call: messages wait
in the order they were sent, all with the same limit, so the sweep stops at the first one still in time.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import PubAck

__all__ = ["NO_RESPONDERS", "Publisher"]

NO_RESPONDERS = "503"
"""The status header of the answer nats-server sends when no stream listens on a subject."""
_STATUS_HEADER = "Status"


class Publisher:
    """Publishes to JetStream over ``nc`` and hands back one future per message for its acknowledgement."""

    def __init__(self, nc: NATS, timeout: float) -> None:
        self.nc = nc
        self.timeout = timeout
        """Seconds a message waits for its acknowledgement before its caller gets :class:`TimeoutError`."""
        self._prefix = ""
        self._subscription: Subscription | None = None
        self._waiting: dict[str, tuple[asyncio.Future[PubAck], float]] = {}
        self._tokens = itertools.count()
        self._starting = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def waiting(self) -> int:
        """Messages sent whose acknowledgement has not come yet (and whose caller still waits)."""
        return len(self._waiting)

    async def start(self) -> None:
        """Subscribe to the acknowledgements (done by the first publish if not before; idempotent)."""
        async with self._starting:
            if self._subscription is None:
                prefix = self.nc.new_inbox()
                self._subscription = await self.nc.subscribe(prefix + ".*", cb=self._on_ack)
                self._prefix = prefix + "."
                self._sweeper = asyncio.create_task(self._sweep(), name="publish timeouts")

    async def publish_all(self, messages: Sequence[tuple[str, bytes, dict[str, str]]]) -> list[PubAck]:
        """Send every ``(subject, payload, headers)`` back to back and wait for all their acknowledgements, each
        within :attr:`timeout`; raise the first error (nats-py's, JetStream's, or :class:`TimeoutError`)."""
        if self._closed:
            raise nats.errors.ConnectionClosedError()
        if self._subscription is None:
            await self.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        tokens: list[str] = []
        futures: list[asyncio.Future[PubAck]] = []
        try:
            for subject, payload, headers in messages:
                token = str(next(self._tokens))
                future: asyncio.Future[PubAck] = loop.create_future()
                self._waiting[token] = (future, deadline)
                tokens.append(token)
                futures.append(future)
                await self.nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
            return [await future for future in futures]
        finally:
            for token in tokens:
                self._waiting.pop(token, None)
            for future in futures:
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()  # read, so that failures after the first are not logged as lost

    async def _sweep(self) -> None:
        """Fail, with :class:`TimeoutError`, every message whose acknowledgement is late."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(self.timeout / 4, 0.25))
            now = loop.time()
            for token, (future, deadline) in list(self._waiting.items()):
                if deadline > now:
                    break
                del self._waiting[token]
                if not future.done():
                    future.set_exception(TimeoutError(f"no acknowledgement from JetStream within {self.timeout:g}s"))

    async def _on_ack(self, msg: Msg) -> None:
        waiting = self._waiting.pop(msg.subject[len(self._prefix):], None)
        if waiting is None or (future := waiting[0]).done():
            return  # its caller stopped waiting (timed out): the message may be stored, dedup absorbs a retry
        if msg.headers and msg.headers.get(_STATUS_HEADER) == NO_RESPONDERS:
            future.set_exception(nats.js.errors.NoStreamResponseError())
            return
        try:
            answer = orjson.loads(msg.data)
            if "error" in answer:
                future.set_exception(nats.js.errors.APIError.from_error(answer["error"]))
                return
            future.set_result(PubAck(stream=answer["stream"], seq=answer["seq"],
                                     duplicate=answer.get("duplicate")))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            future.set_exception(nats.errors.Error(f"unreadable JetStream acknowledgement: {exc}"))

    async def close(self) -> None:
        """Stop: every message still waiting fails (its connection is going), so that no caller waits for ever."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        waiting, self._waiting = self._waiting, {}
        for future, _ in waiting.values():
            if not future.done():
                future.set_exception(nats.errors.ConnectionClosedError())
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            try:
                await subscription.unsubscribe()
            except nats.errors.Error:
                pass
