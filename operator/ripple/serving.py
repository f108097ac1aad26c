"""Starting Ripple's aiohttp servers with limits: idle, header and body timeouts, a connection cap, header sizes.

aiohttp's defaults suit a server behind a trusted proxy, not one that producers reach directly: a kept-alive
connection may idle for minutes, nothing bounds how long a client takes to send its request head or body, and
nothing bounds how many connections are open. A few hundred idle or slowloris connections then take every file
descriptor and the server stops answering. :func:`start_site` starts an app with :class:`HttpLimits`:

* ``keepalive_timeout``, ``max_line_size``, ``max_field_size`` and ``max_headers`` are aiohttp's own
  ``RequestHandler`` options (both the C and the pure-Python parser enforce the sizes; a request over them is
  answered 400 and the connection closed);
* the header and body timeouts and the connection cap are enforced by a small ``RequestHandler`` subclass, made by
  a ``web.Server`` subclass (the protocol factory), so they work whichever parser aiohttp uses.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from prometheus_client import Counter, Gauge

from ripple.tls import ReloadingTls, TlsFiles

__all__ = [
    "CONNECTIONS",
    "CONNECTIONS_CLOSED",
    "CONNECTIONS_REFUSED",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_FIELD_SIZE",
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_LINE_SIZE",
    "HttpLimits",
    "start_site",
]

# Longer than aiohttp's client pool keeps an idle connection (15 s, the dispatcher's and most producers'): the client
# must give up an idle connection before the server closes it, else a POST sent on it as it closes fails (no retry).
DEFAULT_KEEPALIVE_TIMEOUT = 20.0
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_MAX_LINE_SIZE = 8190
DEFAULT_MAX_FIELD_SIZE = 8190
DEFAULT_MAX_HEADERS = 100

CONNECTIONS = Gauge(
    "ripple_http_connections", "Open HTTP connections counted against the server's max_connections.", ["server"]
)
CONNECTIONS_REFUSED = Counter(
    "ripple_http_connections_refused_total",
    "New HTTP connections answered 503 and closed at once: the server was at max_connections and none was idle.",
    ["server"],
)
CONNECTIONS_CLOSED = Counter(
    "ripple_http_connections_closed_total",
    "HTTP connections the server closed to enforce a limit: evicted (the longest-idle one, to admit a new "
    "connection at max_connections), header_timeout, body_timeout.",
    ["server", "reason"],
)

_REFUSED_TEXT = b"too many connections, retry later\n"
_REFUSED_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s" % (len(_REFUSED_TEXT), _REFUSED_TEXT)
)


@dataclass(frozen=True)
class HttpLimits:
    """What one HTTP server lets a client hold. Times are in seconds; ``None`` switches a limit off."""

    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT
    """A kept-alive connection idle (no request being handled) this long is closed; 0 disables keep-alive."""
    header_timeout: float | None = DEFAULT_HEADER_TIMEOUT
    """A request line and headers must be complete this long after the connection opened (first request) or after
    the first byte of a later request on a kept-alive connection arrived; else the connection is closed (slowloris).
    The wait before a later request's first byte is ``keepalive_timeout``'s."""
    body_timeout: float | None = DEFAULT_BODY_TIMEOUT
    """A request body must be complete this long after its headers; else the handler reading it gets 408 Request
    Timeout (the connection is closed after the answer), or the connection is closed if the answer was sent."""
    max_connections: int | None = DEFAULT_MAX_CONNECTIONS
    """Open connections at most. A connection beyond it closes the longest-idle one (between requests, or not having
    sent a complete request head yet); with none idle, it is answered 503 and closed at once, so the connections
    being served keep their file descriptors."""
    max_line_size: int = DEFAULT_MAX_LINE_SIZE
    """Longest request line (method, target, version), in bytes; longer is answered 400."""
    max_field_size: int = DEFAULT_MAX_FIELD_SIZE
    """Longest header field (name and value), in bytes; longer is answered 400."""
    max_headers: int = DEFAULT_MAX_HEADERS
    """Most header fields in one request; more is answered 400. (aiohttp's pure-Python parser, used only when its C
    extension is missing or AIOHTTP_NO_EXTENSIONS is set, counts the request line and blank line too: 2 fewer.)"""

    def __post_init__(self) -> None:
        if self.keepalive_timeout < 0:
            raise ValueError("keepalive_timeout must be >= 0")
        for field_name in ("header_timeout", "body_timeout", "max_connections"):
            value = getattr(self, field_name)
            if value is not None and value <= 0:
                raise ValueError(f"{field_name} must be > 0 or None")
        for field_name in ("max_line_size", "max_field_size", "max_headers"):
            if getattr(self, field_name) < 1:
                raise ValueError(f"{field_name} must be >= 1")


DEFAULT_LIMITS = HttpLimits()


async def start_site(
    app: web.Application, host: str, port: int, *, name: str, limits: HttpLimits = DEFAULT_LIMITS,
    tls: TlsFiles | None = None, tls_port: int | None = None,
) -> web.AppRunner:
    """Run ``app`` on ``host:port`` with ``limits``; ``name`` labels the metrics. The caller ``cleanup()``s the runner.

    With ``tls`` it serves HTTPS only, reloading the certificate when its files change (:class:`ReloadingTls`);
    a TLS handshake must complete within ``header_timeout``. Files that cannot be loaded raise at once. With
    ``tls_port`` too, plain HTTP stays on ``port`` and HTTPS is served on ``tls_port`` (the ingress: producers
    outside the cluster use HTTPS, Ripple's own hops inside it the plain port).

    Port 0 binds a free port: read it from ``runner.addresses``.
    """
    runner = _GuardedAppRunner(
        app,
        name=name,
        limits=limits,
        access_log=None,
        keepalive_timeout=limits.keepalive_timeout,
        max_line_size=limits.max_line_size,
        max_field_size=limits.max_field_size,
        max_headers=limits.max_headers,
    )
    reloading = None if tls is None else ReloadingTls(tls)
    await runner.setup()
    try:
        if reloading is None or tls_port is not None:
            await web.TCPSite(runner, host, port).start()
        if reloading is not None:
            await _TlsSite(runner, host, port if tls_port is None else tls_port, ssl_context=reloading.context,
                           handshake_timeout=limits.header_timeout or DEFAULT_HEADER_TIMEOUT).start()
            runner.watch_tls(reloading)
    except BaseException:
        await runner.cleanup()
        raise
    return runner


class _TlsSite(web.TCPSite):
    """aiohttp's TCP site with a TLS handshake timeout of its own: asyncio's default (60 s) would let a client that
    never finishes its handshake hold a socket long after ``header_timeout``."""

    def __init__(self, *args: Any, handshake_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handshake_timeout = handshake_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            server, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port,
            ssl_handshake_timeout=self._handshake_timeout,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


class _GuardedAppRunner(web.AppRunner):
    """An AppRunner whose server makes :class:`_GuardedHandler` protocols."""

    __slots__ = ("_limits", "_name", "_tls_watch", "tls")

    def __init__(self, app: web.Application, *, name: str, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._name = name
        self._limits = limits
        self.tls: ReloadingTls | None = None
        self._tls_watch: asyncio.Task[None] | None = None

    def watch_tls(self, tls: ReloadingTls) -> None:
        self.tls = tls
        self._tls_watch = asyncio.get_running_loop().create_task(tls.watch(), name=f"{self._name} TLS reload")

    async def cleanup(self) -> None:
        if self._tls_watch is not None:
            self._tls_watch.cancel()
        await super().cleanup()

    async def _make_server(self) -> web.Server:
        return _GuardedServer(await super()._make_server(), name=self._name, limits=self._limits)


class _GuardedServer(web.Server):
    """The protocol factory: one :class:`_GuardedHandler` per connection, and the count of open ones for the cap."""

    def __init__(self, base: web.Server, *, name: str, limits: HttpLimits) -> None:
        # Rebuilt from the Server the Application made (its request handler, request factory and handler kwargs:
        # debug, access log, parser limits), so that only the protocol class differs.
        super().__init__(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            **base._kwargs,
        )
        self.limits = limits
        # Insertion-ordered, so that of equally idle connections the oldest is evicted.
        self._open: dict[_GuardedHandler, None] = {}
        self._gauge = CONNECTIONS.labels(name)
        self._refused = CONNECTIONS_REFUSED.labels(name)
        self._evicted = CONNECTIONS_CLOSED.labels(name, "evicted")
        self.header_timeouts = CONNECTIONS_CLOSED.labels(name, "header_timeout")
        self.body_timeouts = CONNECTIONS_CLOSED.labels(name, "body_timeout")

    def __call__(self) -> _GuardedHandler:
        return _GuardedHandler(self, loop=self._loop, **self._kwargs)

    def admit(self, handler: _GuardedHandler) -> bool:
        """Count a new connection in, making room at the cap by closing the longest-idle one; False to refuse it."""
        cap = self.limits.max_connections
        if cap is not None and len(self._open) >= cap:
            # Connections aiohttp is already closing (keep-alive expiry, errors) hold no slot any more.
            for closing in [h for h in self._open if h.transport is None]:
                self.release(closing)
        if cap is not None and len(self._open) >= cap:
            victim = min((h for h in self._open if h.idle), key=lambda h: h.last_activity, default=None)
            if victim is None:
                self._refused.inc()
                return False
            self.release(victim)
            self._evicted.inc()
            victim.force_close()
        self._open[handler] = None
        self._gauge.inc()
        return True

    def release(self, handler: _GuardedHandler) -> None:
        if self._open.pop(handler, False) is None:
            self._gauge.dec()


class _GuardedHandler(RequestHandler):
    """aiohttp's per-connection protocol, plus a header timer, a body timer and the connection cap.

    aiohttp parses in ``data_received``: it appends one ``(message, payload)`` per complete request head to
    ``_messages`` (and counts it in ``_request_count``), then feeds body bytes to that payload until its EOF. Comparing
    ``_request_count`` around ``data_received`` tells when a head completed, which works with the C parser and the
    pure-Python one alike.
    """

    __slots__ = ("_body", "_body_timer", "_guard", "_header_timer", "last_activity")

    def __init__(self, manager: _GuardedServer, *, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._guard = manager
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None
        """The payload still being received, while its body timer runs."""
        self.last_activity = loop.time()
        """When a byte last arrived or an answer was last sent: the longest-idle connection is evicted first."""

    @property
    def idle(self) -> bool:
        """No request queued or being handled: it never completed a request head, or awaits the next one."""
        if self._messages:
            return False
        waiting = self._waiter is not None and not self._waiter.done()
        return self._request_count == 0 or waiting

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._guard.admit(self):
            # Over the cap with no idle connection to close: answer at once rather than hold a descriptor.
            self._force_close = True  # data_received ignores whatever still arrives
            cast(asyncio.Transport, transport).write(_REFUSED_RESPONSE)
            transport.close()
            return
        super().connection_made(transport)
        self.last_activity = self._loop.time()
        self._start_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._guard.release(self)
        self._cancel_header_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data:
            self.last_activity = self._loop.time()
        receiving_body = self._body is not None
        heads_before = self._request_count
        super().data_received(data)
        if self._request_count != heads_before:
            # A request head is complete. Only the last one parsed can still be receiving its body.
            self._cancel_header_timer()
            if self._messages:
                message, payload = self._messages[-1]
                self._watch_body(message, payload)
        elif data and not receiving_body and not self._upgraded and self._payload_parser is None:
            # Bytes of a request head that is not complete yet: the next request on a kept-alive connection.
            self._start_header_timer()

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self.last_activity = self._loop.time()

    # --- header timeout --------------------------------------------------------------------------------------

    def _start_header_timer(self) -> None:
        timeout = self._guard.limits.header_timeout
        if timeout is not None and self._header_timer is None:
            self._header_timer = self._loop.call_later(timeout, self._header_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.transport is None:
            return
        self._guard.header_timeouts.inc()
        if self._request_in_progress or self._messages:
            self.close()  # a pipelined head stalled behind a request: answer that one, then close
        else:
            self.force_close()

    # --- body timeout ----------------------------------------------------------------------------------------

    def _watch_body(self, message: Any, payload: StreamReader) -> None:
        timeout = self._guard.limits.body_timeout
        if timeout is None or payload.is_eof() or getattr(message, "upgrade", False):
            return
        self._body = payload
        self._body_timer = self._loop.call_later(timeout, self._body_timed_out)
        payload.on_eof(self._cancel_body_timer)

    def _cancel_body_timer(self) -> None:
        self._body = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        payload, self._body = self._body, None
        if payload is None or payload.is_eof() or self.transport is None:
            return
        self._guard.body_timeouts.inc()
        # aiohttp would otherwise linger, reading the rest of the body after the answer, for lingering_time.
        self._lingering_time = 0.0
        if self._request_in_progress or self._messages:
            # The handler reading the body gets 408 (as if it raised it), answered with Connection: close.
            timeout = web.HTTPRequestTimeout(text="the request body did not arrive in time")
            timeout.force_close()
            payload.set_exception(timeout)
            self.close()
        else:
            self.force_close()  # already answered; the client is still trickling the body
