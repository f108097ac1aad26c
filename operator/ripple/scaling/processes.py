"""Runtime processes on this machine: one replica is one ``ripple function serve`` process on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from ripple._aio import cancel_and_wait, free_port
from ripple.runtime.server import LISTENING, PARENT_PID_ENV

READY_POLL = 0.1
"""Seconds between readiness checks of a process that has not said it listens yet."""

__all__ = ["RuntimeProcess", "WarmPool"]


class RuntimeProcess:
    """A runtime process: started cold with a handler, or as an empty warm-pool process to specialize later."""

    def __init__(self, *, host: str, label: str, on_exit: Callable[[RuntimeProcess], None] | None = None) -> None:
        self.host = host
        self.port = free_port(host)
        self.label = label
        self.on_exit = on_exit
        self.process: asyncio.subprocess.Process | None = None
        self.stopping = False
        self._relay: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        """Set when the process says it listens: readiness is then checked at once instead of at the next poll."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    async def spawn(self, *, handler: str | None, path: Path | None, env: dict[str, str], timeout: float,
                    cwd: Path | None = None) -> None:
        args = ["--handler", handler, "--path", str(path)] if handler else ["--pool"]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ripple", "function", "serve", *args,
            "--host", self.host, "--port", str(self.port), "--timeout", str(timeout),
            cwd=str(cwd) if cwd else None,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1", PARENT_PID_ENV: str(os.getpid())},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self._relay = asyncio.create_task(self._relay_output())

    async def wait_listening(self, session: aiohttp.ClientSession, timeout: float, *, healthy: bool) -> None:
        """Wait until the process answers ``/health`` (with 200 when ``healthy``; any answer otherwise)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.returncode is not None:
                raise RuntimeError(f"{self.label} exited before it was ready (see its output above)")
            with contextlib.suppress(TimeoutError):
                # Polling a process that is still importing takes CPU from it: ask when it says it listens.
                await asyncio.wait_for(self._listening.wait(), READY_POLL)
            try:
                async with session.get(f"{self.url}health", timeout=aiohttp.ClientTimeout(total=1)) as response:
                    if response.status == 200 or not healthy:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
        raise RuntimeError(f"{self.label} not ready after {timeout:g}s")

    async def specialize(self, session: aiohttp.ClientSession, spec: dict[str, object]) -> None:
        async with session.post(f"{self.url}-/specialize", json=spec) as response:
            if response.status != 200:
                raise RuntimeError(f"{self.label}: specializing failed: {await response.text()}")

    async def _relay_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            if LISTENING.encode() in line:
                self._listening.set()
            print(f"[{self.label}] {line.decode(errors='replace').rstrip()}", flush=True)
        await self.process.wait()
        if not self.stopping and self.on_exit is not None:
            self.on_exit(self)

    async def stop(self) -> None:
        self.stopping = True
        process = self.process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._relay is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay


class WarmPool:
    """Pre-started empty runtime processes, handed out one at a time and refilled in the background."""

    def __init__(self, size: int, *, host: str = "127.0.0.1") -> None:
        self.size = size
        self.host = host
        self._idle: list[RuntimeProcess] = []
        self._starting = 0
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        await asyncio.gather(*(self._add() for _ in range(self.size)))

    def take(self) -> RuntimeProcess | None:
        """An idle process, or ``None`` when the pool is empty; a replacement starts either way."""
        process = self._idle.pop() if self._idle else None
        self._refill()
        return process

    def _refill(self) -> None:
        if self._closed:
            return
        for _ in range(self.size - len(self._idle) - self._starting):
            task = asyncio.create_task(self._add())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _add(self) -> None:
        assert self._session is not None
        self._starting += 1
        process = RuntimeProcess(host=self.host, label="pool")
        try:
            await process.spawn(handler=None, path=None, env={}, timeout=30.0)
            await process.wait_listening(self._session, 30.0, healthy=False)
        except RuntimeError:
            await process.stop()
            return
        except BaseException:  # cancelled while starting (the pool is closing): leave no process behind
            await asyncio.shield(process.stop())
            raise
        finally:
            self._starting -= 1
        if self._closed:
            await process.stop()
        else:
            self._idle.append(process)

    async def close(self) -> None:
        self._closed = True
        await cancel_and_wait(list(self._tasks))
        await asyncio.gather(*(p.stop() for p in self._idle))
        self._idle.clear()
        if self._session is not None:
            await self._session.close()
