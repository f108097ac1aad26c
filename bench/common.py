"""Helpers shared by ``bench/ingress.py`` and ``bench/latency.py``: servers on loopback, client processes, CPU
accounting and statistics.

Both benchmarks run their load generator in a *separate process* (the same script started in ``client`` mode,
see :func:`run_client`): on a 2-core machine a Python HTTP client costs about as much CPU per request as the
server it drives, so a client in the server's process would share its event loop and GIL and the figures would
measure the sum of both. The client process tells the parent when its measured window starts and ends by
printing marker lines, so that the parent can read its own CPU time and the nats-server's at those instants.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ripple._aio import free_port
from ripple.local.nats_server import NatsServer

HOST = "127.0.0.1"
MEASURE_START = "@@bench measure-start"
MEASURE_END = "@@bench measure-end"
RESULT_PREFIX = "@@bench result "
CLIENT_MODE = "client"
RESULT_LIMIT = 64 * 1024 * 1024
"""Longest line read from a client process: its result line carries per-event figures."""


# --- payloads -------------------------------------------------------------------------------------------------


def json_data(size: int = 200) -> bytes:
    """A compact JSON object of exactly ``size`` bytes (at least ~120), shaped like an order event's data."""
    doc: dict[str, Any] = {
        "orderId": "ord-0001234567",
        "customer": "cust-4242",
        "currency": "EUR",
        "total": 1234.56,
        "items": [{"sku": "sku-001", "qty": 2}, {"sku": "sku-002", "qty": 1}],
        "note": "",
    }
    base = len(json.dumps(doc, separators=(",", ":")).encode())
    doc["note"] = "x" * max(0, size - base)
    return json.dumps(doc, separators=(",", ":")).encode()


# --- servers --------------------------------------------------------------------------------------------------


@asynccontextmanager
async def nats_server(store_dir: Path) -> AsyncIterator[NatsServer]:
    """A real ``nats-server -js`` on a free loopback port, its store in ``store_dir``."""
    server = NatsServer(store_dir, host=HOST)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run an aiohttp app on a free loopback port (no access log); yield its base URL without a trailing slash."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port(HOST)
    await web.TCPSite(runner, HOST, port).start()
    try:
        yield f"http://{HOST}:{port}"
    finally:
        await runner.cleanup()


# --- CPU accounting -------------------------------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read_process_cpu(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime


def process_cpu(pids: Sequence[int]) -> float:
    """CPU seconds the processes ``pids`` have spent so far (those gone count 0)."""
    return sum(_read_process_cpu(pid) or 0.0 for pid in pids)


def _read_machine_cpu() -> float | None:
    """CPU seconds all cores of the machine spent busy since boot (``/proc/stat``: all but idle and iowait)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(f) for f in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


@dataclass
class CpuWindow:
    """CPU seconds spent between two markers of a client process by this process (``own``), by other processes
    of the benchmark (``processes``, by name: nats-server, a function runtime) and by the whole machine."""

    pids: dict[str, int | None]
    own: float = 0.0
    processes: dict[str, float | None] = field(default_factory=dict)
    machine: float | None = None
    wall: float = 0.0
    _start: tuple[float, dict[str, float | None], float | None, float] | None = field(default=None, repr=False)

    def _read(self) -> tuple[dict[str, float | None], float | None]:
        processes = {name: _read_process_cpu(pid) if pid else None for name, pid in self.pids.items()}
        return processes, _read_machine_cpu()

    async def mark(self, marker: str) -> None:
        processes, machine = await asyncio.to_thread(self._read)
        now = (time.process_time(), processes, machine, time.perf_counter())
        if marker == MEASURE_START:
            self._start = now
            return
        if self._start is None:
            return
        own0, processes0, machine0, wall0 = self._start
        self.own = now[0] - own0
        self.processes = {
            name: None if value is None or processes0.get(name) is None else value - processes0[name]  # type: ignore[operator]
            for name, value in processes.items()
        }
        self.machine = None if machine is None or machine0 is None else machine - machine0
        self.wall = now[3] - wall0

    def process(self, name: str) -> float | None:
        return self.processes.get(name)

    def others(self, client_cpu: float) -> float | None:
        """Cores used by processes outside the benchmark during the window (other work on a shared machine)."""
        if self.machine is None or not self.wall:
            return None
        ours = self.own + sum(v or 0.0 for v in self.processes.values()) + client_cpu
        return max(0.0, self.machine - ours) / self.wall


# --- client processes -----------------------------------------------------------------------------------------


async def run_client(
    script: str, config: dict[str, Any], on_marker: Callable[[str], Awaitable[None]] | None = None
) -> dict[str, Any]:
    """Run ``script client CONFIG`` in a new Python process and return the JSON object it reports.

    Marker lines are passed to ``on_marker`` as they arrive; other output is echoed. A client that exits
    non-zero or reports nothing raises :class:`RuntimeError` with its stderr.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        script,
        CLIENT_MODE,
        json.dumps(config),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=RESULT_LIMIT,
    )
    assert process.stdout is not None and process.stderr is not None
    stderr_task = asyncio.create_task(process.stderr.read())
    result: dict[str, Any] | None = None
    while line := await process.stdout.readline():
        text = line.decode().rstrip("\n")
        if text in (MEASURE_START, MEASURE_END):
            if on_marker is not None:
                await on_marker(text)
        elif text.startswith(RESULT_PREFIX):
            result = json.loads(text[len(RESULT_PREFIX) :])
        else:
            print(f"  [client] {text}", flush=True)
    stderr = (await stderr_task).decode(errors="replace")
    code = await process.wait()
    if code != 0 or result is None:
        raise RuntimeError(f"client process ({config.get('kind')}) exited with {code}:\n{stderr}")
    if stderr.strip():
        print(f"  [client stderr] {stderr.strip()}", flush=True)
    return result


def marker(text: str) -> None:
    """Tell the parent a measured window starts or ends (a few bytes to a pipe the parent drains at once)."""
    print(text, flush=True)


def client_entry(
    run: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> None:
    """The ``client`` mode of a benchmark script: read the JSON config from argv, run (on the standard loop
    unless ``loop_factory`` says otherwise), report the result."""
    config = json.loads(sys.argv[2])
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(run(config))  # type: ignore[arg-type]
    os.set_blocking(sys.stdout.fileno(), True)  # uvloop leaves the pipe non-blocking: a long line would be cut
    print(RESULT_PREFIX + json.dumps(result, separators=(",", ":")), flush=True)


def is_client_mode() -> bool:
    return len(sys.argv) > 2 and sys.argv[1] == CLIENT_MODE


# --- statistics and output ------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0 to 100) of already sorted values, linearly interpolated; NaN when empty."""
    if not sorted_values:
        return float("nan")
    rank = (len(sorted_values) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(sorted(values), 50)


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


def num(value: float | None, digits: int = 2) -> float | None:
    """A figure for the JSON line: rounded, and ``None`` instead of NaN (JSON has no NaN)."""
    if value is None or value != value:
        return None
    return round(value, digits)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], first_left: bool = True) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(
            cell.ljust(widths[i]) if i == 0 and first_left else cell.rjust(widths[i]) for i, cell in enumerate(row)
        )

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths), *(fmt(row) for row in cells[1:])]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
    }


def emit_json(summary: dict[str, Any]) -> None:
    """The last line of a benchmark's output: one JSON object."""
    print(json.dumps(summary, separators=(",", ":"), allow_nan=False), flush=True)
