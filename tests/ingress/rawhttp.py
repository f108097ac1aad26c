"""A raw HTTP/1.1 client for hostile requests: header bytes exactly as given, chunked bodies, no client checks.

aiohttp's client refuses (rightly) to send much of what a hostile producer can; this one sends anything.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> str:
        """The ``error`` of Ripple's JSON answer, else the body as text (aiohttp's own answers are plain text)."""
        try:
            return str(self.json()["error"])
        except (ValueError, KeyError, TypeError):
            return self.body.decode("utf-8", "replace")


def _chunked(body: bytes, size: int) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


async def raw_post(
    url: str,
    headers: Sequence[tuple[bytes | str, bytes | str]] | Iterable[tuple[bytes | str, bytes | str]] = (),
    body: bytes = b"",
    *,
    chunked: bool = False,
    chunk_size: int = 16 * 1024,
    timeout: float = 30.0,
) -> RawResponse:
    """POST ``body`` with exactly these header lines (``Content-Length`` added unless ``chunked``)."""
    parts = urlsplit(url)
    lines = [b"POST %s HTTP/1.1" % (parts.path or "/").encode(), b"Host: %s" % parts.netloc.encode()]
    lines.append(b"Connection: close")
    for name, value in headers:
        name_bytes = name.encode("utf-8", "surrogateescape") if isinstance(name, str) else name
        value_bytes = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        lines.append(name_bytes + b": " + value_bytes)
    lines.append(b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % len(body))
    payload = _chunked(body, chunk_size) if chunked else body
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
            try:
                writer.write(payload)
                await writer.drain()
            except ConnectionError:
                pass  # the server answered early and closed; its answer is still to be read
            raw = await _read_all(reader)
        finally:
            writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    response_headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        response_headers[key.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), response_headers, rest)


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    try:
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    except ConnectionError:
        pass  # a reset after the answer: what arrived is the answer
    return b"".join(chunks)
