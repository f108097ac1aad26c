"""Reading request bodies (no server): bounded reads, Ripple's own gzip/deflate decoding, and the errors."""

from __future__ import annotations

import gzip
import zlib
from typing import Any, cast

import pytest
from aiohttp import web
from multidict import CIMultiDict

from ripple.ingress.body import BodyRefused, _Inflater, content_coding, read_body

LIMIT = 1000


class FakeContent:
    """A request body stream handing out at most ``n`` bytes a read, counting what it handed out."""

    def __init__(self, body: bytes, fail: BaseException | None = None) -> None:
        self.body = body
        self.handed_out = 0
        self.fail = fail
        self.eof_fed = False

    async def read(self, n: int) -> bytes:
        if self.fail is not None and self.handed_out >= len(self.body) // 2:
            raise self.fail
        chunk = self.body[self.handed_out : self.handed_out + min(n, 100)]
        self.handed_out += len(chunk)
        return chunk

    def exception(self) -> BaseException | None:
        return self.fail

    def feed_eof(self) -> None:
        self.eof_fed = True


class FakeRequest:
    def __init__(self, body: bytes, *headers: tuple[str, str], sized: bool = False, **kw: Any) -> None:
        self.headers = CIMultiDict(headers)
        self.content_length = len(body) if sized else None
        self.content = FakeContent(body, **kw)


async def read(request: FakeRequest, limit: int = LIMIT) -> bytes:
    return await read_body(cast(web.Request, request), limit)


async def refused(request: FakeRequest, status: int, message: str, limit: int = LIMIT) -> None:
    with pytest.raises(BodyRefused) as caught:
        await read(request, limit)
    assert caught.value.status == status
    assert str(caught.value).startswith(message), str(caught.value)


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    request = FakeRequest(b"x" * (LIMIT + 1), sized=True)
    await refused(request, 413, f"request body is larger than the limit of {LIMIT} bytes")
    assert request.content.handed_out == 0


async def test_an_undeclared_length_is_read_to_one_byte_past_the_limit_and_no_further() -> None:
    request = FakeRequest(b"x" * (100 * LIMIT))
    await refused(request, 413, f"request body is larger than the limit of {LIMIT} bytes")
    assert request.content.handed_out == LIMIT + 1


async def test_a_body_at_the_limit_is_read_whole() -> None:
    assert await read(FakeRequest(b"x" * LIMIT)) == b"x" * LIMIT


async def test_a_gzip_bomb_stops_inflating_one_byte_past_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (1000 * LIMIT))
    request = FakeRequest(bomb, ("Content-Encoding", "gzip"))
    await refused(request, 413, f"request body is larger than the limit of {LIMIT} bytes once decoded")
    assert request.content.handed_out < len(bomb)  # the rest was never even read


def test_the_inflater_never_returns_more_than_room_plus_one_bytes() -> None:
    bomb = gzip.compress(b"\0" * (1000 * LIMIT))
    out, overflowed = _Inflater("gzip").feed(bomb, LIMIT)
    assert overflowed and len(out) == LIMIT + 1


async def test_a_compressed_body_larger_than_the_limit_is_413_even_if_it_inflates_to_less() -> None:
    incompressible = bytes(range(256)) * 8
    await refused(FakeRequest(gzip.compress(incompressible, 0), ("Content-Encoding", "gzip")), 413, "request body is")


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip", gzip.compress(b'{"a":1}')),
        ("x-gzip", gzip.compress(b'{"a":1}')),
        ("GZIP", gzip.compress(b'{"a":1}')),
        ("gzip", gzip.compress(b'{"a"') + gzip.compress(b":1}")),
        ("deflate", zlib.compress(b'{"a":1}')),
        ("deflate", zlib.compress(b'{"a":1}', wbits=-15)),
        (" identity ", b'{"a":1}'),
    ],
)
async def test_bodies_are_decoded_from_their_coding(coding: str, body: bytes) -> None:
    assert await read(FakeRequest(body, ("Content-Encoding", coding))) == b'{"a":1}'


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_an_empty_body_is_empty_in_any_coding(coding: str) -> None:
    assert await read(FakeRequest(b"", ("Content-Encoding", coding))) == b""


@pytest.mark.parametrize(
    ("coding", "body", "message"),
    [
        ("gzip", b"plain text", "request body is not valid gzip: Error -3"),
        ("gzip", gzip.compress(b"x" * 500)[:-8], "request body is not valid gzip: the stream is truncated"),
        ("gzip", gzip.compress(b"x") + b"tail", "request body is not valid gzip: Error -3"),
        ("deflate", zlib.compress(b"x") + b"tail", "request body is not valid deflate: data after the end"),
        ("deflate", zlib.compress(b"x" * 500)[:-4], "request body is not valid deflate: the stream is truncated"),
    ],
)
async def test_a_body_not_valid_in_its_coding_is_400(coding: str, body: bytes, message: str) -> None:
    await refused(FakeRequest(body, ("Content-Encoding", coding)), 400, message)


@pytest.mark.parametrize(
    "headers",
    [[("Content-Encoding", "br")], [("Content-Encoding", "gzip, identity")],
     [("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")], [("Content-Encoding", "compress")]],
)
def test_other_codings_or_several_are_415(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(BodyRefused) as caught:
        content_coding(cast(web.Request, FakeRequest(b"", *headers)))
    assert caught.value.status == 415 and "Content-Encoding" in str(caught.value)


async def test_a_connection_lost_mid_body_is_a_400_not_a_500() -> None:
    request = FakeRequest(b"x" * 500, fail=ConnectionResetError("Connection lost"))
    await refused(request, 400, "the connection was lost before the request body was complete")


async def test_a_body_the_parser_gave_up_on_is_a_400_and_the_stream_is_ended() -> None:
    request = FakeRequest(b"x" * 500, fail=web.RequestPayloadError("400, message:\n  Not enough data to satisfy"))
    await refused(request, 400, "request body is malformed: Not enough data to satisfy")
    assert request.content.eof_fed
