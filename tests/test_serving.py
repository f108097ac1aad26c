"""ripple.serving against real sockets on loopback: timeouts, the connection cap and header limits are enforced."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from ripple._aio import free_port
from ripple.api.loading import Manifests
from ripple.cli.ingress import run_ingress
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.local.nats_server import NatsServer
from ripple.serving import DEFAULT_LIMITS, HttpLimits, start_site
from ripple.store import EventStore

HOST = "127.0.0.1"
_names = itertools.count()


def fresh_name() -> str:
    """A server name of its own, so that each test reads its own metric series."""
    return f"test-{next(_names)}"


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def hello_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/", hello)
    return app


@asynccontextmanager
async def serving(app: web.Application, limits: HttpLimits, name: str) -> AsyncIterator[int]:
    runner = await start_site(app, HOST, 0, name=name, limits=limits)
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(HOST, port)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length, read off a raw connection."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 5)
    return int(status_line.split()[1]), headers, body


async def seconds_until_closed(reader: asyncio.StreamReader, limit: float = 5.0) -> float:
    """How long until the server closes the connection (EOF or reset); fails if it stays open ``limit`` seconds."""
    start = time.monotonic()
    with suppress(ConnectionError):
        while await asyncio.wait_for(reader.read(65536), limit):
            pass
    return time.monotonic() - start


async def is_open(reader: asyncio.StreamReader) -> bool:
    """True unless the server closed the connection (nothing is expected to arrive on it)."""
    try:
        return await asyncio.wait_for(reader.read(1), 0.05) != b""
    except TimeoutError:
        return True
    except ConnectionError:
        return False


GET = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


# --- keep-alive ---------------------------------------------------------------------------------------------


async def test_idle_keepalive_connection_is_closed_after_keepalive_timeout():
    limits = HttpLimits(keepalive_timeout=0.5, header_timeout=5.0)
    async with serving(hello_app(), limits, fresh_name()) as port:
        reader, writer = await connect(port)
        writer.write(GET)
        status, headers, body = await read_response(reader)
        assert (status, body) == (200, b"ok")
        assert headers.get("connection", "").lower() != "close"
        closed_after = await seconds_until_closed(reader)
        assert 0.35 < closed_after < 2.0
        writer.close()


async def test_kept_alive_connection_serves_further_requests_within_keepalive_timeout():
    limits = HttpLimits(keepalive_timeout=1.0, header_timeout=0.2)
    async with serving(hello_app(), limits, fresh_name()) as port:
        reader, writer = await connect(port)
        for _ in range(2):
            writer.write(GET)
            assert (await read_response(reader))[0] == 200
            await asyncio.sleep(0.4)  # longer than header_timeout: idling between requests is keep-alive's business
        writer.close()


# --- header timeout (slowloris) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET / HT", b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: aaa"],
    ids=["nothing", "half-request-line", "half-headers"],
)
async def test_stalled_request_head_is_cut_after_header_timeout_while_others_are_served(sent):
    name = fresh_name()
    limits = HttpLimits(keepalive_timeout=10.0, header_timeout=0.5)
    async with serving(hello_app(), limits, name) as port, aiohttp.ClientSession() as http:
        reader, writer = await connect(port)
        writer.write(sent)
        closing = asyncio.create_task(seconds_until_closed(reader))
        for _ in range(3):  # served meanwhile
            async with http.get(f"http://{HOST}:{port}/") as response:
                assert response.status == 200
        assert 0.35 < await closing < 2.0
        assert metric("ripple_http_connections_closed_total", server=name, reason="header_timeout") == 1
        writer.close()


async def test_stalled_second_request_on_kept_alive_connection_is_cut_after_header_timeout():
    limits = HttpLimits(keepalive_timeout=10.0, header_timeout=0.5)
    async with serving(hello_app(), limits, fresh_name()) as port:
        reader, writer = await connect(port)
        writer.write(GET)
        assert (await read_response(reader))[0] == 200
        await asyncio.sleep(0.8)
        assert await is_open(reader)  # idle past header_timeout, but keep-alive allows 10 s
        writer.write(b"GET / HTTP/1.1\r\nHo")
        assert 0.35 < await seconds_until_closed(reader) < 2.0
        writer.close()


async def test_slow_handler_is_not_cut_by_header_or_body_timeout():
    async def slow(request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(0.5)
        return web.Response(body=body)

    app = web.Application()
    app.router.add_post("/", slow)
    limits = HttpLimits(keepalive_timeout=5.0, header_timeout=0.2, body_timeout=0.2)
    async with serving(app, limits, fresh_name()) as port:
        reader, writer = await connect(port)
        for _ in range(2):  # and the connection stays usable
            writer.write(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello")
            assert (await read_response(reader))[::2] == (200, b"hello")
        writer.close()


# --- body timeout -------------------------------------------------------------------------------------------


async def trickle(writer: asyncio.StreamWriter, every: float) -> None:
    with suppress(ConnectionError):
        while True:
            await asyncio.sleep(every)
            writer.write(b"x")
            await writer.drain()


async def test_trickled_body_is_answered_408_and_closed_after_body_timeout():
    name = fresh_name()
    read_failed: list[BaseException] = []

    async def upload(request: web.Request) -> web.Response:
        try:
            await request.read()
        except BaseException as exc:
            read_failed.append(exc)
            raise
        return web.Response(text="complete")

    app = web.Application()
    app.router.add_post("/", upload)
    limits = HttpLimits(keepalive_timeout=10.0, header_timeout=0.5, body_timeout=0.6)
    async with serving(app, limits, name) as port:
        reader, writer = await connect(port)
        start = time.monotonic()
        # Bytes keep coming (every 0.1 s, well within any idle timeout) but the body is never complete in time.
        writer.write(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n0123456789")
        trickling = asyncio.create_task(trickle(writer, 0.1))
        status, headers, _ = await read_response(reader)
        elapsed = time.monotonic() - start
        assert status == 408
        assert headers["connection"].lower() == "close"
        assert 0.45 < elapsed < 2.0
        assert await seconds_until_closed(reader) < 1.0
        trickling.cancel()
        writer.close()
        assert [type(e) for e in read_failed] == [web.HTTPRequestTimeout]
        assert metric("ripple_http_connections_closed_total", server=name, reason="body_timeout") == 1


async def test_body_trickled_after_the_answer_is_cut_after_body_timeout():
    """A handler that answers without reading the body: aiohttp would linger reading it; body_timeout bounds it."""

    async def ignore_body(request: web.Request) -> web.Response:
        return web.Response(text="early")

    app = web.Application()
    app.router.add_post("/", ignore_body)
    limits = HttpLimits(keepalive_timeout=10.0, header_timeout=0.5, body_timeout=0.6)
    async with serving(app, limits, fresh_name()) as port:
        reader, writer = await connect(port)
        writer.write(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n0123456789")
        trickling = asyncio.create_task(trickle(writer, 0.1))
        start = time.monotonic()
        assert (await read_response(reader))[::2] == (200, b"early")
        await seconds_until_closed(reader)
        assert time.monotonic() - start < 2.0  # not aiohttp's 10 s lingering_time
        trickling.cancel()
        writer.close()


# --- connection cap -----------------------------------------------------------------------------------------


async def wait_for_metric(name: str, value: float, **labels: str) -> None:
    deadline = time.monotonic() + 5
    while metric(name, **labels) != value:
        assert time.monotonic() < deadline, f"{name}{labels} = {metric(name, **labels)}, expected {value}"
        await asyncio.sleep(0.01)


async def test_idle_connections_over_the_cap_evict_the_longest_idle_and_clients_are_served():
    name = fresh_name()
    limits = HttpLimits(keepalive_timeout=10.0, header_timeout=10.0, max_connections=20)
    async with serving(hello_app(), limits, name) as port:
        idle = []
        for _ in range(50):
            idle.append(await connect(port))
            await asyncio.sleep(0.002)
        await wait_for_metric("ripple_http_connections_closed_total", 30, server=name, reason="evicted")
        assert metric("ripple_http_connections", server=name) == 20

        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                async with http.get(f"http://{HOST}:{port}/") as response:
                    assert response.status == 200
        # The client's (pooled) connection evicted one more, the longest idle; nothing was refused.
        assert metric("ripple_http_connections_closed_total", server=name, reason="evicted") == 31
        assert metric("ripple_http_connections_refused_total", server=name) == 0
        still_open = [await is_open(reader) for reader, _ in idle]
        assert still_open == [False] * 31 + [True] * 19

        for _, writer in idle:
            writer.close()
        await wait_for_metric("ripple_http_connections", 0, server=name)


async def test_busy_connections_at_the_cap_refuse_new_ones_and_are_still_served():
    name = fresh_name()
    release = asyncio.Event()
    entered = 0

    async def block(request: web.Request) -> web.Response:
        nonlocal entered
        entered += 1
        await release.wait()
        return web.Response(text="done")

    app = web.Application()
    app.router.add_get("/", block)
    limits = HttpLimits(keepalive_timeout=10.0, header_timeout=10.0, max_connections=20)
    async with serving(app, limits, name) as port:
        busy = [await connect(port) for _ in range(20)]
        for _, writer in busy:
            writer.write(GET)
        deadline = time.monotonic() + 5
        while entered < 20:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)

        refused = []
        for _ in range(5):
            reader, writer = await connect(port)
            refused.append((await read_response(reader))[0])
            assert await seconds_until_closed(reader) < 1.0
            writer.close()
        assert refused == [503] * 5
        assert metric("ripple_http_connections_refused_total", server=name) == 5
        assert metric("ripple_http_connections", server=name) == 20

        release.set()
        for reader, _ in busy:
            assert (await read_response(reader))[::2] == (200, b"done")
        # Now idle, they make room for a new client.
        async with aiohttp.ClientSession() as http, http.get(f"http://{HOST}:{port}/") as response:
            assert response.status == 200
        for _, writer in busy:
            writer.close()
        await wait_for_metric("ripple_http_connections", 0, server=name)


# --- header sizes -------------------------------------------------------------------------------------------


def request_with(*, headers: int = 0, field: int = 10, target: int = 1) -> bytes:
    lines = [f"GET /{'a' * (target - 1)} HTTP/1.1", "Host: test"]
    lines += [f"X-H{i}: v" for i in range(headers)]
    lines.append("X-Long: " + "v" * field)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        # Host, X-Long and these: 98 fields. aiohttp's C parser takes max_headers fields, its pure-Python one
        # counts the request line and the blank line too (max_headers - 2 fields): both take this.
        (request_with(headers=DEFAULT_LIMITS.max_headers - 4), {200}),
        (request_with(headers=DEFAULT_LIMITS.max_headers - 1), {400, 431}),
        (request_with(field=DEFAULT_LIMITS.max_field_size - 8), {200}),  # "X-Long: " + value = max_field_size
        (request_with(field=DEFAULT_LIMITS.max_field_size + 100), {400, 431}),
        (request_with(target=DEFAULT_LIMITS.max_line_size + 100), {400, 414, 431}),
    ],
    ids=["under-max-headers", "too-many-headers", "max-field", "field-too-long", "request-line-too-long"],
)
async def test_header_limits_answer_4xx_never_500(request_bytes, expected):
    limits = HttpLimits(max_connections=100)  # the default sizes
    async with serving(hello_app(), limits, fresh_name()) as port:
        reader, writer = await connect(port)
        writer.write(request_bytes)
        status, _, _ = await read_response(reader)
        assert status in expected
        writer.close()


def test_limits_are_validated():
    with pytest.raises(ValueError, match="header_timeout"):
        HttpLimits(header_timeout=0)
    with pytest.raises(ValueError, match="max_connections"):
        HttpLimits(max_connections=0)
    assert HttpLimits(header_timeout=None, body_timeout=None, max_connections=None).max_connections is None


# --- the ingress --------------------------------------------------------------------------------------------


async def test_ingress_app_is_protected_by_the_limits(store: EventStore):
    name = fresh_name()
    settings = IngressSettings(brokers=lambda ns, b: (ns, b) == ("default", "default"), max_body=64 * 1024)
    limits = HttpLimits(keepalive_timeout=5.0, header_timeout=0.5, body_timeout=0.5, max_connections=10)
    async with serving(create_ingress_app(store, settings), limits, name) as port:
        stalled_reader, stalled_writer = await connect(port)
        stalled_writer.write(b"POST /default/default HTTP/1.1\r\nHost: test\r\nce-id: 1\r\n")
        closing = asyncio.create_task(seconds_until_closed(stalled_reader))

        binary = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/src", "ce-type": "t"}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://{HOST}:{port}/default/default", data=b"{}", headers=binary) as response:
                assert response.status == 202

        assert 0.35 < await closing < 2.0
        stalled_writer.close()

        reader, writer = await connect(port)
        head = "".join(f"{k}: {v}\r\n" for k, v in binary.items())
        writer.write(f"POST /default/default HTTP/1.1\r\nHost: test\r\n{head}Content-Length: 100\r\n\r\n{{".encode())
        status, _, body = await read_response(reader)
        assert status == 408  # through the ingress' JSON error middleware
        assert body.startswith(b'{"error"')
        assert await seconds_until_closed(reader) < 1.0
        writer.close()
        assert metric("ripple_http_connections_closed_total", server=name, reason="header_timeout") == 1
        assert metric("ripple_http_connections_closed_total", server=name, reason="body_timeout") == 1


async def test_run_ingress_serves_through_start_site(nats_server: NatsServer):
    port = free_port(HOST)
    task = asyncio.create_task(run_ingress(nats_server.url, Manifests(), host=HOST, port=port, max_body=1024))
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                reader, writer = await connect(port)
                break
            except OSError:
                assert time.monotonic() < deadline and not task.done()
                await asyncio.sleep(0.05)
        while (before := metric("ripple_http_connections", server="ingress")) < 1:  # this one, as name="ingress"
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        writer.write(request_with(headers=DEFAULT_LIMITS.max_headers - 1))  # over ripple's 100, under aiohttp's 128
        assert (await read_response(reader))[0] == 400
        writer.close()
        await wait_for_metric("ripple_http_connections", before - 1, server="ingress")
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
