"""Reading a request body that may be hostile: bounded in size, decoded from its content coding by Ripple.

aiohttp's own decoding of ``Content-Encoding`` is turned off for the ingress (``auto_decompress=False``): it
accepts truncated gzip and bodies with trailing garbage, answers codings whose library is missing with a plain-text
400, and its errors surface as exceptions aiohttp logs again after the answer. Here instead:

* a body declared (``Content-Length``) larger than the limit is refused before a byte is read (413);
* the body, chunked or not, is read in a loop that stops once it passes the limit (413): at most ``limit + 1``
  bytes of it are ever held;
* ``gzip`` (``x-gzip``) and ``deflate`` are inflated as they arrive, never more than ``limit + 1`` bytes in all, so
  a small body that inflates past the limit (a "zip bomb") is a 413 as soon as it passes it;
* a body that is not valid in its coding (not gzip at all, corrupt, truncated, trailing bytes) is a 400;
* ``identity`` is no coding; any other coding, or more than one, is a 415.
"""

from __future__ import annotations

import asyncio
import zlib

from aiohttp import web

READ_CHUNK = 64 * 1024
"""Bytes read from the connection at a time."""
GZIP_CODINGS = ("gzip", "x-gzip")
CODINGS = ("identity", *GZIP_CODINGS, "deflate")
"""The content codings the ingress accepts (``x-gzip`` is gzip, as RFC 9110 asks)."""


class BodyRefused(Exception):
    """The request body cannot be used: too large (413), in an unsupported coding (415), or not valid (400)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def content_coding(request: web.Request) -> str:
    """The body's content coding, lower-cased (``""`` for none); raise :class:`BodyRefused` unless one is read here."""
    codings = request.headers.getall("Content-Encoding", [])
    if len(codings) > 1 or (codings and "," in codings[0]):
        raise BodyRefused(415, f"unsupported Content-Encoding {', '.join(codings)!r}: only one coding is accepted")
    coding = codings[0].strip().lower() if codings else ""
    if coding not in ("", *CODINGS):
        raise BodyRefused(415, f"unsupported Content-Encoding {coding!r}: accepted are {', '.join(CODINGS)}")
    return "" if coding == "identity" else coding


class _Inflater:
    """Inflates gzip (one member or several) or deflate (zlib-wrapped or raw), bounded by the caller."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._decompressor: zlib._Decompress | None = None
        self.started = False

    def _new(self, first: int) -> zlib._Decompress:
        if self.coding in GZIP_CODINGS:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # RFC 9110's deflate is the zlib format; some clients send raw deflate: tell them apart as aiohttp does.
        return zlib.decompressobj(zlib.MAX_WBITS if first & 0x0F == 8 else -zlib.MAX_WBITS)

    def feed(self, data: bytes, room: int) -> tuple[bytes, bool]:
        """Inflate ``data``; return what came out (at most ``room + 1`` bytes) and whether it overflowed ``room``."""
        out: list[bytes] = []
        size = 0
        while data:
            if self._decompressor is None:
                if self.coding not in GZIP_CODINGS and self.started:
                    raise BodyRefused(400, f"request body is not valid {self.coding}: data after the end of the stream")
                self._decompressor = self._new(data[0])
                self.started = True
            try:
                chunk = self._decompressor.decompress(data, room + 1 - size)
            except zlib.error as exc:
                raise BodyRefused(400, f"request body is not valid {self.coding}: {exc}") from None
            out.append(chunk)
            size += len(chunk)
            if size > room:
                return b"".join(out), True
            if self._decompressor.eof:
                data = self._decompressor.unused_data  # gzip allows several members back to back
                self._decompressor = None
            elif chunk or len(self._decompressor.unconsumed_tail) < len(data):
                data = self._decompressor.unconsumed_tail
            else:  # no progress (cannot happen with room left, but never loop on it)
                raise BodyRefused(400, f"request body is not valid {self.coding}: the stream does not progress")
        return b"".join(out), False

    def finish(self) -> None:
        if self._decompressor is not None:
            raise BodyRefused(400, f"request body is not valid {self.coding}: the stream is truncated")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, decoded from its content coding, never holding more than ``limit + 1`` bytes of it
    (compressed or not); raise :class:`BodyRefused` with the status to answer."""
    coding = content_coding(request)
    too_large = f"request body is larger than the limit of {limit} bytes"
    if request.content_length is not None and request.content_length > limit:
        raise BodyRefused(413, too_large)
    inflater = _Inflater(coding) if coding else None
    chunks: list[bytes] = []
    size = received = 0
    try:
        if inflater is None and request.content_length is not None:  # the usual request: one read
            return await request.content.readexactly(request.content_length) if request.content_length else b""
        while raw := await request.content.read(min(READ_CHUNK, limit + 1 - received)):
            received += len(raw)
            if received > limit:
                raise BodyRefused(413, too_large)
            if inflater is None:
                chunks.append(raw)
                size += len(raw)
                continue
            decoded, overflowed = inflater.feed(raw, limit - size)
            if overflowed:
                raise BodyRefused(413, too_large + " once decoded")
            chunks.append(decoded)
            size += len(decoded)
    except web.RequestPayloadError as exc:  # e.g. broken chunked framing
        # The parser gave up on this body: end the stream here, so that aiohttp neither drains nor logs it again.
        if request.content.exception() is not None:
            request.content.feed_eof()
        raise BodyRefused(400, f"request body is malformed: {_last_line(exc.__cause__ or exc)}") from None
    except (ConnectionResetError, asyncio.IncompleteReadError):
        raise BodyRefused(400, "the connection was lost before the request body was complete") from None
    if inflater is not None:
        inflater.finish()
    return b"".join(chunks)


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


__all__ = ["CODINGS", "BodyRefused", "content_coding", "read_body"]
