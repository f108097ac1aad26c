"""The one pull loop: a trigger's worker, a broker's router and the backstop read their consumer through it.

Pull requests stay outstanding on the server for as many messages as the reader has room for, so a message is
pushed to the reader as soon as it is stored, and a freed slot costs one small request sent without waiting for
an answer. nats-py's ``fetch`` instead waits for each batch with a request/answer round trip, sends two requests
when nothing is pending, and waits for every message through ``asyncio.wait_for`` (a task per message): at a
few thousand events a second that was a third of the dispatcher's CPU and most of its latency (profiled).

The accounting follows the JetStream pull protocol: a request for ``n`` messages is answered by up to ``n``
messages, then ends (expired, 408) with ``Nats-Pending-Messages`` saying how many it did not deliver; while a
request waits, the server sends an idle heartbeat (100) every :data:`HEARTBEAT` seconds. No message and no
heartbeat for two of them while requests are outstanding means the requests are gone (the server restarted, the
connection was replaced): the loop ends with :class:`PullStalled`, for its supervisor to start it afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ripple._aio import cancel_and_wait, raise_if_cancelling
from ripple.store.jetstream import EventStore

__all__ = ["EXPIRES", "HEARTBEAT", "Handlers", "PullFailed", "PullStalled", "Slots", "fetch_forever"]

log = logging.getLogger(__name__)

EXPIRES = 30.0
"""Seconds a pull request waits on the server for messages before it ends and is renewed."""
HEARTBEAT = 2.0
"""Seconds between the server's idle heartbeats while a pull request waits."""
_STATUS = "Status"
_PENDING = "Nats-Pending-Messages"
_HEARTBEAT_STATUS = "100"
_ENDED_STATUSES = frozenset({"408", "404"})


class PullFailed(Exception):
    """The server refused or ended the pull for good (the consumer was deleted, a limit was hit)."""


class PullStalled(PullFailed):
    """Pull requests were outstanding but neither messages nor heartbeats came: the requests are gone."""


class _Pull:
    """The outstanding pull requests of one consumer, and the messages they bring."""

    def __init__(self, store: EventStore, stream: str, consumer: str,
                 take: Callable[[list[Msg]], Awaitable[None]], release: Callable[[int], None]) -> None:
        self.store = store
        self.nc = store.nc
        self.reconnects = store.nc.stats["reconnects"]
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.take = take
        self.release = release
        self.outstanding = 0
        """Messages asked for that neither came nor were reported undelivered."""
        self.heard = asyncio.get_running_loop().time()
        self.failure: BaseException | None = None
        self.inbox = ""
        self.subscription: Subscription | None = None

    async def start(self) -> None:
        self.inbox = self.nc.new_inbox()
        self.subscription = await self.nc.subscribe(self.inbox, cb=self._on_message)

    async def request(self, count: int) -> None:
        request = {"batch": count, "expires": int(EXPIRES * 1e9), "idle_heartbeat": int(HEARTBEAT * 1e9)}
        if self.outstanding == 0:
            self.heard = asyncio.get_running_loop().time()  # heartbeats are due from now, not from the last one
        self.outstanding += count
        await self.nc.publish(self.subject, json.dumps(request).encode(), reply=self.inbox)

    async def _on_message(self, msg: Msg) -> None:
        self.heard = asyncio.get_running_loop().time()
        # A JetStream message always has its ack subject as reply: a Status header on it is the event's own.
        status = msg.headers.get(_STATUS) if msg.headers and not msg.reply else None
        if status is None:
            self.outstanding -= 1
            await self.take([msg])
            return
        if status == _HEARTBEAT_STATUS:
            return
        description = (msg.headers or {}).get("Description", "").lower()
        if status in _ENDED_STATUSES or (status == "409" and _PENDING in (msg.headers or {})):
            undelivered = min(_pending(msg), self.outstanding)  # exact: what that request did not bring
            self.outstanding -= undelivered
            self.release(undelivered)
            return
        # Anything else (the consumer deleted, a leadership change, a request refused without saying how much it
        # held) leaves the count unknown: the loop ends, and its restart starts from a count of zero.
        self.failure = PullFailed(f"JetStream ended the pull: {status} {description}")

    def stalled(self, now: float) -> bool:
        return self.outstanding > 0 and now - self.heard > 2 * HEARTBEAT + 1

    def connection_changed(self) -> bool:
        """The store's connection was replaced, or reconnected: the server forgot the requests made on it."""
        return self.store.nc is not self.nc or self.nc.is_closed or self.nc.stats["reconnects"] != self.reconnects

    async def close(self) -> None:
        if self.subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self.subscription.unsubscribe()
        self.release(self.outstanding)  # whatever still comes goes to a closed inbox: redelivered after ack_wait
        self.outstanding = 0


