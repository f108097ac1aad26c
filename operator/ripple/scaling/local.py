"""The local backend: a Function's replicas are runtime processes on this machine (``ripple dev``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from ripple._aio import cancel_and_wait
from ripple.metrics import COLD_STARTS
from ripple.scaling.backend import FunctionKey, ReadyReplicas
from ripple.scaling.processes import RuntimeProcess, WarmPool

__all__ = ["ColdStarts", "LaunchSpec", "LocalProcessBackend", "Replica"]

log = logging.getLogger(__name__)
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class LaunchSpec:
    """How to run one Function locally."""

    handler: str
    code_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0


@dataclass(eq=False)
class Replica:
    """One replica: its process once started (taken from the warm pool or spawned), ready once healthy."""

    label: str
    runtime: RuntimeProcess | None = None
    ready: bool = False
    stopped: bool = False

    @property
    def url(self) -> str:
        assert self.runtime is not None
        return self.runtime.url

    async def stop(self) -> None:
        self.ready, self.stopped = False, True
        if self.runtime is not None:
            await self.runtime.stop()


@dataclass
class ColdStarts:
    count: int = 0
    last_latency: float | None = None
    """Seconds from the scale-up from zero to the first ready replica."""
    pending_since: float | None = None


class LocalProcessBackend(ReadyReplicas):
    """Starts and stops runtime processes to match the replicas asked for; readiness is each one's ``/health``."""

    def __init__(self, launches: dict[FunctionKey, LaunchSpec], *, host: str = "127.0.0.1", pool_size: int = 0):
        self.launches = launches
        self.host = host
        self.pool = WarmPool(pool_size, host=host) if pool_size > 0 else None
        self.cold_starts: dict[FunctionKey, ColdStarts] = {key: ColdStarts() for key in launches}
        super().__init__()
        self._replicas: dict[FunctionKey, list[Replica]] = {key: [] for key in launches}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        if self.pool is not None:
            await self.pool.start()

    def replicas(self, function: FunctionKey) -> int:
        return len(self._replicas[function])

    def endpoints(self, function: FunctionKey) -> list[str]:
        return [replica.url for replica in self._replicas[function] if replica.ready]

    def pids(self, function: FunctionKey) -> list[int]:
        return [r.runtime.pid for r in self._replicas[function] if r.runtime is not None and r.runtime.pid is not None]

    async def scale(self, function: FunctionKey, replicas: int, *, initial: bool = False) -> None:
        current = self._replicas[function]
        if replicas > len(current):
            if not current and not initial and self.cold_starts[function].pending_since is None:
                self.cold_starts[function].pending_since = time.monotonic()
            for _ in range(replicas - len(current)):
                replica = Replica(label=f"{function[0]}/{function[1]}")
                current.append(replica)
                self._spawn(self._start_replica(function, replica))
        elif replicas < len(current):
            # Stop the newest first: the oldest have warm caches and connections.
            doomed = current[replicas:]
            del current[replicas:]
            # Stopping runs in tasks of the backend's own, so a cancelled caller cannot leave a process behind.
            stops = [self._spawn(replica.stop()) for replica in doomed]
            await asyncio.gather(*stops)
            await self._notify()

    def _gave_up(self, function: FunctionKey) -> bool:
        return not self._replicas[function]  # the replica that was starting failed: no point waiting

    async def _start_replica(self, function: FunctionKey, replica: Replica) -> None:
        assert self._session is not None
        launch = self.launches[function]
        pooled = self.pool.take() if self.pool is not None else None
        runtime = pooled or RuntimeProcess(host=self.host, label=replica.label)
        runtime.label = replica.label
        runtime.on_exit = lambda _: self._exited(replica)
        replica.runtime = runtime
        try:
            if pooled is not None:
                await runtime.specialize(self._session, {
                    "handler": launch.handler, "path": str(launch.code_dir), "env": launch.env,
                    "timeout": launch.timeout, "name": replica.label,
                })  # fmt: skip
            else:
                await runtime.spawn(handler=launch.handler, path=launch.code_dir, env=launch.env,
                                    timeout=launch.timeout, cwd=launch.code_dir)
                await runtime.wait_listening(self._session, START_TIMEOUT, healthy=True)
        except (RuntimeError, aiohttp.ClientError) as exc:
            log.warning("function %s/%s: replica failed to start: %s", *function, exc)
            await replica.stop()
            with contextlib.suppress(ValueError):
                self._replicas[function].remove(replica)
            await self._notify()
            return
        if replica.stopped:  # scaled down while starting
            await runtime.stop()
            return
        replica.ready = True
        cold = self.cold_starts[function]
        if cold.pending_since is not None:
            cold.count += 1
            COLD_STARTS.labels(replica.label).inc()
            cold.last_latency = time.monotonic() - cold.pending_since
            cold.pending_since = None
            how = "from the warm pool" if pooled is not None else "in a new process"
            log.info("function %s/%s: cold start %s in %.0fms", *function, how, cold.last_latency * 1000)
        await self._notify()

    def _exited(self, replica: Replica) -> None:
        for function, replicas in self._replicas.items():
            if replica in replicas:
                log.warning("function %s/%s: a replica exited unexpectedly", *function)
                replicas.remove(replica)
                if not replicas:
                    self.cold_starts[function].pending_since = None
        self._spawn(self._notify())

    def _spawn(self, coroutine) -> asyncio.Task[None]:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        for replicas in self._replicas.values():
            await asyncio.gather(*(replica.stop() for replica in replicas))
            replicas.clear()
        if self._tasks:  # replicas still starting or stopping: they finish quickly once their process is gone
            _, pending = await asyncio.wait(set(self._tasks), timeout=10)
            await cancel_and_wait(pending)
        if self.pool is not None:
            await self.pool.close()
        if self._session is not None:
            await self._session.close()
