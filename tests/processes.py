"""Running ``ripple`` commands as real child processes and reading their output."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class RippleProcess:
    """``python -m ripple ARGS`` with its output collected line by line."""

    def __init__(self, *args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.cwd = cwd
        self.env = env or {}
        self.command: tuple[str, ...] = ("-m", "ripple")
        self.lines: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._new_line = asyncio.Event()

    @classmethod
    def python(cls, *args: str, env: dict[str, str] | None = None) -> RippleProcess:
        """``python ARGS`` (a helper process of a test, such as a receiver), read the same way."""
        process = cls(*args, env=env)
        process.command = ()
        return process

    async def start(self) -> RippleProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, *self.command, *self.args, cwd=self.cwd, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())
            self._new_line.set()

    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_line(self, text: str, timeout: float = 30.0) -> str:
        """The first output line containing ``text``; fails with the whole output when it does not come."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for line in self.lines:
                        if text in line:
                            return line
                    if self.process is not None and self.process.returncode is not None:
                        raise AssertionError(f"process exited ({self.process.returncode}) without {text!r}; "
                                             f"output:\n{self.output()}")
                    self._new_line.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):
                            await self._new_line.wait()
        except TimeoutError:
            raise AssertionError(f"no line with {text!r} after {timeout}s; output:\n{self.output()}") from None

    async def kill(self) -> None:
        """SIGKILL: no cleanup, no acknowledgements, as in a crash."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def interrupt(self, timeout: float = 20.0) -> int:
        """SIGINT, as Ctrl-C; return the exit code."""
        assert self.process is not None
        self.process.send_signal(2)
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
        if self._reader is not None:
            await self._reader
        return code

    async def finished(self, timeout: float = 30.0) -> int:
        """Wait for a command that ends by itself; return its exit code once all its output is read."""
        assert self.process is not None
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
            if self._reader is not None:
                await self._reader
        return code

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


def tcp_ports(pid: int) -> set[int]:
    """The local ports of the TCP sockets process ``pid`` holds open (Linux ``/proc``): which process a
    connection a test server sees came from."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