def _pending(msg: Msg) -> int:
    try:
        return int((msg.headers or {}).get(_PENDING, "0"))
    except ValueError:
        return 0


async def fetch_forever(
    store: EventStore,
    stream: str,
    consumer: Callable[[], Awaitable[str]],
    take: Callable[[list[Msg]], Awaitable[None]],
    *,
    reserve: Callable[[], Awaitable[int]],
    release: Callable[[int], None] = lambda unused: None,
) -> None:
    """Pull from ``stream``'s durable ``consumer()`` until cancelled or the pull fails, handing messages to ``take``.

    ``consumer`` creates or updates the consumer and names it: it runs at every (re)start, since after a failure
    the consumer may be gone or the store's connection replaced. ``reserve`` waits until there is room and says
    for how many messages (each message that comes takes one); ``release`` gives back what no message filled.
    A pull the server ends or that stalls ends the loop with :class:`PullFailed`, for the supervisor to restart.
    """
    pull = _Pull(store, stream, await consumer(), take, release)
    await pull.start()
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(_watch(pull))
            while True:
                room = await reserve()
                try:
                    await pull.request(room)
                except BaseException:
                    pull.outstanding -= room
                    release(room)
                    raise
                raise_if_cancelling()  # nats-py's flush may swallow the cancellation the watchdog's failure sent
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    finally:
        await pull.close()


async def _watch(pull: _Pull) -> None:
    """End the loop when the pull failed or stalled; ``TaskGroup`` then cancels the requesting side."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(HEARTBEAT / 2)
        if pull.failure is not None:
            raise pull.failure
        if pull.connection_changed():
            raise PullStalled(f"the connection changed under the pull on {pull.subject}: starting it again")
        if pull.stalled(loop.time()):
            raise PullStalled(f"no message or heartbeat for {2 * HEARTBEAT + 1:g}s on {pull.subject}")


class Slots:
    """Room for at most ``size`` messages in hand at once: :meth:`reserve` is the pull loop's ``reserve``.

    Room is asked for in steps of half the size at least, so that a busy reader sends one pull request per
    half-size messages, not one per message; the other half stays requested, so a message never waits for one.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.step = max(1, size // 2)
        self._free = asyncio.Semaphore(size)

    async def reserve(self) -> int:
        """Wait for :attr:`step` free slots, then take every other free one without waiting; return how many."""
        taken = 0
        try:
            while taken < self.step:
                await self._free.acquire()
                taken += 1
        except BaseException:
            self.release(taken)
            raise
        while taken < self.size and not self._free.locked():
            await self._free.acquire()  # does not wait: a slot is free
            taken += 1
        return taken

    def release(self, count: int = 1) -> None:
        for _ in range(count):
            self._free.release()


class Handlers:
    """Each message handled by ``handle`` in a task of its own, which gives its slot back when done: the pull
    loop's ``take``."""

    def __init__(self, handle: Callable[[Msg], Awaitable[None]], slots: Slots) -> None:
        self.handle = handle
        self.slots = slots
        self.tasks: set[asyncio.Task[None]] = set()

    async def take(self, messages: list[Msg]) -> None:
        for msg in messages:
            task = asyncio.create_task(self._run(msg))
            self.tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.slots.release()  # here, not in _run: a task cancelled before it started still gives its slot back

    async def _run(self, msg: Msg) -> None:
        try:
            await self.handle(msg)
        except Exception:  # each handler settles its own failures: this is the net under them
            log.exception("handling message %s raised; it will be redelivered", msg.subject)

    async def stop(self, grace: float = 0.0) -> None:
        """Let the handlers in flight finish for ``grace`` seconds, then cancel the rest (their messages are not
        acknowledged, so JetStream redelivers them)."""
        if self.tasks and grace > 0:
            await asyncio.wait(self.tasks, timeout=grace)
        await cancel_and_wait(list(self.tasks))
