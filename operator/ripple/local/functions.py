"""Functions as local processes: each runs ``ripple function serve`` on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from pathlib import Path

import aiohttp

from ripple.api.durations import seconds
from ripple.api.loading import Manifests
from ripple.api.models import Destination, Function
from ripple.dispatch import Unresolvable
from ripple.local.nats_server import free_port

log = logging.getLogger(__name__)


class LocalModeError(ValueError):
    """A manifest that local mode cannot run."""


def code_directory(function: Function, manifest_file: Path, data_dir: Path) -> Path:
    """Where the function's code lives: ``source.path`` beside its manifest, or ``source.inline`` written out."""
    source = function.spec.source
    if source is not None and source.path:
        directory = (manifest_file.parent / source.path).resolve()
        if not directory.is_dir():
            raise LocalModeError(
                f"{manifest_file} (Function '{function.namespace}/{function.name}'): spec.source.path: "
                f"{directory} is not a directory"
            )
        return directory
    if source is not None and source.inline:
        directory = data_dir / "functions" / function.namespace / function.name
        module = function.spec.handler.partition(":")[0]
        target = directory.joinpath(*module.split(".")).with_suffix(".py")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.inline)
        return directory
    raise LocalModeError(
        f"{manifest_file} (Function '{function.namespace}/{function.name}'): spec.image: local mode runs "
        "source.path or source.inline; images need a cluster"
    )


class FunctionProcess:
    """One runtime process for one Function, restarted if it dies unexpectedly."""

    def __init__(self, function: Function, code_dir: Path, *, host: str = "127.0.0.1") -> None:
        self.function = function
        self.code_dir = code_dir
        self.host = host
        self.port = free_port(host)
        self.name = f"{function.namespace}/{function.name}"
        self.process: asyncio.subprocess.Process | None = None
        self._relay: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "ripple", "function", "serve",
            "--handler", self.function.spec.handler,
            "--path", str(self.code_dir),
            "--host", self.host,
            "--port", str(self.port),
            "--timeout", str(seconds(self.function.spec.timeout)),
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({var.name: var.value for var in self.function.spec.env})
        env["PYTHONUNBUFFERED"] = "1"
        env["RIPPLE_FUNCTION"] = self.name
        return env

    async def start(self, timeout: float = 30.0) -> None:
        self._stopping = False
        self.process = await asyncio.create_subprocess_exec(
            *self.command(),
            cwd=str(self.code_dir),
            env=self.environment(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._relay = asyncio.create_task(self._relay_output(self.process))
        await self.wait_healthy(timeout)

    async def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process is None or self.process.returncode is not None:
                    raise LocalModeError(f"function {self.name} exited before it was ready (see its output above)")
                try:
                    async with session.get(f"{self.url}health", timeout=aiohttp.ClientTimeout(total=1)) as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.05)
        raise LocalModeError(f"function {self.name} not healthy after {timeout:g}s")

    async def _relay_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            print(f"[{self.name}] {line.decode(errors='replace').rstrip()}", flush=True)
        await process.wait()
        if not self._stopping:
            log.warning("function %s exited with code %s; restarting", self.name, process.returncode)
            await asyncio.sleep(1)
            if not self._stopping:
                with contextlib.suppress(LocalModeError):
                    await self.start()

    async def stop(self) -> None:
        self._stopping = True
        process = self.process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay


class LocalFunctions:
    """All Functions of a manifest set as local processes, and the resolver that gives their URLs."""

    def __init__(self, manifests: Manifests, data_dir: Path, *, host: str = "127.0.0.1") -> None:
        self.processes = {
            key: FunctionProcess(fn, code_directory(fn, manifests.origin(fn), data_dir), host=host)
            for key, fn in manifests.functions.items()
        }

    async def start(self) -> None:
        await asyncio.gather(*(p.start() for p in self.processes.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.processes.values()))

    async def resolve(self, destination: Destination, namespace: str) -> str:
        if destination.uri is not None:
            return destination.uri
        assert destination.ref is not None
        key = (destination.ref.namespace or namespace, destination.ref.name)
        process = self.processes.get(key)
        if process is None:
            raise Unresolvable(f"no Function '{key[0]}/{key[1]}'")
        return process.url
