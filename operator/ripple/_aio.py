"""Small asyncio helpers every layer may use: the event loop, free ports, waiting for a stop signal."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import signal
import socket
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

__all__ = [
    "EVENT_LOOP_ENV",
    "FREEZE_AFTER",
    "cancel_and_wait",
    "free_port",
    "freeze_startup_objects",
    "loop_factory",
    "raise_if_cancelling",
    "run",
    "wait_for_signal",
]

T = TypeVar("T")
EVENT_LOOP_ENV = "RIPPLE_EVENT_LOOP"
"""``uvloop`` (the default, when it is installed) or ``asyncio`` (the standard library's loop)."""


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop every Ripple process runs on: uvloop where installed (it halves the cost of the loop and
    of its sockets, profiled on the ingress and the dispatcher), unless ``RIPPLE_EVENT_LOOP=asyncio``;
    ``None`` means the standard library's."""
    choice = os.environ.get(EVENT_LOOP_ENV, "uvloop").strip().lower()
    if choice not in ("uvloop", "asyncio"):
        raise ValueError(f"{EVENT_LOOP_ENV} must be 'uvloop' or 'asyncio', not {choice!r}")
    if choice == "asyncio" or importlib.util.find_spec("uvloop") is None:
        return None
    import uvloop

    return uvloop.new_event_loop


FREEZE_AFTER = 3.0
"""Seconds after start when a process's objects so far are frozen out of the garbage collector's scans."""


def freeze_startup_objects() -> None:
    """Collect once, then keep every object that exists now (modules, models, apps: tens of thousands) out of
    later collections. A full collection over them took ~25 ms here, a pause every event in flight waits for:
    afterwards the collector scans only what was allocated since."""
    gc.collect()
    gc.freeze()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on the loop of :func:`loop_factory`, as :func:`asyncio.run` would, freezing the
    objects of its start-up (:func:`freeze_startup_objects`) :data:`FREEZE_AFTER` seconds in."""
    async def started() -> T:
        handle = asyncio.get_running_loop().call_later(FREEZE_AFTER, freeze_startup_objects)
        try:
            return await main
        finally:
            handle.cancel()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(started())

RECANCEL_AFTER = 1.0
"""Seconds to wait for a cancelled task before cancelling it again."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the caller binds it next)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again any that carries on.

    A single ``cancel()`` is not enough on Python 3.11: ``asyncio.wait_for`` (used inside nats-py and aiohttp)
    swallows a cancellation that arrives just as the awaited result does, so a loop can go on after being
    cancelled, and whoever awaits it would wait for ever.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_AFTER)


def raise_if_cancelling() -> None:
    """Raise :class:`asyncio.CancelledError` if the current task was asked to stop: for loops that go on past
    a point where a library may have swallowed the cancellation."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
